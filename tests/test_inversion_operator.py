"""FWI with an operator (a stand-in honouring the contract, and a real tiny untrained FNO),
the hybrid scheme, and clean stops on NaN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_inversion_common import CHEAP, TINY, StandInOperator, tiny_obs_solver

from seisfno import SeisfnoError
from seisfno.inversion import (
    OperatorForward,
    SolverForward,
    default_sources,
    hybrid,
    invert,
    make_forward,
    observe,
)
from seisfno.physics import square_anomaly

TRUE = square_anomaly(TINY.grid, size_m=1250.0)
SRC = default_sources(TINY.grid, 6)


def test_operator_path_and_no_inverse_crime(monkeypatch):
    standin = StandInOperator()
    fwd = OperatorForward(standin, name="fno:standin")
    made_by = []
    import seisfno.inversion.fwi as fwi_mod

    real_observe = fwi_mod.observe

    def spy(true, src, preset, *, solver=None, **kw):
        made_by.append(type(solver).__name__)
        return real_observe(true, src, preset, solver=solver, **kw)

    monkeypatch.setattr(fwi_mod, "observe", spy)
    r = invert(fwd, SRC, None, TRUE, iterations=4, lr=0.03, obs_solver=tiny_obs_solver())
    assert made_by == ["AcousticSolver"] and r.observations.startswith("solver:")
    # the operator never saw the true model: its first call is the homogeneous start
    assert torch.all(standin.calls[0] == 3000.0)
    assert all(not torch.allclose(c, torch.as_tensor(TRUE)) for c in standin.calls)
    assert r.iterations == 4 and r.model_misfit < r.start_misfit


def test_nan_stops_cleanly_keeping_the_best_model():
    fwd = OperatorForward(StandInOperator(nan_after=3), name="fno:nan")
    obs = observe(TRUE, SRC, TINY, solver=tiny_obs_solver())
    r = invert(fwd, SRC, obs, TRUE, iterations=10, lr=0.03)
    assert "non-finite" in r.stopped_reason and r.iterations == 3
    assert np.isfinite(r.velocity).all()
    np.testing.assert_array_equal(r.velocity, r.best_velocity)
    assert r.best_iteration == 2 and r.model_misfit == pytest.approx(r.misfit[2])


def test_hybrid_runs_both_phases():
    op = OperatorForward(StandInOperator(), name="fno:standin")
    fd = SolverForward(TINY, **CHEAP)
    h = hybrid(op, fd, SRC, None, TRUE, operator_iterations=3, solver_iterations=2, lr=0.03,
               obs_solver=tiny_obs_solver())
    assert h.operator_phase.iterations == 3 and h.solver_phase.iterations == 2
    assert h.misfit.shape == (6,) and h.time_s.shape == (6,)
    assert list(h.phase) == ["start"] + ["operator"] * 3 + ["solver"] * 2
    assert np.all(np.diff(h.time_s) > 0)
    np.testing.assert_allclose(h.solver_phase.start_velocity, h.operator_phase.velocity)
    assert h.model_misfit < h.start_misfit
    assert h.time_to_misfit(h.start_misfit) == pytest.approx(0.0, abs=1e-12)
    assert h.summary()["solver_iterations"] == 2


def _save_tiny_fno(path, preset):
    from seisfno.operator import Normalization, build_model, make_card, save_model

    args = dict(nt_out=preset.nt_out, width=8, modes=4, n_layers=2, projection=16,
                norm="none", padding=0.125)
    torch.manual_seed(0)
    net = build_model("fno2d", **args)
    norm = Normalization(3000.0, 150.0, 2400.0, 3600.0, 1e-8)
    save_model(path, net, make_card("fno2d", args, norm, preset))


def test_real_operator_checkpoint_integrates(tmp_path):
    _save_tiny_fno(tmp_path / "run", TINY)
    fwd = make_forward(f"fno:{tmp_path / 'run'}")
    assert fwd.name.startswith("fno:") and fwd.preset.grid == TINY.grid
    obs = observe(TRUE, SRC, TINY, solver=tiny_obs_solver())
    r = invert(fwd, SRC, obs, TRUE, iterations=2, lr=0.01)
    assert r.iterations == 2 and np.isfinite(r.loss).all()
    assert not np.array_equal(r.velocity, r.start_velocity)  # gradients reached the model
    with pytest.raises(SeisfnoError, match="operator made for preset .* cannot be used with"):
        make_forward(f"fno:{tmp_path / 'run'}", "quick")


def test_bad_specs():
    with pytest.raises(SeisfnoError, match="unknown forward"):
        make_forward("sem")
    with pytest.raises(SeisfnoError, match="needs a model"):
        make_forward("fno:")
    with pytest.raises(SeisfnoError):
        make_forward("fno:no-such-model-xyz")
    with pytest.raises(SeisfnoError):
        make_forward("fd:fortran")
