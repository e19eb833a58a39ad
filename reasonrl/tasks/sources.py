"""Where task records come from: the synthetic world, a named benchmark in ../shared/data, a JSONL file, or any
format Hugging Face `datasets` reads (`tasks.hf_data`: parquet, JSON, CSV, Arrow, `save_to_disk` directories, hub).

Every record has `prompt`, `answer` and (for SFT) `response`; chat-format data adds `prompt_messages`
(`tasks.prompts.record_prompt` renders it). `verifier_for` picks the answer checker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reasonrl.config import DataConfig
from reasonrl.errors import warn
from reasonrl.tasks import synthetic, verify
from reasonrl.tasks.memory import records_from


def load_split(cfg: DataConfig, split: str, *, num: int | None = None,
               require: Sequence[str] = ("prompt", "answer"), records=None) -> Sequence[dict]:
    """Records of `split` ("train" or "test") for the configured source; the test split comes from
    `data.test_source` when that is set. `require`: the fields every record must have. A `datasets` source gives a
    lazy `hf_data.Records` (memory-mapped; `num` turns it into a list of the first `num` records), its split
    named by `data.split` for "train" and `data.test_split` for "test". `records`: the split given as Python objects
    instead (the API's data; `tasks.memory.records_from`), validated the same way."""
    if records is not None:
        records = records_from(records, cfg, require=require, where=f"{split} data")
        return records if num is None else records[:num]  # a Dataset's records stay lazy (`hf_data.Records`)
    source = cfg.test_source if split == "test" and cfg.test_source else cfg.source
    if source == "synthetic":
        if split == "test":  # the held-out split is fixed: no slips or switches in its gold traces
            n = cfg.num_test if num is None else num
            return synthetic.generate(n, seed=cfg.seed, difficulty=cfg.difficulty, split="test")
        n = cfg.num_train if num is None else num
        return synthetic.generate(n, seed=cfg.seed, difficulty=cfg.difficulty, split="train",
                                  slip_fraction=cfg.slip_fraction, alt_fraction=cfg.alt_fraction)
    from reasonrl.tasks import datasets, hf_data

    messages_field = cfg.messages_field or None
    if source in datasets.KNOWN_DATASETS:  # a named benchmark (e.g. a test_source of gsm8k) has its own fields
        records = datasets.load_dataset(source, split=split, require=require)
    elif hf_data.is_hf_source(source):
        records = hf_data.load_records(source, split=cfg.split if split == "train" else cfg.test_split,
                                       fields=dict(prompt=cfg.prompt_field, answer=cfg.answer_field,
                                                   response=cfg.response_field),
                                       require=require, messages_field=messages_field)
    else:
        records = datasets.load_dataset(source, split=split, require=require, max_line_bytes=cfg.max_line_bytes,
                                        prompt_field=cfg.prompt_field, answer_field=cfg.answer_field,
                                        response_field=cfg.response_field, messages_field=messages_field)
    return records if num is None else records[:num]


def heldout_is_train(cfg: DataConfig) -> bool:
    """True when "held-out" problems would come from the training file: a `source` without splits (a JSONL or
    other file, a `Dataset` directory) and no `test_source`."""
    from reasonrl.tasks import datasets, hf_data

    return (not cfg.test_source and cfg.source != "synthetic" and cfg.source not in datasets.KNOWN_DATASETS
            and not hf_data.has_splits(cfg.source))


def warn_if_heldout_is_train(cfg: DataConfig) -> None:
    """The trainers' one-line warning when `heldout_is_train`."""
    if heldout_is_train(cfg):
        warn(f"data.source {cfg.source} is a file without a test split: held-out accuracy will be measured "
             "on training problems; set data.test_source to a held-out file")


def verifier_for(cfg: DataConfig) -> Callable[[str, str], bool]:
    """`(response_text, gold_answer) -> correct`: exact for the synthetic world, general otherwise."""
    return synthetic.verify if cfg.source == "synthetic" else verify.verify
