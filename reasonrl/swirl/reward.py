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
from reasonrl.swirl.episodes import cut_step, read_jsonl
from reasonrl.swirl.judges import build_judges

JUDGED_FIELDS = ("task", "subject", "relation", "attribute", "ops")


def _metadata(cfg: Config) -> dict[str, dict]:
    """id -> row of the states file: the judge reads the world fields (`task`, `subject`, `ops`, ...) from it."""
    from pathlib import Path

    path = Path(cfg.data.source)
    if not path.is_file():
        raise UserError(f"reward.kind = 'process': data.source {cfg.data.source!r} must be a states JSONL file "
                        "written by `reasonrl swirl-data`")
    rows = read_jsonl(path)
    for i, row in enumerate(rows, start=1):
        if "id" not in row or "task" not in row:
            raise UserError(f"{path}:{i}: a states row needs 'id' and 'task' (write it with `reasonrl swirl-data`)")
    return {str(row["id"]): row for row in rows}


def build(cfg: Config, *, tokenizer=None, device=None):
    process, _ = build_judges(cfg.swirl.judge, noise=cfg.swirl.judge_noise, seed=cfg.train.seed, device=device)
    meta = _metadata(cfg)

    def reward(responses: Responses) -> Scored:
        scores = []
        for record, text in zip(responses.records, responses.texts, strict=True):
            row = {**meta[str(record["id"])], **{k: record[k] for k in JUDGED_FIELDS if k in record}}
            scores.append(process(row, record["prompt"], cut_step(text)))
        scores = torch.tensor(scores, dtype=torch.float32)
        good = scores > 0.5
        return Scored(scores=scores, correct=good, stats={"process_good": float(good.float().mean())})

    return reward
