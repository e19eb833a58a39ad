"""Reading the user's JSON files: every problem is one `UserError` naming the file (and line, and key).

JSONL data goes through `reasonrl.tasks.datasets.read_objects`; single JSON documents (an eval's summary.json, a
judge's judge.json) through `read_json_object`. Both check text with `check_text`: JSON may spell a lone UTF-16
surrogate (`"\\ud800"`), which Python reads into a str that no tokenizer, file or terminal can encode, so it is
refused where the file is read, naming the field, not later inside a tokenizer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reasonrl.errors import UserError, bad_text


def check_text(value: Any, where: str, key: str) -> None:
    """Every string in `value` (nested lists and objects too) is valid Unicode text; else a UserError naming
    `where` and the top-level field `key`."""
    if isinstance(value, str):
        bad = bad_text(value)
        if bad is not None:
            raise UserError(f"{where}: field {key!r} is not valid Unicode text ({bad}); fix the file")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            check_text(k, where, key)
            check_text(v, where, key)
    elif isinstance(value, list):
        for v in value:
            check_text(v, where, key)


def check_record_text(record: Mapping, where: str) -> None:
    """`check_text` on every field of one JSON object."""
    for key, value in record.items():
        check_text(key, where, str(key))
        check_text(value, where, str(key))


def read_json_object(path: str | Path) -> dict:
    """The JSON object in `path` (UTF-8), its text checked; a missing file, bad bytes, malformed JSON or another
    JSON type is a UserError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such file")
    raw = p.read_bytes()
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{p}: expected a JSON object, got {type(obj).__name__}")
    check_record_text(obj, str(p))
    return obj


def require(obj: Mapping, where: str, key: str, kind: str) -> Any:
    """`obj[key]`, which must be of `kind`: "str" (non-empty text), "number" (a finite int or float, not a bool),
    "int", "bool" or "int_or_none"; else a UserError naming `where` and the key."""
    if key not in obj:
        raise UserError(f"{where}: missing key {key!r}")
    value = obj[key]
    ok = {"str": lambda v: isinstance(v, str) and v != "",
          "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
          "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "bool": lambda v: isinstance(v, bool),
          "int_or_none": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool))}[kind]
    if not ok(value):
        want = {"str": "a non-empty string", "number": "a finite number", "int": "an integer", "bool": "true or false",
                "int_or_none": "an integer or null"}[kind]
        raise UserError(f"{where}: key {key!r} must be {want}, got {json.dumps(value)[:60]}")
    return value
