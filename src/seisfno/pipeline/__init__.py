"""The paper in one command: :func:`reproduce` and its report; resumable :class:`Stage` s."""

from .config import PROFILES, ReproduceConfig, get_profile
from .report import write_report
from .reproduce import STAGES, reproduce, stage_configs
from .stages import Stage, StageRunner

__all__ = ["PROFILES", "STAGES", "ReproduceConfig", "Stage", "StageRunner", "get_profile",
           "reproduce", "stage_configs", "write_report"]
