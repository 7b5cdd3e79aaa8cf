"""Full-waveform inversion with the neural operator, the solver, or both (hybrid).

>>> from seisfno.inversion import SolverForward, benchmark_model, default_sources, invert
>>> fwd = SolverForward("quick")
>>> true = benchmark_model("square", fwd.preset)
>>> result = invert(fwd, default_sources(fwd.preset.grid), true_velocity=true, iterations=50)
>>> result.model_misfit < result.start_misfit
True
"""

from .forward import (
    ForwardModel,
    OperatorForward,
    SolverForward,
    check_same_setup,
    inversion_range,
    make_forward,
)
from .fwi import (
    InversionResult,
    gaussian_smooth,
    invert,
    laplacian_penalty,
    model_misfit,
    multiscale,
    observation_solver,
    observe,
    parse_stages,
)
from .hybrid import HybridResult, SolverCheck, hybrid
from .loop import ProgressCallback
from .models import BENCHMARK_MODELS, BENCHMARK_SEED, benchmark_model
from .survey import Survey, add_noise, default_sources, lowpass, receiver_mask, record

__all__ = [
    "BENCHMARK_MODELS", "BENCHMARK_SEED", "ForwardModel", "HybridResult", "InversionResult",
    "OperatorForward", "SolverCheck", "SolverForward", "Survey", "add_noise", "benchmark_model",
    "check_same_setup", "default_sources", "gaussian_smooth", "hybrid", "inversion_range",
    "invert", "laplacian_penalty", "lowpass", "make_forward", "model_misfit", "multiscale",
    "observation_solver", "ProgressCallback",
    "observe", "parse_stages", "receiver_mask", "record",
]
