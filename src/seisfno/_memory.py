"""Keep freed memory in the process (Linux, glibc) so that the next step's tensors reuse it.

Why: PyTorch's CPU allocator caches nothing: every tensor is a ``malloc`` and every free a
``free``. glibc serves blocks above its mmap threshold (dynamic, at most 32 MiB) with ``mmap`` and
gives them back on ``free``, and trims the top of its heap beyond twice that, so each training
step or FWI iteration page-faults its large tensors in afresh, and the kernel zeroes every page.
Measured (issue 12; AVX2 kernels, 2 threads, 2026-12-03): an operator FWI iteration (``quick``,
20 sources) took 25 000-34 000 page faults and 63-84 ms of kernel time, a ``quick`` training step
15 000-19 000 faults and 38-49 ms at batch 8-16; with both thresholds raised, 341 faults and 2 ms
a FWI iteration, 1 000-1 300 faults and 4 ms a training step.

The price: freed memory stays in the process (its resident size keeps its peak, up to
:data:`TRIM_THRESHOLD` of free heap) instead of going back to the system; blocks of
:data:`MMAP_THRESHOLD` or more are still mapped and unmapped each time. The ``seisfno`` command,
:func:`~seisfno.operator.fit` and :func:`~seisfno.inversion.invert` call
:func:`keep_freed_memory`; set ``SEISFNO_MALLOC=system`` to keep glibc's defaults.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size come from the heap and are reused after ``free``.
MMAP_THRESHOLD = 256 << 20
#: Free memory at the heap's top kept rather than returned to the system.
TRIM_THRESHOLD = 1 << 30

_state: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module docstring), once per process.

    Returns whether the setting is in effect: ``False`` off Linux/glibc, or with
    ``SEISFNO_MALLOC=system``.
    """
    if "on" not in _state:
        _state["on"] = _apply()
    return _state["on"]


def _apply() -> bool:
    if os.environ.get("SEISFNO_MALLOC", "").strip().lower() == "system":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
