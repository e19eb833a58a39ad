"""The one exception type for bad user input.

Raised where input enters (config files, CLI overrides, data files, model paths) with a message that
names the file, line or key. The CLI prints it on one line to stderr and exits with code 2, no traceback.
Input that is usable but probably not what was meant gets one `warn` line on stderr instead. User code that
fails during a run (a reward function raising at step N) is a `UserCodeError`: exit code 1, its one-line message,
then the frames of the user's own code.
"""

import os
import sys


class UserError(Exception):
    """Bad input from the user: a file, a line, a key or a value that cannot be used as given."""


class UserCodeError(Exception):
    """The user's code failed during a run (after the run began, so not exit 2): the CLI prints the message on one
    line, then `frames` (the traceback's frames outside reasonrl: the user's code, worth seeing), and exits with
    code 1. The run directory keeps its checkpoints: `--resume` continues once the code is fixed."""

    def __init__(self, message: str, frames: str = ""):
        super().__init__(message)
        self.frames = frames


def one_line(e: BaseException | str, limit: int = 300, *, typed: bool = False) -> str:
    """An exception (or a text) on one line for a message: its whitespace and newlines collapsed, cut to `limit`
    characters; `typed` (or an exception without text) puts the exception's type name first."""
    text = " ".join(str(e).split())
    if isinstance(e, BaseException) and (typed or not text):
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def bad_text(text: str) -> str | None:
    """Why `text` is not valid Unicode text, or None: a lone surrogate, which JSON and TOML escapes can spell but
    UTF-8 cannot encode. The one test of text validity (`userfiles.check_text` for files, `config.checks` for
    config values): here, below both, as config may import nothing but config and errors."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"a lone surrogate {text[e.start]!r} at character {e.start}"
    return None


def warn(message: str) -> None:
    """One line on stderr, `reasonrl: warning: ...` (rank 0 only under torchrun)."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"reasonrl: warning: {message}", file=sys.stderr)
