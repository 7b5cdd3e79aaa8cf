"""Benchmark velocity models for FWI, by name (:func:`benchmark_model`).

* ``von-karman``: a held-out von Karman field with the preset's statistics, drawn from
  ``sample_rng(seed=2021, index=0)``. The seed 2021 is reserved for benchmarks: training and
  validation data must use other base seeds.
* ``square``: the paper's 5 % square anomaly (2 km side, 3150 m/s in 3000 m/s, centred; Fig. 4a).
* ``blocky``: sharp rectangular blocks of up to +/- 8 % (like the paper's Fig. 5e), drawn from
  ``sample_rng(seed=2021, index=1)``.

``benchmark_model(name, preset, refine=k)`` gives the same model on a k-times finer grid (for
observations without inverse crime): its every k-th node is the model on the preset's grid. The
square and the blocks are drawn on the finer grid (sharper edges); the von Karman field is the
coarse field interpolated bilinearly plus the sub-grid detail of a field drawn on the finer
grid (zero at the coarse nodes), clipped like the coarse one.
"""

from __future__ import annotations

import numpy as np

from .._errors import SeisfnoError
from ..physics import Preset, blocky, get_preset, resample, sample_rng, square_anomaly, von_karman

#: Base seed of the benchmark models (keep it out of training-data seeds).
BENCHMARK_SEED = 2021

BENCHMARK_MODELS = ("von-karman", "square", "blocky")


def benchmark_model(name: str, preset: Preset | str = "quick", refine: int = 1) -> np.ndarray:
    """A named benchmark model ``(nz, nx)`` float32 in m/s on the preset's grid.

    With ``refine=k`` the model is on ``preset.grid.refine(k)`` (``((nz - 1) k + 1, ...)``) and
    ``model[::k, ::k]`` is the model on the preset's grid (see the module docstring).
    """
    p = get_preset(preset)
    if int(refine) != refine or refine < 1:
        raise SeisfnoError(f"refine must be a positive integer, got {refine}")
    g = p.grid.refine(int(refine))
    key = name.replace("_", "-").lower()
    if key in ("von-karman", "vonkarman"):
        vk = p.velocity

        def draw(grid, index):
            return von_karman(grid, sample_rng(BENCHMARK_SEED, index), mean_mps=vk.mean_mps,
                              sigma_mps=vk.sigma_mps, kappa=vk.kappa, corr_len_m=vk.corr_len_m,
                              clip_mps=vk.clip_mps)

        coarse = draw(p.grid, 0)
        if refine == 1:
            return coarse
        fine = draw(g, 2)  # sub-grid detail: a field on the fine grid minus its coarse sampling
        detail = fine - resample(fine[::refine, ::refine], g)
        v = resample(coarse, g) + detail
        return np.clip(v, *vk.clip_mps).astype(np.float32)
    if key == "square":
        return square_anomaly(g, background_mps=3000.0, contrast=0.05, size_m=2000.0)
    if key == "blocky":
        return blocky(g, sample_rng(BENCHMARK_SEED, 1))
    raise SeisfnoError(f"unknown benchmark model {name!r}; choose one of {list(BENCHMARK_MODELS)}")
