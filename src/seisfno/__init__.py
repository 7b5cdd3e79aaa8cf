"""seisfno: neural operators and full-waveform inversion for the 2-D acoustic wave equation."""

from ._errors import SeisfnoError
from ._isa import separate_compile_caches
from ._memory import keep_freed_memory
from ._version import __version__

separate_compile_caches()

__all__ = ["SeisfnoError", "__version__", "keep_freed_memory"]
