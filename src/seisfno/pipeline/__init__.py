"""The paper in one command: :func:`reproduce` and its report."""

from .config import PROFILES, ReproduceConfig, get_profile
from .report import write_report
from .reproduce import STAGES, reproduce

__all__ = ["PROFILES", "STAGES", "ReproduceConfig", "get_profile", "reproduce", "write_report"]
