"""Task records from Python objects (the API's `train_data=` / `test_data=` / `data=`): a list of dicts, or anything
with `len()` and integer indexing that returns dicts, such as a `datasets.Dataset`.

Fields map as a JSONL file's do (`data.prompt_field`, `data.answer_field`, `data.response_field` -> `prompt`,
`answer`, `response`), every other field is kept for the reward to read, and `id` is the row's own or
`<where>:<index>`. A problem is one UserError line naming the row and the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from reasonrl.config import DataConfig
from reasonrl.errors import UserError


def records_from(rows, cfg: DataConfig, *, require: Sequence[str], where: str) -> list[dict]:
    """`rows` as task records (module docstring); `require`: the fields every row must have (among prompt, answer,
    response; a prompt must also be non-empty text)."""
    try:
        num = len(rows)
        items = [rows[i] for i in range(num)]
    except TypeError:
        raise UserError(f"{where}: expected a list of dicts or a datasets.Dataset, got {type(rows).__name__}") \
            from None
    if not items:
        raise UserError(f"{where}: no records (it is empty)")
    fields = {"prompt": cfg.prompt_field, "answer": cfg.answer_field, "response": cfg.response_field}
    out = []
    for i, row in enumerate(items):
        if not isinstance(row, Mapping):
            raise UserError(f"{where}[{i}]: expected a dict, got {type(row).__name__}")
        record = {k: v for k, v in row.items() if k not in set(fields.values()) | set(fields)}
        for name, key in fields.items():
            value = row.get(key)
            if value is None and name in require:
                raise UserError(f"{where}[{i}]: missing required field {key!r}")
            record[name] = None if value is None else _text(value, f"{where}[{i}]", key)
        if "prompt" in require and not record["prompt"].strip():
            raise UserError(f"{where}[{i}]: field {fields['prompt']!r} is empty")
        record["id"] = str(row["id"]) if row.get("id") is not None else f"{where}:{i}"
        out.append(record)
    return out


def _text(value: object, where: str, key: str) -> str:
    """Strings as they are, numbers written plainly (27.0 -> "27"), anything else an error."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    raise UserError(f"{where}: field {key!r} must be a string or a number, got {type(value).__name__}")
