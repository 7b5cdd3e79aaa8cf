"""A cheap stand-in for solver data: expanding Gaussian rings (tests, demos, smoke runs).

The wavefield of sample i is ``exp(-(r - c_i t)^2 / w^2)`` with ``r`` the distance to the source
and ``c_i`` the sample's mean velocity, so it depends on both inputs, costs microseconds, and an
operator can learn it in a few epochs. Not physics: use the solver for anything you report.
"""

from __future__ import annotations

import numpy as np

from ..physics import Preset


def synthetic_dataset(preset: Preset, n: int, seed: int = 0, width_m: float = 1200.0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` samples on ``preset``'s grid: velocity (n, nz, nx) float32 m/s, sources (n, 2) m,
    wavefield (n, nt, nz, nx) float32."""
    rng = np.random.default_rng(seed)
    g = preset.grid
    zz, xx = np.meshgrid(g.z_m, g.x_m, indexing="ij")
    t = np.arange(preset.nt_out) * preset.dt_out_s
    v = np.empty((n, *g.shape), np.float32)
    s = np.empty((n, 2))
    u = np.empty((n, preset.nt_out, *g.shape), np.float32)
    for i in range(n):
        c = rng.uniform(2700.0, 3300.0)
        slope = rng.uniform(-100.0, 100.0)
        v[i] = c + slope * (zz / g.depth_m - 0.5)
        s[i] = rng.uniform(0.2, 0.8, 2) * (g.width_m, g.depth_m)
        r = np.hypot(xx - s[i, 0], zz - s[i, 1])
        u[i] = np.exp(-((r[None] - c * t[:, None, None]) ** 2) / width_m**2) * 1e-8
    return v, s, u


__all__ = ["synthetic_dataset"]
