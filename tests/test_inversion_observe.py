"""Observations without inverse crime: a finer true model, grid and time step than FWI's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_inversion_common import CHEAP, SRC, TINY, TRUE

from seisfno import SeisfnoError
from seisfno.inversion import SolverForward, benchmark_model, invert, model_misfit, observe
from seisfno.inversion.fwi import observation_solver, true_on_grid
from seisfno.physics import AcousticSolver, get_preset, square_anomaly

FINE_TRUE = square_anomaly(TINY.grid.refine(2), size_m=1250.0)


def test_benchmark_models_at_twice_the_resolution_agree_at_the_inversion_nodes():
    p = get_preset("quick")
    for name in ("von-karman", "square", "blocky"):
        fine = benchmark_model(name, p, refine=2)
        assert fine.shape == (127, 127) and fine.dtype == np.float32
        np.testing.assert_array_equal(fine[::2, ::2], benchmark_model(name, p))
        assert np.abs(fine[1::2, 1::2] - fine[::2, ::2][:-1, :-1]).max() > 0  # sub-grid detail
    with pytest.raises(SeisfnoError, match="refine"):
        benchmark_model("square", p, refine=0)


def test_the_observation_solver_is_finer_in_space_and_time_than_the_inversions():
    obs = observation_solver(TINY)
    assert obs.grid == TINY.grid.refine(2)
    inv = SolverForward(TINY).plan
    plan = obs.plan_for(*TINY.velocity.clip_mps)
    assert plan.fine.dx_m <= 0.5 * inv.fine.dx_m + 1e-9
    assert plan.dt_s < 0.6 * inv.dt_s


def test_observations_from_a_finer_model_differ_from_the_inverse_crime():
    d = observe(FINE_TRUE, SRC[:2], TINY)
    assert d.shape == (2, TINY.nt_out, *TINY.grid.shape) and d.is_contiguous()
    crime = observe(TRUE, SRC[:2], TINY, solver=AcousticSolver.from_preset(TINY))
    rel = float(torch.linalg.vector_norm(d - crime) / torch.linalg.vector_norm(crime))
    assert 1e-4 < rel < 0.3, rel  # the same physics, a genuinely different discretization
    # a true model on the inversion grid is interpolated to the finer one
    d2 = observe(TRUE, SRC[:2], TINY)
    assert 0 < float(torch.linalg.vector_norm(d2 - d)) < 0.3 * float(torch.linalg.vector_norm(d))
    with pytest.raises(SeisfnoError, match="true velocity"):
        observe(np.full((20, 20), 3000.0, np.float32), SRC[:2], TINY)


def test_inversion_with_a_finer_true_model_measures_misfit_at_its_own_nodes():
    fwd = SolverForward(TINY, **CHEAP)
    r = invert(fwd, SRC, None, FINE_TRUE, iterations=1, lr=0.03,
               obs_solver=observation_solver(TINY, FINE_TRUE, **CHEAP))
    assert r.observations.startswith("solver:torch on a 2x finer grid")
    np.testing.assert_array_equal(true_on_grid(FINE_TRUE, TINY.grid).numpy(), TRUE)
    assert r.misfit[0] == pytest.approx(model_misfit(np.full_like(TRUE, 3000.0), TRUE))
