"""Reward kind `process`: SWiRL's step-wise reward, the process judge's verdict on a sampled action.

Step-wise RL (arXiv 2504.04736 §2.2) maximises J(theta) = E_{s ~ T, a ~ pi_theta(s)} [R(a | s)] over the states T
of the (filtered) synthetic trajectories, with R a generative judge of the action in its context and no gold
answer. Here a state is a training prompt (`data.source` = the states JSONL written by `reasonrl swirl-data`),
the response is the action, and R = P(GOOD) from the process judge (`swirl.judge`; 1 / 0 for the programmatic
one). The policy-gradient algorithm is "the one used in Gemma 2 for human feedback", not specified [C]; we run
GRPO (group baseline over `rollout.num_samples` actions per state) with a KL penalty to the initial policy
(`rl.kl_coef`), the reading in seed-papers.md E.1 [I].
"""

from __future__ import annotations

import torch

from reasonrl.config import Config
from reasonrl.errors import UserError
from reasonrl.reward.base import Responses, Scored
from reasonrl.swirl.episodes import cut_step
from reasonrl.swirl.judges import STEP_JUDGES, build_judges


def check_state(record: dict, cfg: Config) -> None:
    """A state record names a task the process judge knows (else a UserError naming the record and the field). The
    programmatic judge reads only `task` and the state (`swirl.judges.STEP_JUDGES`); an LLM judge reads the state."""
    where = f"reward.kind = 'process': record {record.get('id')!r} of data.source {cfg.data.source!r}"
    if "task" not in record:
        raise UserError(f"{where} has no 'task' field (write states with `reasonrl swirl-data`)")
    if record["task"] not in STEP_JUDGES:
        raise UserError(f"{where}: field 'task' must be one of {', '.join(STEP_JUDGES)}, got {record['task']!r}")


def build(cfg: Config, *, tokenizer=None, device=None):
    process, _ = build_judges(cfg.swirl.judge, noise=cfg.swirl.judge_noise, seed=cfg.train.seed, device=device)

    def reward(responses: Responses) -> Scored:
        scores = []
        for record, text in zip(responses.records, responses.texts, strict=True):
            check_state(record, cfg)  # the programmatic judge picks its rule by the state's task
            scores.append(process(record, record["prompt"], cut_step(text)))
        scores = torch.tensor(scores, dtype=torch.float32)
        good = scores > 0.5
        return Scored(scores=scores, correct=good, stats={"process_good": float(good.float().mean())})

    return reward
