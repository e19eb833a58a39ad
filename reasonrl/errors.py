"""The one exception type for bad user input.

Raised where input enters (config files, CLI overrides, data files, model paths) with a message that
names the file, line or key. The CLI prints it on one line to stderr and exits with code 2, no traceback.
"""


class UserError(Exception):
    """Bad input from the user: a file, a line, a key or a value that cannot be used as given."""
