"""Task records from Python objects (the API's `train_data=` / `test_data=` / `data=`): a list of dicts, a
`datasets.Dataset`, or anything with `len()` and integer indexing that returns dicts.

A `datasets.Dataset` is read as a file's table is (`hf_data.dataset_records`: the schema checked, records built per
row, chat columns through the chat template). Other rows map as a JSONL line does (`data.prompt_field`,
`data.answer_field`, `data.response_field` -> `prompt`, `answer`, `response`; a prompt that is a list of chat
messages gives `prompt_messages`), every other field is kept for the reward to read, text is checked before any
tokenizer sees it, and `id` is the row's own or `<where>:<index>`. A problem is one UserError line naming the row
and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reasonrl.config import DataConfig
from reasonrl.errors import UserError
from reasonrl.tasks.chat import is_chat, split_chat
from reasonrl.tasks.datasets import as_text
from reasonrl.userfiles import check_record_text


def records_from(rows, cfg: DataConfig, *, require: Sequence[str], where: str) -> Sequence[dict]:
    """`rows` as task records (module docstring); `require`: the fields every row must have (among prompt, answer,
    response; a prompt must also be non-empty text)."""
    fields = {"prompt": cfg.prompt_field, "answer": cfg.answer_field, "response": cfg.response_field}
    if _is_dataset(rows):
        from reasonrl.tasks.hf_data import dataset_records

        return dataset_records(rows, label=where, id_prefix=where, fields=fields, require=require,
                               messages_field=cfg.messages_field or None)
    try:
        num = len(rows)
        items = [rows[i] for i in range(num)]
    except TypeError:
        raise UserError(f"{where}: expected a list of dicts or a datasets.Dataset, got {type(rows).__name__}") \
            from None
    if not items:
        raise UserError(f"{where}: no records (it is empty)")
    return [_record(row, f"{where}[{i}]", f"{where}:{i}", fields, require) for i, row in enumerate(items)]


def _record(row: object, where: str, default_id: str, fields: dict[str, str], require: Sequence[str]) -> dict:
    if not isinstance(row, Mapping):
        raise UserError(f"{where}: expected a dict, got {type(row).__name__}")
    check_record_text(row, where)
    record = {k: v for k, v in row.items() if k not in set(fields.values()) | set(fields)}
    chat_response = None
    for name, key in fields.items():
        value = row.get(key)
        if value is None and name in require and not (name == "response" and is_chat(row.get(fields["prompt"]))):
            raise UserError(f"{where}: missing required field {key!r}")
        if name == "prompt" and is_chat(value):
            record["prompt_messages"], record["prompt"], chat_response = split_chat(value, where)
        else:
            record[name] = None if value is None else as_text(value, where, key)
    if record.get("response") is None and chat_response is not None:
        record["response"] = chat_response
    if "prompt" in require and not record["prompt"].strip():
        raise UserError(f"{where}: field {fields['prompt']!r} is empty")
    record["id"] = str(row["id"]) if row.get("id") is not None else default_id
    return record


def _is_dataset(rows) -> bool:
    """A `datasets.Dataset`, recognised without importing `datasets` when the caller has not."""
    import sys

    module = sys.modules.get("datasets")
    return module is not None and isinstance(rows, module.Dataset)
