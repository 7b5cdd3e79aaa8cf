"""The deepwave backend against the torch backend and the analytic solution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seisfno.physics import (
    AcousticSolver,
    get_backend,
    get_preset,
    homogeneous,
    sample_rng,
    von_karman,
)
from seisfno.physics.analytic import green2d_ricker

pytestmark = [pytest.mark.requires_deepwave, pytest.mark.usefixtures("one_thread")]
deepwave = pytest.importorskip("deepwave")


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_get_backend():
    assert get_backend("deepwave").name == "deepwave"


def test_deepwave_matches_analytic_point_decimation():
    p = get_preset("quick", nt_out=30, decimation="point")
    solver = AcousticSolver.from_preset(p, backend="deepwave")
    src = (5000.0, 5000.0)
    with torch.no_grad():
        u = solver(homogeneous(p.grid), src).double().numpy()
    x, z = np.meshgrid(p.grid.x_m, p.grid.z_m)
    r = np.hypot(x - src[0], z - src[1])
    ring = (r >= 1500) & (r <= 3000)
    ref = green2d_ricker(r[ring], np.arange(p.nt_out) * p.dt_out_s, 3000.0, p.f_peak_hz)
    assert _rel(u[:, ring], ref) < 0.01  # same source scaling and time origin, nothing fitted


@pytest.mark.parametrize("src", [[(3100.0, 4270.0), (40.0, 9990.0)]])
def test_deepwave_matches_torch_von_karman(src):
    """Heterogeneous models, a source between nodes and one at a corner; batch of two."""
    p = get_preset("quick", nt_out=40)
    v = np.stack([von_karman(p.grid, sample_rng(3, i), clip_mps=p.velocity.clip_mps)
                  for i in range(2)])
    out = {}
    for name in ("torch", "deepwave"):
        solver = AcousticSolver.from_preset(p, backend=name)
        with torch.no_grad():
            out[name] = solver(v, np.asarray(src)).double().numpy()
    for b in range(2):
        assert _rel(out["deepwave"][b], out["torch"][b]) < 0.02


def test_deepwave_gradient_flows():
    p = get_preset("quick", nt_out=12)
    solver = AcousticSolver.from_preset(p, backend="deepwave")
    v = torch.as_tensor(von_karman(p.grid, sample_rng(0, 0), clip_mps=p.velocity.clip_mps))
    v = v.double().requires_grad_()
    solver(v, (5000.0, 5000.0)).square().sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all() and v.grad.abs().max() > 0
