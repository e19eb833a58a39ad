"""Output paths are checked where they enter, before any work: a path that cannot be written is a `UserError`
then, not after an hour of sampling. Nothing is created by the checks."""

from __future__ import annotations

import os
from pathlib import Path

from reasonrl.errors import UserError


def _writable_ancestor(path: Path, what: str) -> None:
    """The nearest existing ancestor of `path` must be a writable directory (`path` itself can then be created)."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{what} {path}: {parent} is not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"{what} {path}: {parent} is not writable")
            return


def check_output_dir(path: str | Path, what: str) -> Path:
    """`path` is, or can be made, a writable directory; `what` names the option (e.g. `eval --out`)."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise UserError(f"{what} {p}: exists and is not a directory")
        if not os.access(p, os.W_OK | os.X_OK):
            raise UserError(f"{what} {p}: directory is not writable")
        return p
    _writable_ancestor(p, what)
    return p


def check_output_file(path: str | Path, what: str) -> Path:
    """`path` is, or can be made, a writable file (its directory created if missing)."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} {p}: is a directory; give a file name")
    if p.exists() and not os.access(p, os.W_OK):
        raise UserError(f"{what} {p}: file is not writable")
    _writable_ancestor(p, what)
    return p
