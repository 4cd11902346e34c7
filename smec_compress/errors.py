"""The one exception type users see."""


class SmecError(ValueError):
    """A problem with the user's input or files.

    The CLI prints its message on one line and exits non-zero, with no traceback (unless
    ``--debug``); the service turns it into a 4xx. Messages name the file, column, parameter
    and count involved, and what would be accepted instead.
    """
