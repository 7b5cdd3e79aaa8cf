"""Early stopping of FWI by an independent check, and the solver as the operator's referee."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_inversion_common import CHEAP, SRC, TINY, TRUE, StandInOperator, tiny_observations

from seisfno import SeisfnoError
from seisfno.inversion import (
    OperatorForward,
    SolverCheck,
    SolverForward,
    hybrid,
    invert,
    multiscale,
)
from seisfno.physics import homogeneous


@pytest.fixture
def obs():
    return tiny_observations()


def scripted(values):
    """A check that returns ``values`` in turn and records the models it saw."""
    seen = []

    def check(v, lowpass_hz):
        seen.append(v.detach().cpu().clone())
        return values[len(seen) - 1]

    return check, seen


def _op():
    return OperatorForward(StandInOperator(), name="fno:standin")


def test_stops_after_patience_and_keeps_the_best_checked_model(obs):
    check, seen = scripted([5.0, 4.0, 3.0, 3.5, 3.6, 1.0])
    r = invert(_op(), SRC, obs, TRUE, iterations=20, lr=0.03, check=check, check_every=2,
               check_patience=2)
    # checks at steps 0, 2, 4, 6, 8: the best is at 4, then two without improvement
    assert r.iterations == 8 and r.stopped_reason.startswith("check:")
    np.testing.assert_array_equal(r.checks, [[0, 5], [2, 4], [4, 3], [6, 3.5], [8, 3.6]])
    ref = invert(_op(), SRC, obs, TRUE, iterations=4, lr=0.03)
    np.testing.assert_allclose(r.velocity, ref.velocity, rtol=1e-6)
    torch.testing.assert_close(seen[2], torch.as_tensor(ref.velocity))
    assert r.options["check_best_iteration"] == 4
    assert r.model_misfit == pytest.approx(ref.model_misfit, rel=1e-6)
    assert r.misfit[-1] == pytest.approx(r.model_misfit)  # the curve ends at the model returned


def test_a_completed_run_also_returns_the_best_checked_model(obs):
    check, _ = scripted([5.0, 2.0, 3.0, 4.0])
    r = invert(_op(), SRC, obs, TRUE, iterations=5, lr=0.03, check=check, check_every=2,
               check_patience=5)
    # checks at 0, 2, 4 and at the last step, 5
    assert r.stopped_reason == "completed" and r.checks[:, 0].tolist() == [0, 2, 4, 5]
    ref = invert(_op(), SRC, obs, TRUE, iterations=2, lr=0.03)
    np.testing.assert_allclose(r.velocity, ref.velocity, rtol=1e-6)
    with pytest.raises(SeisfnoError, match="at least 1"):
        invert(_op(), SRC, obs, TRUE, iterations=2, check=check, check_every=0)


def test_a_check_stop_ends_a_stage_not_the_continuation(obs):
    check, _ = scripted([5.0, 6.0, 7.0, 1.0, 0.9, 0.8])
    r = multiscale(_op(), SRC, obs, TRUE, stages=[(0.7, 6), (None, 2)], lr=0.03, check=check,
                   check_every=1, check_patience=2)
    assert r.options["stages"] == [[0.7, 2], [None, 2]]  # stage 1 stopped at step 2
    assert r.options["stage_stops"][0].startswith("check:") and r.stopped_reason == "completed"
    assert r.checks[:, 0].tolist() == [0, 1, 2, 2, 3, 4]  # stage 2's checks run on from step 2
    assert r.options["check_best_iteration"] == 4  # counted over both stages


def test_solver_check_prefers_the_true_model(obs):
    fd = SolverForward(TINY, **CHEAP)
    chk = SolverCheck(fd, SRC, obs, n_sources=3)
    assert len(chk.sources) == 3 and chk.indices.tolist() == [0, 2, 5]
    good = chk(torch.as_tensor(TRUE), None)
    bad = chk(torch.as_tensor(homogeneous(TINY.grid, 3000.0)), None)
    assert 0 <= good < 0.1 * bad
    assert chk(torch.as_tensor(TRUE), 0.7) < chk(torch.as_tensor(homogeneous(TINY.grid)), 0.7)
    with pytest.raises(SeisfnoError, match="at least one source"):
        SolverCheck(fd, SRC, obs, n_sources=0)


def test_hybrid_switches_on_the_solver_check(obs, monkeypatch):
    values = iter([5.0, 4.0, 6.0, 7.0] + [9.0] * 20)
    monkeypatch.setattr(SolverCheck, "__call__", lambda self, v, f: next(values))
    fd = SolverForward(TINY, **CHEAP)
    h = hybrid(_op(), fd, SRC, obs, TRUE, operator_iterations=10, solver_iterations=1, lr=0.03,
               solver_check_sources=2, check_every=1, check_patience=2)
    op = h.operator_phase
    # checks at 0..3: the best at 1, two worse, so the operator phase stops after 3 steps
    assert op.iterations == 3 and op.checks[:, 0].tolist() == [0, 1, 2, 3]
    ref = invert(_op(), SRC, obs, TRUE, iterations=1, lr=0.03)
    np.testing.assert_allclose(h.solver_phase.start_velocity, ref.velocity, rtol=1e-6)
    assert op.misfit[-1] == pytest.approx(ref.model_misfit, rel=1e-6)  # the model in hand
    assert h.summary()["switch_from_iteration"] == 1
    assert h.summary()["stopped_reason"] == "completed"  # a check stop is a switch, not a failure
    assert h.solver_phase.checks is None  # the solver is not checked
    # A discarded operator iterate (step 2) is never credited by time_to_misfit, even when it
    # was the closest to the truth: only the kept model (steps 0-1, then 3) and the solver count.
    crafted = dataclasses.replace(h, misfit=np.array([0.05, 0.04, 0.01, 0.04, 0.03]))
    assert crafted.time_to_misfit(0.01) is None
    assert crafted.time_to_misfit(0.03) == pytest.approx(float(h.time_s[4]))


def test_solver_check_sees_the_inversions_noise(obs):
    from seisfno.inversion import add_noise

    fd = SolverForward(TINY, **CHEAP)
    chk = SolverCheck(fd, SRC, obs, n_sources=3, noise_snr_db=10.0, noise_seed=3)
    torch.testing.assert_close(chk.observed, add_noise(obs.float(), 10.0, 3)[chk.indices])


def test_time_limit_bounds_all_stages_together(obs):
    r = multiscale(_op(), SRC, obs, TRUE, stages=[(0.7, 5), (None, 5)], lr=0.03,
                   time_limit_s=1e-9)
    assert r.iterations == 1 and r.options["stages"] == [[0.7, 1]]
    assert r.stopped_reason.startswith("time limit")
