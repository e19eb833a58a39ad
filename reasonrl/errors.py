"""The one exception type for bad user input.

Raised where input enters (config files, CLI overrides, data files, model paths) with a message that
names the file, line or key. The CLI prints it on one line to stderr and exits with code 2, no traceback.
Input that is usable but probably not what was meant gets one `warn` line on stderr instead.
"""

import os
import sys


class UserError(Exception):
    """Bad input from the user: a file, a line, a key or a value that cannot be used as given."""


def warn(message: str) -> None:
    """One line on stderr, `reasonrl: warning: ...` (rank 0 only under torchrun)."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"reasonrl: warning: {message}", file=sys.stderr)
