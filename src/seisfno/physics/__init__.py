"""Physics: grids, presets, velocity models, wavelets and the acoustic solver.

Imports nothing from the rest of seisfno (except its error type).
"""

from .grid import Grid
from .plan import Plan, make_plan
from .presets import AUTHORS_VELOCITY, PRESETS, Preset, VonKarmanParams, get_preset
from .solver import AcousticSolver, Backend, TorchBackend, get_backend, simulate
from .symmetry import D4, check_square, transform_field, transform_sources
from .velocity import (
    blocky,
    homogeneous,
    layered,
    load_velocity,
    resample,
    sample_rng,
    square_anomaly,
    validate_velocity,
    von_karman,
    von_karman_authors,
    von_karman_covariance,
)
from .wavelets import ricker, ricker_second_derivative

__all__ = [
    "AUTHORS_VELOCITY", "D4", "PRESETS", "AcousticSolver", "Backend", "Grid", "Plan", "Preset",
    "TorchBackend", "VonKarmanParams", "blocky", "check_square", "get_backend", "get_preset",
    "homogeneous", "layered", "load_velocity", "make_plan", "resample", "ricker",
    "ricker_second_derivative", "sample_rng", "simulate", "square_anomaly", "transform_field",
    "transform_sources", "validate_velocity", "von_karman", "von_karman_authors",
    "von_karman_covariance",
]
