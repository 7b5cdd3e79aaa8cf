"""seisfno: neural operators and full-waveform inversion for the 2-D acoustic wave equation."""

from ._errors import SeisfnoError
from ._version import __version__

__all__ = ["SeisfnoError", "__version__"]
