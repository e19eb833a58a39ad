"""Task data in the formats Hugging Face `datasets` reads: parquet, JSON, CSV and Arrow files, directories written
by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`, and hub datasets named `hub:owner/name[:config]`.

Tables stay memory-mapped Arrow: a parquet, JSON or CSV file is converted once into the `datasets` cache
($HF_DATASETS_CACHE), an Arrow file or a saved directory is mapped as it is, and `Records` builds a record dict only
for the row it is asked for, so a million-row file never becomes a Python list. Local sources never touch the
network: the readers are called directly, not through `datasets.load_dataset` (whose local-file path also pings a
download counter). Only `hub:` sources go online, and `datasets` itself honours `HF_DATASETS_OFFLINE` there.

The schema is checked before any row is read: a missing or wrongly typed column, an empty split, a null or blank
prompt is one `UserError` naming the source and the column (rows are counted from 0, as `dataset[i]` does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from reasonrl.errors import UserError, one_line
from reasonrl.tasks.datasets import field_value, record_from
from reasonrl.userfiles import read_json_object

HUB = "hub:"
READERS = {".parquet": "parquet", ".json": "json", ".csv": "csv", ".arrow": "arrow"}  # file suffix -> format
_ROWS_PER_READ = 1024  # rows decoded together when iterating


def is_hf_source(source: str) -> bool:
    """True for the sources this module reads: `hub:...`, a file with a suffix in `READERS`, or a directory."""
    return source.startswith(HUB) or Path(source).suffix.lower() in READERS or Path(source).is_dir()


def has_splits(source: str) -> bool:
    """True for sources with named splits (a `DatasetDict` directory, a hub dataset); a file or a `Dataset`
    directory is one table, read whole whatever the split."""
    return source.startswith(HUB) or (Path(source) / "dataset_dict.json").is_file()


def load_records(source: str, *, split: str, fields: dict[str, str | None], require: Sequence[str],
                 messages_field: str | None = "messages") -> Records:
    """The records of `source` (its `split` where it has splits): `fields` maps "prompt", "answer", "response" to
    column names (an answer column may be a dotted path into a struct column, e.g. verl's
    `reward_model.ground_truth`); `require` names the fields every row must have. A prompt column of chat messages,
    or a `messages_field` column when there is no prompt column, is chat format (`Records`)."""
    ds, label, prefix = _open(source, split)
    return dataset_records(ds, label=label, id_prefix=prefix, fields=fields, require=require,
                           messages_field=messages_field)


def dataset_records(ds, *, label: str, id_prefix: str, fields: dict[str, str | None], require: Sequence[str],
                    messages_field: str | None = "messages") -> Records:
    """`Records` over a `datasets.Dataset` already open (a file's, or one a script passes to the API), its schema
    checked first (`load_records`). A Dataset cut by `filter`, `select` or `shuffle` keeps its whole table and a
    mapping of row indices; the checks read the table (`ds.data`), so the mapping is flattened into a table of the
    rows the Dataset holds first (`datasets` has no public test for the mapping: `_indices`). That is one copy of
    those rows (in memory for an in-memory Dataset; a cache file written by `datasets` for one on disk), on every
    process: cut a large Dataset once, save it (`save_to_disk`) and pass the directory as `data.source` to avoid it."""
    if ds._indices is not None:
        with _quiet():
            ds = ds.flatten_indices()
    prompt_col = _check_schema(ds, label, fields, require, messages_field)
    return Records(ds, label=label, id_prefix=id_prefix, fields={**fields, "prompt": prompt_col}, require=require)


class Records(Sequence):
    """Read-only task records over a memory-mapped table, each row mapped by the JSONL loader's `record_from`:
    `{"prompt", "answer", "response", "id", **the row's other columns}`; absent optional fields are None, numbers
    are written as text (27.0 -> "27") and `id` is the row's own `id` or `<source name>:<row>`. A chat prompt gives
    `prompt_messages` (sent through the tokenizer's chat template), `prompt` = its last user message and, when the
    response column is absent, its final assistant turn as `response` (`chat.split_chat`)."""

    def __init__(self, ds, *, label: str, id_prefix: str, fields: dict[str, str | None], require: Sequence[str]):
        self._ds, self.label, self._prefix, self._fields, self._require = ds, label, id_prefix, fields, require

    @property
    def table(self):
        """The underlying `datasets.Dataset` (memory-mapped)."""
        return self._ds

    def __len__(self) -> int:
        return self._ds.num_rows

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = index + len(self) if index < 0 else index
        if not 0 <= i < len(self):
            raise IndexError(f"row {index} of {len(self)}")
        return self._record(self._ds[i], i)

    def __iter__(self) -> Iterator[dict]:
        for start in range(0, len(self), _ROWS_PER_READ):
            columns = self._ds[start : start + _ROWS_PER_READ]  # {column: values}
            for j in range(min(_ROWS_PER_READ, len(self) - start)):
                yield self._record({k: v[j] for k, v in columns.items()}, start + j)

    def _record(self, row: dict, i: int) -> dict:
        if row.get("id") is None:  # every row of a table has every column: a null id is a row without one
            row = {k: v for k, v in row.items() if k != "id"}
        return record_from(row, f"{self.label}: row {i}", f"{self._prefix}:{i}", self._fields, self._require)


# ------------------------------------------------------------------------------------------------------- opening


def _open(source: str, split: str):
    """(dataset, label for messages, id prefix) of `source`'s `split`."""
    if source.startswith(HUB):
        return _hub(source[len(HUB) :], split), f"{source}[{split}]", f"{source[len(HUB):]}/{split}"
    path = Path(source)
    if path.is_dir():
        return _saved(path, split)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    return _read_file(path), str(path), path.stem


@contextlib.contextmanager
def _quiet():
    """No `datasets` progress bars or log lines while a table is opened: the trainers draw their own bars, and a
    file that cannot be read is one UserError line, not a logged error before it."""
    from datasets.utils import logging as ds_logging

    bars, level = ds_logging.is_progress_bar_enabled(), ds_logging.get_verbosity()
    ds_logging.disable_progress_bar()
    ds_logging.set_verbosity(ds_logging.CRITICAL)
    try:
        yield
    finally:
        ds_logging.set_verbosity(level)
        if bars:
            ds_logging.enable_progress_bar()


def _read_errors() -> tuple[type[BaseException], ...]:
    """What `datasets` and `pyarrow` raise on a file they cannot parse (StopIteration: an empty JSON file)."""
    import pyarrow as pa
    from datasets.exceptions import DatasetGenerationError

    return DatasetGenerationError, pa.ArrowException, OSError, ValueError, StopIteration


def _read_file(path: Path):
    import pyarrow.parquet as pq
    from datasets import Dataset

    fmt = READERS[path.suffix.lower()]
    readers = {"parquet": Dataset.from_parquet, "json": Dataset.from_json, "csv": Dataset.from_csv, "arrow": _arrow}
    try:
        if fmt == "parquet" and pq.read_metadata(str(path)).num_rows == 0:  # `datasets` fails on it obscurely
            raise UserError(f"{path}: no rows (the file is empty)")
        with _quiet():
            return readers[fmt](str(path))
    except _read_errors() as e:
        if isinstance(e, StopIteration) or "corresponds to no data" in str(e):  # an empty JSON or CSV file
            raise UserError(f"{path}: no rows (the file is empty)") from None
        raise UserError(f"{path}: cannot be read as {fmt} ({one_line(e, typed=True)})") from None


def _arrow(path: str):
    """An Arrow stream file (what `datasets` writes) is mapped as it is; the Arrow IPC file format goes through
    `datasets`' own Arrow reader into its cache."""
    import pyarrow as pa
    from datasets import Dataset

    try:
        return Dataset.from_file(path)
    except pa.ArrowInvalid:
        from datasets.packaged_modules.arrow.arrow import Arrow

        builder = Arrow(data_files={"train": path})
        builder.download_and_prepare()
        return builder.as_dataset(split="train")


def _saved(path: Path, split: str):
    import datasets

    if (path / "dataset_dict.json").is_file():
        splits = read_json_object(path / "dataset_dict.json").get("splits")
        if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits):
            raise UserError(f"{path / 'dataset_dict.json'}: not a DatasetDict index (\"splits\" must be a list of "
                            "split names)")
        if split not in splits:
            raise UserError(f"{path}: no split {split!r} (splits: {', '.join(splits)}); set data.split or "
                            "data.test_split, or take held-out problems from data.test_source")
        target, label, prefix = path / split, f"{path}[{split}]", f"{path.name}/{split}"
    elif (path / "state.json").is_file():
        target, label, prefix = path, str(path), path.name
    else:
        raise UserError(f"{path}: a directory, but not one written by Dataset.save_to_disk or "
                        "DatasetDict.save_to_disk (no state.json or dataset_dict.json)")
    if not read_json_object(target / "state.json").get("_data_files"):  # `datasets` fails on it obscurely
        raise UserError(f"{label}: no rows (the split is empty)")
    try:
        with _quiet():
            return datasets.load_from_disk(str(target)), label, prefix
    except _read_errors() as e:
        raise UserError(f"{label}: cannot be read ({one_line(e, typed=True)})") from None


def _hub(name: str, split: str):
    """`owner/name[:config]` from the Hugging Face hub (or its local cache, under `HF_DATASETS_OFFLINE=1`)."""
    import datasets

    repo, _, config = name.partition(":")
    try:
        return datasets.load_dataset(repo, config or None, split=split)
    except (*_read_errors(), ConnectionError, datasets.exceptions.DatasetNotFoundError) as e:
        raise UserError(f"data.source {HUB}{name} (split {split!r}): {one_line(e, typed=True)}") from None


# -------------------------------------------------------------------------------------------------------- schema


def _kind(feature) -> str | None:
    """"text", "number" or "chat" (a list of {role, content} text structs) for a column's feature, else None."""
    from datasets import LargeList, List, Value

    if isinstance(feature, Value):
        if feature.dtype in ("string", "large_string"):
            return "text"
        return "number" if feature.dtype.startswith(("int", "uint", "float")) else None
    if isinstance(feature, List | LargeList) and isinstance(feature.feature, dict):
        inner = feature.feature
        return "chat" if _kind(inner.get("role")) == _kind(inner.get("content")) == "text" else None
    return None


def _check_schema(ds, label: str, fields: dict[str, str | None], require: Sequence[str],
                  messages_field: str | None) -> str | None:
    """Check columns and required values against the table; returns the prompt column (None: there is none)."""
    if ds.num_rows == 0:
        raise UserError(f"{label}: no rows (the split is empty)")
    features, columns = ds.features, ", ".join(ds.column_names)
    prompt_col = fields["prompt"]
    if field_value(features, prompt_col) is None:
        if messages_field and messages_field in features:
            prompt_col = messages_field
        elif "prompt" in require:
            raise UserError(f"{label}: no column {prompt_col!r} (data.prompt_field) and no chat column "
                            f"{messages_field!r} (data.messages_field); columns: {columns}")
        else:
            prompt_col = None
    chat = prompt_col is not None and _kind(field_value(features, prompt_col)) == "chat"
    if prompt_col == messages_field and prompt_col != fields["prompt"] and not chat:
        raise UserError(f"{label}: column {prompt_col!r} must hold chat messages (a list of {{role, content}} "
                        f"with text values), got {field_value(features, prompt_col)}")
    for name, col in (("prompt", prompt_col), ("answer", fields["answer"]), ("response", fields["response"])):
        feature = field_value(features, col) if col else None
        if feature is None:
            if name in require and not (name == "response" and chat):  # a chat's final assistant turn may answer
                raise UserError(f"{label}: no column {col!r} (data.{name}_field); columns: {columns}")
            continue
        kind = _kind(feature)
        if kind not in (("text", "number", "chat") if name == "prompt" else ("text", "number")):
            what = "text, numbers or chat messages" if name == "prompt" else "text or numbers"
            raise UserError(f"{label}: column {col!r} (data.{name}_field) must hold {what}, got {feature}")
        if name in require:
            _check_values(ds, label, col, kind, blank=name == "prompt")
    if "id" in features and _kind(features["id"]) not in ("text", "number"):
        raise UserError(f"{label}: column 'id' must hold text or numbers, got {features['id']}")
    return prompt_col


def _column(ds, column: str):
    """A column (or a dotted path into struct columns) as a pyarrow ChunkedArray, read from the mapped table."""
    import pyarrow.compute as pc

    if column in ds.column_names or "." not in column:
        return ds.data.column(column)
    first, *rest = column.split(".")
    return pc.struct_field(ds.data.column(first), rest)


def _check_values(ds, label: str, column: str, kind: str, *, blank: bool) -> None:
    """Every value of a required column is present; a required text prompt is not blank, a float finite. Chunk by
    chunk of the mapped table, so the temporaries stay small whatever the number of rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    offset = 0
    for values in _column(ds, column).chunks:
        if values.null_count:
            bad, problem = pc.is_null(values), "is missing (null)"
        elif kind == "text" and blank:
            bad, problem = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0), "is blank"
        elif kind == "number" and pa.types.is_floating(values.type):
            bad, problem = pc.invert(pc.is_finite(values)), "is not a finite number"
        else:
            bad = None
        row = -1 if bad is None else pc.index(bad, True).as_py()
        if row >= 0:
            raise UserError(f"{label}: row {offset + row}: column {column!r} {problem}")
        offset += len(values)
