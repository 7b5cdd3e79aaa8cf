"""FWI with an operator (a stand-in honouring the contract, and a real tiny untrained FNO),
the hybrid scheme, and clean stops on NaN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_inversion_common import (
    CHEAP,
    SRC,
    TINY,
    TRUE,
    StandInOperator,
    tiny_obs_solver,
    tiny_observations,
)

from seisfno import SeisfnoError
from seisfno.inversion import (
    OperatorForward,
    SolverForward,
    hybrid,
    invert,
    make_forward,
)


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
    obs = tiny_observations()
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


def test_hybrid_continues_from_a_given_operator_run():
    """Reusing the operator-only run as the first phase gives the hybrid that runs it again."""
    op = OperatorForward(StandInOperator(), name="fno:standin")
    fd = SolverForward(TINY, **CHEAP)
    obs = tiny_observations()
    ran = hybrid(op, fd, SRC, obs, TRUE, operator_iterations=3, solver_iterations=2, lr=0.03)
    r_op = invert(op, SRC, obs, TRUE, iterations=3, lr=0.03)
    reused = hybrid(op, fd, SRC, obs, TRUE, operator_iterations=3, solver_iterations=2,
                    lr=0.03, operator_phase=r_op)
    assert reused.operator_phase_reused and not ran.operator_phase_reused
    assert reused.summary()["operator_phase_reused"]
    np.testing.assert_allclose(reused.velocity, ran.velocity, rtol=1e-6)
    np.testing.assert_allclose(reused.misfit, ran.misfit, rtol=1e-6)
    np.testing.assert_array_equal(reused.time_s[:4], r_op.time_s)  # its own measured times
    with pytest.raises(SeisfnoError, match="would run 5"):
        hybrid(op, fd, SRC, obs, TRUE, operator_iterations=5, solver_iterations=1,
               operator_phase=r_op)
    with pytest.raises(SeisfnoError, match="made with 'fno:standin'"):
        hybrid(OperatorForward(StandInOperator(), name="fno:other"), fd, SRC, obs, TRUE,
               operator_iterations=3, solver_iterations=1, operator_phase=r_op)


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
    obs = tiny_observations()
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


def test_fast_path_matches_predict_in_values_and_gradients(tmp_path):
    """The FWI fast path (cached constant channels, frozen weights) is the model's ``predict``."""
    from seisfno.operator import load_model

    _save_tiny_fno(tmp_path / "run", TINY)
    model = load_model(tmp_path / "run")
    fwd = OperatorForward(load_model(tmp_path / "run"), name="fno:tiny")
    assert fwd._fast
    v = torch.as_tensor(TRUE).float().requires_grad_(True)
    v_ref = v.detach().clone().requires_grad_(True)
    for src in (SRC, SRC[::-1].copy(), SRC):  # a new source set must not reuse the cache
        u = fwd(v, src)
        ref = model.predict(v_ref.expand(len(src), *v_ref.shape), src)
        torch.testing.assert_close(u, ref, rtol=1e-5, atol=1e-6 * float(ref.detach().abs().max()))
        w = torch.randn_like(ref)
        (g,) = torch.autograd.grad((u * w).sum(), v)
        (g_ref,) = torch.autograd.grad((ref * w).sum(), v_ref)
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6 * float(g_ref.abs().max()))
    assert not any(p.requires_grad for p in fwd.model.net.parameters())


def test_compiled_operator_matches_eager(tmp_path):
    from seisfno.operator import load_model

    _save_tiny_fno(tmp_path / "run", TINY)
    eager = OperatorForward(load_model(tmp_path / "run"))
    comp = OperatorForward(load_model(tmp_path / "run"), compile=True)
    v = torch.as_tensor(TRUE).float()
    torch.testing.assert_close(comp(v, SRC), eager(v, SRC), rtol=1e-4, atol=1e-12)
    with pytest.raises(SeisfnoError, match="compile needs a loaded operator"):
        OperatorForward(StandInOperator(), compile=True)


def test_time_limit_stops_cleanly():
    fwd = OperatorForward(StandInOperator(), name="fno:standin")
    obs = tiny_observations()
    r = invert(fwd, SRC, obs, TRUE, iterations=50, lr=0.03, time_limit_s=1e-9)
    assert r.iterations == 1 and r.stopped_reason.startswith("time limit")
    assert len(r.misfit) == 2 and r.model_misfit == pytest.approx(r.misfit[1])
    with pytest.raises(SeisfnoError, match="time limit must be positive"):
        invert(fwd, SRC, obs, TRUE, iterations=2, time_limit_s=0)
