"""User-facing errors.

Every error a user can cause by bad input is a :class:`SeisfnoError`; the CLI prints its message
on one line and exits with status 2, never a traceback. This module imports nothing of ours, so
every subpackage may use it.
"""


class SeisfnoError(ValueError):
    """Bad input or an unusable file: the message names the problem."""
