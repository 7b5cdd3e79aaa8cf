"""Benchmark velocity models for FWI, by name (:func:`benchmark_model`).

* ``von-karman``: a held-out von Karman field with the preset's statistics, drawn from
  ``sample_rng(seed=2021, index=0)``. The seed 2021 is reserved for benchmarks: training and
  validation data must use other base seeds.
* ``square``: the paper's 5 % square anomaly (2 km side, 3150 m/s in 3000 m/s, centred; Fig. 4a).
* ``blocky``: sharp rectangular blocks of up to +/- 8 % (like the paper's Fig. 5e), drawn from
  ``sample_rng(seed=2021, index=1)``.
"""

from __future__ import annotations

import numpy as np

from .._errors import SeisfnoError
from ..physics import Preset, blocky, get_preset, sample_rng, square_anomaly, von_karman

#: Base seed of the benchmark models (keep it out of training-data seeds).
BENCHMARK_SEED = 2021

BENCHMARK_MODELS = ("von-karman", "square", "blocky")


def benchmark_model(name: str, preset: Preset | str = "quick") -> np.ndarray:
    """A named benchmark model ``(nz, nx)`` float32 in m/s on the preset's grid."""
    p = get_preset(preset)
    g = p.grid
    key = name.replace("_", "-").lower()
    if key in ("von-karman", "vonkarman"):
        vk = p.velocity
        return von_karman(g, sample_rng(BENCHMARK_SEED, 0), mean_mps=vk.mean_mps,
                          sigma_mps=vk.sigma_mps, kappa=vk.kappa, corr_len_m=vk.corr_len_m,
                          clip_mps=vk.clip_mps)
    if key == "square":
        return square_anomaly(g, background_mps=3000.0, contrast=0.05, size_m=2000.0)
    if key == "blocky":
        return blocky(g, sample_rng(BENCHMARK_SEED, 1))
    raise SeisfnoError(f"unknown benchmark model {name!r}; choose one of {list(BENCHMARK_MODELS)}")
