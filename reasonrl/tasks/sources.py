"""Where task records come from: the synthetic world, a named benchmark in ../shared/data, or a JSONL file.

Every record has `prompt`, `answer` and (for SFT) `response`; `verifier_for` picks the answer checker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reasonrl.config import DataConfig
from reasonrl.errors import warn
from reasonrl.tasks import synthetic, verify
from reasonrl.tasks.memory import records_from


def load_split(cfg: DataConfig, split: str, *, num: int | None = None,
               require: Sequence[str] = ("prompt", "answer"), records=None) -> list[dict]:
    """Records of `split` ("train" or "test") for the configured source; the test split comes from
    `data.test_source` when that is set. `require`: the fields every line of a JSONL file must have. `records`: the
    split given as Python objects instead (the API's data; `tasks.memory.records_from`), validated the same way."""
    if records is not None:
        return records_from(records, cfg, require=require, where=f"{split} data")[:num]
    source = cfg.test_source if split == "test" and cfg.test_source else cfg.source
    if source == "synthetic":
        if split == "test":  # the held-out split is fixed: no slips or switches in its gold traces
            n = cfg.num_test if num is None else num
            return synthetic.generate(n, seed=cfg.seed, difficulty=cfg.difficulty, split="test")
        n = cfg.num_train if num is None else num
        return synthetic.generate(n, seed=cfg.seed, difficulty=cfg.difficulty, split="train",
                                  slip_fraction=cfg.slip_fraction, alt_fraction=cfg.alt_fraction)
    from reasonrl.tasks import datasets

    # field names describe JSONL files; a named benchmark (e.g. a test_source of gsm8k) has its own
    fields = {} if source in datasets.KNOWN_DATASETS else dict(
        prompt_field=cfg.prompt_field, answer_field=cfg.answer_field, response_field=cfg.response_field)
    records = datasets.load_dataset(source, split=split, require=require, max_line_bytes=cfg.max_line_bytes,
                                    **fields)
    return records if num is None else records[:num]


def heldout_is_train(cfg: DataConfig) -> bool:
    """True when "held-out" problems would come from the training file: a JSONL `source` (it has no test
    split) and no `test_source`."""
    from reasonrl.tasks import datasets

    return not cfg.test_source and cfg.source != "synthetic" and cfg.source not in datasets.KNOWN_DATASETS


def warn_if_heldout_is_train(cfg: DataConfig) -> None:
    """The trainers' one-line warning when `heldout_is_train`."""
    if heldout_is_train(cfg):
        warn(f"data.source {cfg.source} is a JSONL file without a test split: held-out accuracy will be measured "
             "on training problems; set data.test_source to a held-out file")


def verifier_for(cfg: DataConfig) -> Callable[[str, str], bool]:
    """`(response_text, gold_answer) -> correct`: exact for the synthetic world, general otherwise."""
    return synthetic.verify if cfg.source == "synthetic" else verify.verify
