"""Where task records come from: the synthetic world, a named benchmark in ../shared/data, or a JSONL file.

Every record has `prompt`, `answer` and (for SFT) `response`; `verifier_for` picks the answer checker.
"""

from __future__ import annotations

from collections.abc import Callable

from reasonrl.config import DataConfig
from reasonrl.tasks import synthetic, verify


def load_split(cfg: DataConfig, split: str, *, num: int | None = None) -> list[dict]:
    """Records of `split` ("train" or "test") for the configured source."""
    if cfg.source == "synthetic":
        if split == "test":  # the held-out split is fixed: no slips or switches in its gold traces
            n = cfg.num_test if num is None else num
            return synthetic.generate(n, seed=cfg.seed, difficulty=cfg.difficulty, split="test")
        n = cfg.num_train if num is None else num
        return synthetic.generate(n, seed=cfg.seed, difficulty=cfg.difficulty, split="train",
                                  slip_fraction=cfg.slip_fraction, alt_fraction=cfg.alt_fraction)
    from reasonrl.tasks import datasets

    records = datasets.load_dataset(cfg.source, split=split, prompt_field=cfg.prompt_field,
                                    answer_field=cfg.answer_field, response_field=cfg.response_field)
    return records if num is None else records[:num]


def verifier_for(cfg: DataConfig) -> Callable[[str, str], bool]:
    """`(response_text, gold_answer) -> correct`: exact for the synthetic world, general otherwise."""
    return synthetic.verify if cfg.source == "synthetic" else verify.verify
