"""The one place that decides about output paths, before any work: every command checks its outputs here first.

- `check_output_file` / `check_output_dir`: an output that can be written. Refused, as one `UserError` line: a
  directory where a file goes (or a file where a directory goes), a parent that is a file, an unwritable place,
  and an output that would touch an input: the same path as an input, a path inside an input directory, or a
  directory holding an input among what the command writes there (`owns`; all of it when `owns` is None).
- `check_previous`: an output directory that already holds what the command writes is refused unless
  `--overwrite` (`reasonrl eval --out`, `eval --compare --out`; run directories have `train/rundir.py`).
- `write_atomic`: final outputs are written to a temporary file and renamed into place.
- Append-style outputs (`retro-search`, `swirl-data`) record the settings that determine their content beside the
  output (`check_settings`, `write_settings`): `--resume` with other settings is refused naming the keys, and a
  fresh run onto an existing output is refused unless `--overwrite`. Models and files are identified by a
  `fingerprint` of their bytes, so a copied model resumes and a retrained one at the same path does not.

Nothing is created or changed by the checks.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from reasonrl.errors import UserError

Inputs = Iterable[tuple[str, "str | Path | None"]]
"""(name, path) of a command's inputs, e.g. ("data.source", "train.jsonl"); empty or absent paths are skipped."""

MODEL_AND_DATA = ("model.path", "model.tokenizer_path", "data.source")
"""The config keys a command that samples a model on a data source reads (`reasonrl eval`, `concise select`)."""


def config_inputs(cfg: Any, keys: Iterable[str]) -> list[tuple[str, str]]:
    """`(key, value)` of each `section.field` of `keys` set in `cfg` (the `Inputs` of a command, by config key)."""
    values = ((k, getattr(getattr(cfg, k.split(".")[0]), k.split(".")[1])) for k in keys)
    return [(k, v) for k, v in values if v]


def _writable_ancestor(path: Path, what: str) -> None:
    """The nearest existing ancestor of `path` must be a writable directory (`path` itself can then be created)."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{what} {path}: {parent} is not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"{what} {path}: {parent} is not writable")
            return


def _check_inputs(out: Path, what: str, inputs: Inputs, *, is_dir: bool, owns: Collection[str] | None) -> None:
    """Refuse an output equal to an input, inside an input directory, or (a directory) holding an input where the
    command writes (`owns`: the names it writes in it; None: anywhere)."""
    o = out.resolve()
    for name, raw in inputs:
        if not raw or not Path(raw).exists():
            continue  # a benchmark name, `synthetic`, or nothing
        i = Path(raw).resolve()
        if o == i:
            raise UserError(f"{what} {out} is also the input {name} {raw}: write the output elsewhere")
        if i.is_dir() and i in o.parents:
            raise UserError(f"{what} {out} lies inside the input {name} {raw}: write the output elsewhere")
        if is_dir and o in i.parents and (owns is None or any(i == o / n or o / n in i.parents for n in owns)):
            raise UserError(f"{what} {out} contains the input {name} {raw}, which writing there would replace: "
                            "write the output elsewhere")


def check_output_dir(path: str | Path, what: str, *, inputs: Inputs = (), owns: Collection[str] | None = None
                     ) -> Path:
    """`path` is, or can be made, a writable directory that touches no input; `what` names the option (e.g.
    `eval --out`), `owns` the entries the command writes in it (module docstring)."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise UserError(f"{what} {p}: exists and is not a directory")
        if not os.access(p, os.W_OK | os.X_OK):
            raise UserError(f"{what} {p}: directory is not writable")
    else:
        _writable_ancestor(p, what)
    _check_inputs(p, what, inputs, is_dir=True, owns=owns)
    return p


def check_output_file(path: str | Path, what: str, *, inputs: Inputs = ()) -> Path:
    """`path` is, or can be made, a writable file (its directory created if missing) that is not an input."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} {p}: is a directory; give a file name")
    if p.exists() and not os.access(p, os.W_OK):
        raise UserError(f"{what} {p}: file is not writable")
    _writable_ancestor(p, what)
    _check_inputs(p, what, inputs, is_dir=False, owns=None)
    return p


def check_previous(out: Path, what: str, names: Collection[str], *, desc: str, overwrite: bool) -> list[str]:
    """Refuse (unless `overwrite`) a directory that holds any of `names` from an earlier run of the command;
    returns the ones present. `desc` says what they are ("an evaluation"); the message names them too."""
    present = [n for n in names if (out / n).exists()]
    if present and not overwrite:
        raise UserError(f"{what} {out} already holds {desc} ({', '.join(present)}): pass --overwrite to replace it, "
                        "or choose another directory")
    return present


def write_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file renamed into place (a crash leaves the old file or the
    new one, never half of one); the parent directory is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def jsonl_text(rows) -> str:
    """`rows` as JSONL text: one JSON object a line, each line ended."""
    return "".join(json.dumps(r) + "\n" for r in rows)


def write_jsonl(path: str | Path, rows) -> Path:
    """`rows` written atomically as a JSONL file (`write_atomic`)."""
    return write_atomic(path, jsonl_text(rows))


# ------------------------------------------------------------------------------------ append-style outputs

BLOCK = 1 << 20  # bytes read at the start, middle and end of a large file by `fingerprint`


def fingerprint(path: str | Path) -> str:
    """A short hash of a file, or of every file of a directory (names, sizes and bytes; dotfiles and everything
    under a dot-directory skipped: `.git/`, `.cache/huggingface/` change without the model changing). Files over
    3 MiB contribute their first, middle and last MiB: cheap on a multi-GB model, and any retraining changes those
    bytes too."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(
        f for f in p.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts))
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.relative_to(p) if f != p else f.name}\0{size}\0".encode())
        with f.open("rb") as fh:
            if size <= 3 * BLOCK:
                h.update(fh.read())
            else:
                for at in (0, size // 2, size - BLOCK):
                    fh.seek(at)
                    h.update(fh.read(BLOCK))
    return h.hexdigest()[:16]


def read_appended(path: str | Path) -> bytes:
    """The complete lines of an append-style output (`b""` when there is no file). A torn last line (a crash
    mid-write) is cut off the file, so the next append starts on a line of its own."""
    p = Path(path)
    if not p.is_file():
        return b""
    raw = p.read_bytes()
    keep = raw[: raw.rfind(b"\n") + 1]
    if len(keep) != len(raw):
        with p.open("r+b") as f:
            f.truncate(len(keep))
    return keep


def settings_changes(saved: dict[str, Any], now: dict[str, Any], *,
                     shared_only: bool = False) -> dict[str, tuple[Any, Any]]:
    """`key -> (saved, now)` for every key whose value differs, in key order: a key missing on one side counts as
    None, or with `shared_only` is not compared (a run's config.json against a config with keys added since)."""
    keys = set(saved) & set(now) if shared_only else set(saved) | set(now)
    return {k: (saved.get(k), now.get(k)) for k in sorted(keys) if saved.get(k) != now.get(k)}


def check_settings(out: Path, settings_path: Path, settings: dict[str, Any], *, what: str, exists: bool,
                   resume: bool, overwrite: bool) -> None:
    """The resume rule of an append-style output `out` (`exists`: it holds earlier work): a fresh run onto it is
    refused unless `overwrite`; `resume` needs `settings_path` to agree with `settings` (JSON values) in every key."""
    if resume and overwrite:
        raise UserError(f"{what}: --resume and --overwrite contradict each other: continue the output, or replace it")
    if not exists or overwrite:
        return
    if not resume:
        raise UserError(f"{what} {out} already holds output: pass --resume to continue it or --overwrite to "
                        "replace it")
    if not settings_path.is_file():
        raise UserError(f"{what} {out}: --resume, but there is no {settings_path.name} beside it to check that the "
                        "settings are the same (written before settings were recorded?): start afresh with "
                        "--overwrite, or choose another output")
    from reasonrl.userfiles import read_json_object

    changes = settings_changes(read_json_object(settings_path), json.loads(json.dumps(settings)))
    if changes:
        listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items())
        raise UserError(f"{what} {out}: --resume with settings that differ from {settings_path.name} in {listed}: "
                        "resume with the same settings, or start afresh with --overwrite")


def write_settings(settings_path: Path, settings: dict[str, Any]) -> None:
    write_atomic(settings_path, json.dumps(settings, indent=2) + "\n")
