"""The FWI gradient on the path users run, in float64: a directional-derivative check.

``quick``'s plan at reduced size (its spacing, 2 Hz, low-passed output, a 12 x 12 grid and 10
samples): refine 2, two C-PML strips per axis, checkpointed time stepping, and the inversion's
loss (receivers, low-pass in time, data normalisation) as :func:`~seisfno.inversion.invert`
computes it.
"""

from __future__ import annotations

import numpy as np
import torch

from seisfno.inversion import SolverForward, default_sources
from seisfno.inversion.loop import Problem
from seisfno.inversion.survey import lowpass, receiver_mask, record
from seisfno.physics import Grid, fd, get_preset, square_anomaly

QUICK = get_preset("quick")
SMALL = QUICK.replace(grid=Grid(12, 12, QUICK.grid.dz_m, QUICK.grid.dx_m), nt_out=10)


def test_loss_gradient_matches_a_float64_directional_derivative(one_thread, monkeypatch):
    segments = []
    real = fd._Checkpointed.apply
    monkeypatch.setattr(fd._Checkpointed, "apply",
                        lambda *a: segments.append(len(a[1])) or real(*a))
    fwd = SolverForward(SMALL)
    plan = fwd.plan
    assert plan.refine >= 2 and SMALL.decimation == "lowpass"
    assert fd.cpml_profiles(plan)["az"].shape[0] == 2  # two strips per axis, not one
    src = default_sources(SMALL.grid, 2)
    mask = receiver_mask(SMALL.grid, "every:2")
    dt, f_hz = SMALL.dt_out_s, 1.5
    true = torch.as_tensor(square_anomaly(SMALL.grid, size_m=600.0), dtype=torch.float64)
    with torch.no_grad():
        d = lowpass(record(fwd(true, src), mask), dt, f_hz)
    problem = Problem(fwd, src, d, mask, dt, f_hz, float((d**2).sum()),
                      laplacian_weight=1e-3)
    gen = torch.Generator().manual_seed(0)
    m = (3.0 + 0.05 * torch.randn(SMALL.grid.shape, generator=gen, dtype=torch.float64))
    direction = torch.randn(SMALL.grid.shape, generator=gen, dtype=torch.float64)
    mp = m.clone().requires_grad_(True)
    problem.loss_and_grad(mp)  # backward of the normalised loss (+ penalty) into mp.grad
    assert segments and segments[0] > 1 and mp.grad.dtype == torch.float64  # checkpointed
    grad_dot = float((mp.grad * direction).sum())

    def objective(x):
        with torch.no_grad():
            pred = lowpass(record(fwd(x * 1000.0, src), mask), dt, f_hz)
            lap = (x[2:, 1:-1] + x[:-2, 1:-1] + x[1:-1, 2:] + x[1:-1, :-2] - 4 * x[1:-1, 1:-1])
            return float(((pred - d) ** 2).sum()) / problem.data_norm + 1e-3 * float((lap**2).sum())

    eps = 1e-4  # km/s along a unit-variance direction
    fd_dot = (objective(m + eps * direction) - objective(m - eps * direction)) / (2 * eps)
    assert abs(grad_dot) > 1e-6
    np.testing.assert_allclose(grad_dot, fd_dot, rtol=1e-6)
