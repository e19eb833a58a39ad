"""Task records from Python objects (the API's `train_data=` / `test_data=` / `data=`): a list of dicts, a
`datasets.Dataset`, or anything with `len()` and integer indexing that returns dicts.

A `datasets.Dataset` is read as a file's table is (`hf_data.dataset_records`: the schema checked, records built per
row, chat columns through the chat template). Other rows map as a JSONL line does, through the same function
(`datasets.record_from`: `data.prompt_field`, `data.answer_field` (a dotted path reads inside nested dicts),
`data.response_field` -> `prompt`, `answer`, `response`; a prompt that is a list of chat messages, or a
`data.messages_field` list in a row without a prompt, gives `prompt_messages`); every other field is kept for the
reward to read, text is checked before any tokenizer sees it, and `id` is the row's own (as text) or
`<where>:<index>`. A problem is one UserError line naming the row and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reasonrl.config import DataConfig
from reasonrl.errors import UserError
from reasonrl.tasks.datasets import record_from
from reasonrl.userfiles import check_record_text


def records_from(rows, cfg: DataConfig, *, require: Sequence[str], where: str) -> Sequence[dict]:
    """`rows` as task records (module docstring); `require`: the fields every row must have (among prompt, answer,
    response; a prompt must also be non-empty text)."""
    fields = {"prompt": cfg.prompt_field, "answer": cfg.answer_field, "response": cfg.response_field}
    messages_field = cfg.messages_field or None
    if _is_dataset(rows):
        from reasonrl.tasks.hf_data import dataset_records

        return dataset_records(rows, label=where, id_prefix=where, fields=fields, require=require,
                               messages_field=messages_field)
    items = _rows(rows, where)
    if not items:
        raise UserError(f"{where}: no records (it is empty)")
    out = []
    for i, row in enumerate(items):
        if not isinstance(row, Mapping):
            raise UserError(f"{where}[{i}]: expected a dict, got {type(row).__name__}")
        check_record_text(row, f"{where}[{i}]")
        if "id" in row and row["id"] is None:  # a null id takes the default, as in a table (`hf_data.Records`)
            row = {k: v for k, v in row.items() if k != "id"}
        out.append(record_from(row, f"{where}[{i}]", f"{where}:{i}", fields, require, messages_field))
    return out


def _rows(rows, where: str) -> list:
    """The items of a sequence of rows. A dict (of columns, say), a string, or a table that indexes by column (a
    pandas DataFrame: `df[0]` is a KeyError) is not one: a UserError saying what is expected."""
    wrong = f"{where}: expected a list of dicts or a datasets.Dataset, got {type(rows).__name__}"
    if isinstance(rows, Mapping):
        raise UserError(f"{wrong} (a dict of columns? datasets.Dataset.from_dict reads one)")
    if isinstance(rows, str | bytes):
        raise UserError(wrong)
    try:
        return [rows[i] for i in range(len(rows))]
    except (TypeError, KeyError, IndexError):
        raise UserError(wrong) from None


def _is_dataset(rows) -> bool:
    """A `datasets.Dataset`, recognised without importing `datasets` when the caller has not."""
    import sys

    module = sys.modules.get("datasets")
    return module is not None and isinstance(rows, module.Dataset)
