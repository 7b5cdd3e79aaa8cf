"""The ``seisfno`` command line.

Each command lives in its own module and registers with :data:`._app.app`. Exit statuses:

- ``0``: a normal end (results written);
- ``2``: a user error (:class:`~seisfno.SeisfnoError`, an unreadable file): one line
  ``seisfno: error: ...``, never a traceback;
- ``3``: out of memory (host or GPU): one line ``seisfno: error: out of memory ...`` with
  advice (a smaller batch), distinct from a user error;
- ``130``: interrupted (Ctrl-C); rerunning the same command resumes where that is supported.
"""

from __future__ import annotations

import importlib
import sys

from .._errors import SeisfnoError
from .._memory import keep_freed_memory
from ._app import app

#: Exit status of a user error (bad input, unusable file).
EXIT_USER_ERROR = 2
#: Exit status of an out-of-memory failure (not the user's input at fault, not a bug).
EXIT_OUT_OF_MEMORY = 3

_COMMANDS = ("simulate", "generate", "train", "evaluate", "predict", "study", "invert",
             "reproduce")
for _name in _COMMANDS:
    importlib.import_module(f"{__name__}.cmd_{_name}")

_OOM_ADVICE = ("use a smaller --batch-size (train, reproduce) or --batch-sources (invert), "
               "fewer --workers, or a smaller grid")


def _is_out_of_memory(e: BaseException) -> bool:
    """Host ``MemoryError``, torch's ``OutOfMemoryError`` (CUDA) or its CPU allocator failing."""
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
        return True
    msg = str(e)
    return isinstance(e, RuntimeError) and ("out of memory" in msg
                                            or "can't allocate memory" in msg)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:297] + "..."


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``seisfno`` command."""
    keep_freed_memory()
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit:
        raise
    except SeisfnoError as e:
        print(f"seisfno: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("seisfno: interrupted", file=sys.stderr)
        sys.exit(130)
    except (MemoryError, RuntimeError) as e:
        if not _is_out_of_memory(e):
            raise
        detail = f" ({_one_line(e)})" if str(e) else ""
        print(f"seisfno: error: out of memory{detail}: {_OOM_ADVICE}", file=sys.stderr)
        sys.exit(EXIT_OUT_OF_MEMORY)
    except OSError as e:
        print(f"seisfno: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


__all__ = ["EXIT_OUT_OF_MEMORY", "EXIT_USER_ERROR", "app", "main"]
