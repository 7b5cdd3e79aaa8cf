"""Shared tiny setup for the inversion tests, plus survey and benchmark-model tests."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from seisfno import SeisfnoError
from seisfno.inversion import (
    add_noise,
    benchmark_model,
    default_sources,
    observe,
    receiver_mask,
    record,
)
from seisfno.physics import AcousticSolver, get_preset, square_anomaly

torch.set_num_threads(1)

#: 16 x 16 nodes at 250 m (3.75 km), 2 Hz, 14 samples at 0.15 s: the cheapest sensible FWI.
TINY = get_preset("quick", n=16, spacing_m=250.0, f_peak_hz=2.0, dt_out_s=0.15, nt_out=14)
#: Plan options that make the solver cheap (coarse and dispersive, but consistent).
CHEAP = dict(refine=1, sponge_wavelengths=0.75, min_sponge_cells=8)


def tiny_obs_solver(true=None) -> AcousticSolver:
    lo, hi = TINY.velocity.clip_mps
    return AcousticSolver.from_preset(TINY, velocity_range_mps=(lo, hi), **CHEAP)


#: The true model and the 6 sources of the inversion tests.
TRUE = square_anomaly(TINY.grid, size_m=1250.0)
SRC = default_sources(TINY.grid, 6)


@functools.lru_cache(maxsize=1)
def tiny_observations() -> torch.Tensor:
    """Observations of ``TRUE`` from ``SRC`` (made once; callers must not modify them)."""
    return observe(TRUE, SRC, TINY, solver=tiny_obs_solver())


class StandInOperator:
    """Honours the ``seisfno.operator`` model contract by wrapping a (cheap) solver."""

    def __init__(self, preset=TINY, nan_after: int | None = None):
        self.preset = preset
        self.solver = AcousticSolver.from_preset(preset, velocity_range_mps=(2000.0, 4400.0),
                                                 **CHEAP)
        self.calls: list[torch.Tensor] = []
        self.nan_after = nan_after

    def predict(self, velocity: torch.Tensor, sources_xz_m) -> torch.Tensor:
        assert velocity.ndim == 3 and tuple(sources_xz_m.shape) == (velocity.shape[0], 2)
        self.calls.append(velocity.detach()[0].clone())
        out = self.solver(velocity, torch.as_tensor(sources_xz_m).cpu().numpy())
        if self.nan_after is not None and len(self.calls) > self.nan_after:
            out = out * float("nan")
        return out


def test_default_sources_paper_layout():
    g = get_preset("quick").grid
    s = default_sources(g, 20)
    assert s.shape == (20, 2)
    np.testing.assert_allclose(np.unique(s[:, 0]), [1000, 3000, 5000, 7000, 9000])
    np.testing.assert_allclose(np.unique(s[:, 1]), [1250, 3750, 6250, 8750])
    assert default_sources(g, 7).shape == (7, 2)
    with pytest.raises(SeisfnoError):
        default_sources(g, 0)


def test_receiver_masks():
    g = TINY.grid
    assert receiver_mask(g, "all") is None
    surf = receiver_mask(g, "surface")
    assert surf.sum() == g.nx and surf[0].all()
    every = receiver_mask(g, "every:4")
    assert every.sum() == 16
    u = torch.randn(2, 3, *g.shape)
    assert record(u, surf).shape == (2, 3, g.nx)
    with pytest.raises(SeisfnoError):
        receiver_mask(g, "sideways")


def test_noise_is_seeded_and_has_the_snr():
    d = torch.randn(3, 10, 16, 16)
    a, b, c = add_noise(d, 10.0, 1), add_noise(d, 10.0, 1), add_noise(d, 10.0, 2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    snr = 10 * np.log10(float((d**2).mean() / ((a - d) ** 2).mean()))
    assert abs(snr - 10.0) < 0.3
    assert add_noise(d, None) is d


def test_benchmark_models():
    p = get_preset("quick")
    sq = benchmark_model("square", p)
    assert sq.shape == p.grid.shape and sq.max() == pytest.approx(3150.0)
    vk = benchmark_model("von-karman", p)
    np.testing.assert_array_equal(vk, benchmark_model("von_karman", p))
    lo, hi = p.velocity.clip_mps
    assert lo <= vk.min() and vk.max() <= hi
    bl = benchmark_model("blocky", p)
    assert len(np.unique(bl)) > 2
    with pytest.raises(SeisfnoError):
        benchmark_model("marmousi", p)
