"""One progress bar for every long command: on stderr, only on a terminal, never when quiet.

Library code takes a ``progress: bool`` argument and calls :func:`progress_bar`; the CLI passes
``not quiet``. Tests and pipes (stderr not a terminal) see nothing unless ``force`` is set.
"""

from __future__ import annotations

import os
import sys


def progress_enabled(progress: bool = True) -> bool:
    """True when a bar should be drawn: asked for, and stderr a terminal (or SEISFNO_PROGRESS=1)."""
    if not progress:
        return False
    if os.environ.get("SEISFNO_PROGRESS") == "1":
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(total: int | None = None, *, initial: int = 0, unit: str = "it",
                 desc: str | None = None, progress: bool = True):
    """A tqdm bar on stderr (a disabled one when :func:`progress_enabled` says no)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit=unit, desc=desc, file=sys.stderr,
                disable=not progress_enabled(progress), dynamic_ncols=True, smoothing=0.05)


__all__ = ["progress_bar", "progress_enabled"]
