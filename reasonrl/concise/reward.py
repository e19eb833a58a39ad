"""The `length_penalty` reward kind: the verifier reward plus Concise RL's optional linear length penalty.

The paper's released code (`preprocess_box_response_for_qwen_prompt`, off in every released script) adds to the
+1 / -0.5 / -1 outcome reward a penalty that is 0 up to `cot_threshold_low` = 1000 response tokens, falls
linearly to `reward_high` = -1 at `cot_threshold_high` = 1400 and stays there (`reward.length_start`,
`reward.length_end`, `reward.length_penalty`). It applies to correct and wrong answers alike. The released code
also switches the penalty on only after `step_threshold` training steps; a reward sees responses, not the step,
so here it is on from the first step (the paper offers it as a baseline and never uses it).
"""

from __future__ import annotations

from torch import Tensor

from reasonrl.config import Config
from reasonrl.reward.base import Responses, Scored
from reasonrl.reward.verifier import build as build_verifier


def linear_length_penalty(lengths: Tensor, *, start: int, end: int, penalty: float) -> Tensor:
    """`(B,)` float32: 0 for |y| <= start, penalty * (|y| - start) / (end - start) up to end, penalty beyond.

    Concise RL's released reward code (arXiv 2504.05185; defaults start 1000, end 1400, penalty -1).
    """
    assert 0 <= start < end, f"need 0 <= start < end, got start={start}, end={end}"
    frac = ((lengths.float() - start) / (end - start)).clamp(0.0, 1.0)  # (B,) 0 -> 1 over [start, end]
    return penalty * frac  # (B,)


def build(cfg: Config, *, tokenizer=None, device=None):
    r = cfg.reward
    verifier = build_verifier(cfg, tokenizer=tokenizer, device=device)

    def reward(responses: Responses) -> Scored:
        scored = verifier(responses)
        pen = linear_length_penalty(responses.lengths, start=r.length_start, end=r.length_end,
                                    penalty=r.length_penalty)
        n = max(1, len(responses.texts))
        stats = {**scored.stats, "length_penalty": float(pen.sum()) / n,
                 "penalized": float((pen != 0).sum()) / n}
        return Scored(scores=scored.scores + pen.to(scored.scores.dtype), correct=scored.correct, stats=stats)

    return reward

