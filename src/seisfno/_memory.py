"""Keep freed memory in the process (Linux, glibc) so that the next step's tensors reuse it.

Why: PyTorch's CPU allocator caches nothing: every tensor is a ``malloc`` and every free a
``free``. glibc serves blocks above its mmap threshold (dynamic, at most 32 MiB) with ``mmap`` and
gives them back on ``free``, and trims the top of its heap beyond twice that, so each training
step or FWI iteration page-faults its large tensors in afresh, and the kernel zeroes every page.
Measured (issue 12; AVX2 kernels, 2 threads, 2026-12-03; whole-process counts per step, input
data made each step included): an operator FWI iteration (``quick``, 20 sources) took 25 000-34 000
page faults and 63-84 ms of kernel time, a ``quick`` training step at batch 16 19 000-27 000 faults
and 36-70 ms; with both thresholds raised, 341 faults and 2 ms an FWI iteration, 300-1 300 and
2-6 ms a training step. ``benchmarks/operator_cpu.py``, which counts the step alone, finds none
left (BENCHMARKS.md, "Fourth pass").

The price: freed memory stays in the process instead of going back to the system (its resident
size keeps its peak, and can grow beyond it where the heap fragments: ``reproduce --preset
quick`` peaked at 3.3 GB against 3.0 GB before, not separated from the other changes of that
day); blocks of :data:`MMAP_THRESHOLD` or more are still mapped and unmapped each time. Older
glibc caps the mmap threshold at 32 MiB; it is then set to that. The ``seisfno`` command,
:func:`~seisfno.operator.fit` and :func:`~seisfno.inversion.invert` call
:func:`keep_freed_memory`; set ``SEISFNO_MALLOC=system`` to keep glibc's defaults.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size come from the heap and are reused after ``free``.
MMAP_THRESHOLD = 256 << 20
#: Free memory at the heap's top kept rather than returned to the system.
TRIM_THRESHOLD = 1 << 30
#: The highest mmap threshold glibc accepted before it lifted the cap (64-bit).
_OLD_GLIBC_MMAP_MAX = 32 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module docstring), once per process.

    Returns whether the setting is in effect: ``False`` off Linux/glibc, or with
    ``SEISFNO_MALLOC=system``.
    """
    if os.environ.get("SEISFNO_MALLOC", "").strip().lower() == "system":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mmap_set = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                    or mallopt(_M_MMAP_THRESHOLD, _OLD_GLIBC_MMAP_MAX))
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and mmap_set
