"""The ``seisfno`` command line.

Each command lives in its own module and registers with :data:`._app.app`. User errors
(:class:`~seisfno.SeisfnoError`, unreadable files) print one line and exit with status 2.
"""

from __future__ import annotations

import importlib
import sys

from .._errors import SeisfnoError
from ._app import app

_COMMANDS = ("simulate", "generate", "train", "evaluate", "predict", "study", "invert",
             "reproduce")
for _name in _COMMANDS:
    importlib.import_module(f"{__name__}.cmd_{_name}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``seisfno`` command."""
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit:
        raise
    except SeisfnoError as e:
        print(f"seisfno: error: {e}", file=sys.stderr)
        sys.exit(2)
    except (OSError, MemoryError) as e:
        print(f"seisfno: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("seisfno: interrupted", file=sys.stderr)
        sys.exit(130)


__all__ = ["app", "main"]
