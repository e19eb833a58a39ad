"""Benchmark and user data loaders: JSONL files -> `{"prompt", "answer", "response", "id"}` records.

Named benchmarks live under `data_root()` (read-only, never copied into the repo). Every problem with a user file is a
`UserError` naming `file:line` and the key.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import reasonrl
from reasonrl.errors import UserError
from reasonrl.tasks.answers import extract_boxed
from reasonrl.tasks.chat import is_chat, split_chat
from reasonrl.userfiles import check_record_text

DATA_ROOT_ENV = "REASONRL_DATA_ROOT"
MAX_LINE_BYTES = 1_000_000  # the default of `data.max_line_bytes`
FIELDS = ("prompt", "answer", "response")
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K calculator annotations: `<<48/2=24>>`


def data_root() -> Path:
    """$REASONRL_DATA_ROOT, else `shared/data` beside the repository, else `../shared/data` from the working dir."""
    if env := os.environ.get(DATA_ROOT_ENV):
        root = Path(env)
        if not root.is_dir():
            raise UserError(f"{DATA_ROOT_ENV}={env}: not a directory")
        return root
    candidates = [
        Path(reasonrl.__file__).resolve().parents[2] / "shared" / "data",
        Path.cwd() / ".." / "shared" / "data",
    ]
    for root in candidates:
        if root.is_dir():
            return root.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise UserError(f"no data folder: set {DATA_ROOT_ENV} (looked in {looked})")


# ---------------------------------------------------------------------------------------------------------------- JSONL


def read_objects(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES) -> list[tuple[int, dict]]:
    """(line number, object) of every non-empty line of a JSONL file, the data loader's or any other the user gives
    (eval samples, preference pairs, ...): a line over `max_line_bytes` is an error (read no further than that, so
    one huge line cannot stall the run), and so are bad UTF-8, bad JSON, a line that is not an object, bad text."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    rows = []
    with path.open("rb") as f:
        lineno = 0
        while raw := f.readline(max_line_bytes + 2):  # room for "\r\n"
            lineno += 1
            if len(raw.rstrip(b"\r\n")) > max_line_bytes:
                raise UserError(f"{path}:{lineno}: line longer than data.max_line_bytes={max_line_bytes} bytes")
            try:
                line = raw.decode("utf-8").strip()
                if not line:
                    continue
                obj = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise UserError(f"{path}:{lineno}: not valid JSON ({e})") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            check_record_text(obj, f"{path}:{lineno}")  # a lone surrogate stops here, not in a tokenizer
            rows.append((lineno, obj))
    return rows


def as_text(value: object, where: str, key: str) -> str:
    """A field as text: strings as they are, numbers written plainly (AMC's 27.0 -> "27"); other types are errors."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    raise UserError(f"{where}: field {key!r} must be a string or a number, got {type(value).__name__}")


def field_value(obj: dict, key: str) -> object:
    """`obj[key]`, or for a dotted key that is not itself a key the value inside nested objects (verl's answer
    field `reward_model.ground_truth`); None where absent."""
    if key in obj or "." not in key:
        return obj.get(key)
    value: object = obj
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def record_from(obj: Mapping, where: str, default_id: str, fields: dict[str, str | None], require: Sequence[str],
                messages_field: str | None = None) -> dict:
    """One task record from one row: a JSONL line's object, a dict handed to the API (`tasks.memory`), a table's
    row (`hf_data.Records`). `fields` maps record keys to the row's keys (None: always absent; a dotted key reads
    inside nested objects, `field_value`); `require` names the record keys that must be present (the prompt also
    non-empty). The row's other keys are kept as they are (a reward plug-in may read them: an anchor response, a
    judge's context). A prompt that is a list, or a `messages_field` list in a row without the prompt field, is chat
    messages (`chat.split_chat`): `prompt_messages` holds them, `prompt` the last user message, and a final assistant
    turn is the response when the response field is absent. `id` is the row's own, as text, else `default_id`.
    Every problem is a UserError naming `where` and the key."""
    mapped = {key for key in fields.values() if key is not None} | set(fields) | {"id"}
    record: dict = {k: v for k, v in obj.items() if k not in mapped}
    chat_response = None
    prompt_key = fields["prompt"]
    use_messages = obj.get(prompt_key) is None and messages_field is not None and messages_field in obj
    if use_messages:
        prompt_key = messages_field
        record.pop(messages_field)
    chat = use_messages or is_chat(obj.get(prompt_key))
    if chat:
        record["prompt_messages"], record["prompt"], chat_response = split_chat(obj[prompt_key], where)
    for name, key in fields.items():
        if name == "prompt" and chat:
            continue
        value = None if key is None else field_value(obj, key)
        if value is None and name == "response" and chat_response is not None:
            record[name] = chat_response
        elif value is None:
            if name in require:
                raise UserError(f"{where}: missing required field {key!r}")
            record[name] = None
        else:
            record[name] = as_text(value, where, key)
    if "prompt" in require and not record["prompt"].strip():
        raise UserError(f"{where}: field {fields['prompt']!r} is empty")
    record["id"] = as_text(obj["id"], where, "id") if "id" in obj else default_id
    return record


def _records(
    path: Path, fields: dict[str, str | None], require: Sequence[str], max_line_bytes: int = MAX_LINE_BYTES,
    messages_field: str | None = None,
) -> list[tuple[int, dict[str, str | None]]]:
    """(line number, record) pairs, each line's object mapped by `record_from` (`id` default `<file stem>:<line>`)."""
    return [(lineno, record_from(obj, f"{path}:{lineno}", f"{path.stem}:{lineno}", fields, require, messages_field))
            for lineno, obj in read_objects(path, max_line_bytes)]


def load_jsonl(
    path: str | Path,
    *,
    prompt_field: str = "prompt",
    answer_field: str = "answer",
    response_field: str | None = "response",
    require: Sequence[str] = ("prompt",),
    max_line_bytes: int = MAX_LINE_BYTES,
    messages_field: str | None = None,
) -> list[dict]:
    """Records `{"prompt", "answer", "response", "id", **other keys of the line}` from a JSONL file; absent
    optional fields are None. Chat-format lines (a list prompt, or a `messages_field` list) add `prompt_messages`
    (see `record_from`).

    `require` names which of "prompt", "answer", "response" must be present (the prompt also non-empty); a None
    field name means the file has no such field. `id` is the line's own "id" if it has one, else `<file stem>:<line>`.
    A file without records (empty or blank) is an error.
    """
    unknown = set(require) - set(FIELDS)
    if unknown:
        raise ValueError(f"require must name fields among {FIELDS}, got {sorted(unknown)}")
    fields = dict(zip(FIELDS, (prompt_field, answer_field, response_field), strict=True))
    records = [record for _, record in _records(Path(path), fields, require, max_line_bytes, messages_field)]
    if not records:
        raise UserError(f"{path}: no records (the file is empty or blank)")
    return records


# -------------------------------------------------------------------------------------------------- named benchmarks


def _gsm8k(record: dict, where: str) -> dict:
    """answer = text after the last `#### ` without commas; response drops `<<a=b>>`, raw_solution keeps them."""
    solution = record["answer"]
    answer = solution.rsplit("####", 1)[1].strip().replace(",", "") if "####" in solution else ""
    if not answer:
        raise UserError(f"{where}: GSM8K solution has no '#### <answer>' line")
    return {**record, "answer": answer, "response": _CALCULATOR.sub("", solution), "raw_solution": solution}


def _math500(record: dict, where: str) -> dict:
    """answer = the last `\\boxed{}` of the solution; response = the solution."""
    answer = extract_boxed(record["answer"])
    if not answer:
        raise UserError(f"{where}: MATH solution has no \\boxed{{}} answer")
    return {**record, "answer": answer, "response": record["answer"]}


# name -> (file per split, prompt field, answer field, response field, per-record rewrite)
_NAMED: dict[str, tuple[dict[str, str], str, str, str | None, Callable[[dict, str], dict] | None]] = {
    "gsm8k": ({"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"}, "question", "answer", None, _gsm8k),
    "math500": ({"test": "math500/test.jsonl"}, "question", "answer", None, _math500),
    "aime24": ({"test": "aime24/test.jsonl"}, "problem", "answer", "solution", None),
    "amc23": ({"test": "amc23/test.jsonl"}, "question", "answer", None, None),
}
KNOWN_DATASETS = tuple(sorted(_NAMED))


def load_named(name: str, *, split: str = "test") -> list[dict]:
    """A named benchmark (gsm8k train/test, math500, aime24, amc23) as records with ids `<name>-<split>-<n>`."""
    if name not in _NAMED:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(KNOWN_DATASETS)}")
    files, prompt_field, answer_field, response_field, rewrite = _NAMED[name]
    if split not in files:
        raise UserError(f"dataset {name!r} has no split {split!r}; splits: {', '.join(files)}")
    path = data_root() / files[split]
    fields = {"prompt": prompt_field, "answer": answer_field, "response": response_field}
    out = []
    for i, (lineno, record) in enumerate(_records(path, fields, require=("prompt", "answer"))):
        if rewrite is not None:
            record = rewrite(record, f"{path}:{lineno}")
        out.append({**record, "id": f"{name}-{split}-{i}"})
    return out


def load_dataset(
    source: str | Path,
    *,
    split: str = "test",
    prompt_field: str = "prompt",
    answer_field: str = "answer",
    response_field: str = "response",
    require: Sequence[str] = ("prompt",),
    max_line_bytes: int = MAX_LINE_BYTES,
    messages_field: str | None = None,
) -> list[dict]:
    """A known benchmark name -> `load_named`; otherwise a JSONL path -> `load_jsonl` with these field names,
    `require`d fields and line-size guard (a JSONL file has no splits: `split` applies to named benchmarks only).
    Other formats (parquet, CSV, Arrow, `save_to_disk` directories, the hub) are `tasks.hf_data`'s."""
    if isinstance(source, str) and source in _NAMED:
        if (prompt_field, answer_field, response_field) != FIELDS:
            raise UserError(f"dataset {source!r} is a named benchmark: field names apply to JSONL files only")
        return load_named(source, split=split)
    path = Path(source)
    if not path.is_file():
        raise UserError(f"dataset {str(source)!r} is neither a known name ({', '.join(KNOWN_DATASETS)}) nor a file "
                        "or directory (a hub dataset is named hub:owner/name)")
    return load_jsonl(path, prompt_field=prompt_field, answer_field=answer_field, response_field=response_field,
                      require=require, max_line_bytes=max_line_bytes, messages_field=messages_field)


def load_hotpotqa(path: str | Path | None = None) -> list[dict]:
    """HotpotQA rows `{"id", "question", "answer", "type", "level", "context", "supporting_facts"}`.

    `context` is a list of `(title, sentences)` paragraphs; default file: the dev sample under `data_root()`.
    """
    path = Path(path) if path is not None else data_root() / "hotpotqa" / "dev_distractor_sample.jsonl"
    out = []
    for lineno, obj in read_objects(path):
        where = f"{path}:{lineno}"
        for key in ("_id", "question", "answer", "context"):
            if key not in obj:
                raise UserError(f"{where}: missing required field {key!r}")
        out.append(
            {
                "id": as_text(obj["_id"], where, "_id"),
                "question": as_text(obj["question"], where, "question"),
                "answer": as_text(obj["answer"], where, "answer"),
                "type": obj.get("type"),
                "level": obj.get("level"),
                "context": _context(obj["context"], where),
                "supporting_facts": [tuple(f) for f in obj.get("supporting_facts", [])],
            }
        )
    return out


def _context(value: object, where: str) -> list[tuple[str, list[str]]]:
    """HotpotQA paragraphs `[[title, [sentence, ...]], ...]`, type-checked."""
    ok = isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
        and isinstance(p[1], list) and all(isinstance(s, str) for s in p[1])
        for p in value
    )  # fmt: skip
    if not ok:
        raise UserError(f"{where}: field 'context' must be a list of [title, [sentence, ...]] pairs")
    return [(title, list(sentences)) for title, sentences in value]
