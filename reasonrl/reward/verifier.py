"""The verifier reward: correctness from the answer checker, turned into an outcome reward.

r = reward.correct if the answer verifies, reward.wrong if an answer was extracted but is wrong, reward.no_answer
if none was (`algo.rewards.outcome_reward`). DAPO/VAPO: +1 / -1 / -1; Concise RL: +1 / -0.5 / -1.
"""

from __future__ import annotations

import torch

from reasonrl.algo.rewards import outcome_reward
from reasonrl.config import Config
from reasonrl.reward.base import Responses, Scored
from reasonrl.tasks.sources import verifier_for
from reasonrl.tasks.verify import extract_answer


def verify_responses(cfg: Config, responses: Responses) -> tuple[torch.Tensor, torch.Tensor]:
    """`(correct, answered)`, both (N,) bool: the configured verifier against each record's gold answer."""
    verifier = verifier_for(cfg.data)
    correct = torch.tensor([verifier(t, r["answer"]) for t, r in zip(responses.texts, responses.records, strict=True)],
                           dtype=torch.bool)
    answered = torch.tensor([extract_answer(t) is not None for t in responses.texts], dtype=torch.bool) | correct
    return correct, answered


def build(cfg: Config, *, tokenizer=None, device=None):
    r = cfg.reward

    def reward(responses: Responses) -> Scored:
        correct, answered = verify_responses(cfg, responses)
        scores = outcome_reward(correct, answered=answered, correct_reward=r.correct, wrong_reward=r.wrong,
                                no_answer_reward=r.no_answer)
        n = max(1, len(responses.texts))
        return Scored(scores=scores, correct=correct, stats={"answered": float(answered.sum()) / n})

    return reward
