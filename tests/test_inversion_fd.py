"""FWI with the finite-difference solver on a tiny grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_inversion_common import CHEAP, SRC, TINY, TRUE, tiny_obs_solver, tiny_observations

from seisfno import SeisfnoError
from seisfno.inversion import SolverForward, invert, observe


@pytest.fixture(scope="module")
def fwd():
    return SolverForward(TINY, **CHEAP)


@pytest.fixture(scope="module")
def observed():
    return tiny_observations()


@pytest.fixture(scope="module")
def base(fwd, observed):
    return invert(fwd, SRC, observed, TRUE, iterations=8, lr=0.03)


def test_fd_inversion_reduces_misfit(base):
    assert base.stopped_reason == "completed" and base.iterations == 8
    assert base.model_misfit < 0.85 * base.start_misfit
    assert base.loss[-1] < 0.5 * base.loss[0]
    assert base.misfit.shape == (9,) and base.time_s.shape == (9,)
    assert base.seconds_per_iteration > 0 and np.all(np.diff(base.time_s) > 0)
    assert base.start_misfit == pytest.approx(
        np.linalg.norm(3000.0 - TRUE) / np.linalg.norm(TRUE), rel=1e-5)


def test_observations_from_true_model_use_the_solver(fwd, observed, base):
    r = invert(fwd, SRC, None, TRUE, iterations=2, lr=0.03, obs_solver=tiny_obs_solver())
    assert r.observations.startswith("solver:torch")
    np.testing.assert_allclose(r.loss, base.loss[:2], rtol=1e-5)


def test_bounds_are_respected(fwd, observed):
    r = invert(fwd, SRC, observed, TRUE, iterations=3, lr=0.05, bounds_mps=(2950.0, 3050.0))
    assert r.velocity.min() >= 2950.0 - 1e-3 and r.velocity.max() <= 3050.0 + 1e-3
    with pytest.raises(SeisfnoError, match="leave the range"):
        invert(fwd, SRC, observed, TRUE, iterations=1, bounds_mps=(1000.0, 3000.0))


def test_smoothing_and_laplacian_change_the_result(fwd, observed, base):
    sm = invert(fwd, SRC, observed, TRUE, iterations=3, lr=0.03, smooth_grad_m=500.0)
    lap = invert(fwd, SRC, observed, TRUE, iterations=3, lr=0.03, laplacian_weight=10.0)
    plain = invert(fwd, SRC, observed, TRUE, iterations=3, lr=0.03)
    assert not np.allclose(sm.velocity, plain.velocity)
    assert not np.allclose(lap.velocity, plain.velocity)
    # smoothing makes the update smoother (smaller roughness)
    rough = lambda v: float(np.abs(np.diff(v - 3000.0, axis=0)).sum())  # noqa: E731
    assert rough(sm.velocity) < rough(plain.velocity)


def test_receiver_subset_noise_and_batches(fwd, observed):
    s1 = invert(fwd, SRC, observed, TRUE, iterations=2, lr=0.03, receivers="surface",
                noise_snr_db=20.0, noise_seed=3, batch_sources=4)
    s2 = invert(fwd, SRC, observed, TRUE, iterations=2, lr=0.03, receivers="surface",
                noise_snr_db=20.0, noise_seed=3)
    np.testing.assert_allclose(s1.loss, s2.loss, rtol=1e-4)
    np.testing.assert_allclose(s1.velocity, s2.velocity, atol=1e-2)
    full = invert(fwd, SRC, observed, TRUE, iterations=1, lr=0.03)
    assert s1.data_norm < full.data_norm


def test_bad_inputs(fwd, observed):
    with pytest.raises(SeisfnoError, match="observations have shape"):
        invert(fwd, SRC[:5], observed, iterations=1)
    with pytest.raises(SeisfnoError, match="observations or a true model"):
        invert(fwd, SRC, iterations=1)
    with pytest.raises(SeisfnoError, match="at least one source"):
        invert(fwd, np.zeros((0, 2)), observed[:0], iterations=1)
    with pytest.warns(UserWarning, match="illuminates"):
        invert(fwd, SRC[:1], observed[:1], iterations=0)
    with pytest.raises(SeisfnoError, match="AcousticSolver"):
        observe(TRUE, SRC, TINY, solver=lambda v, s: torch.zeros(1))
