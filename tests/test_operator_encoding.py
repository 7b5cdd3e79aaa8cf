"""Encodings on any grid of the same domain."""

import numpy as np
import pytest
import torch

from seisfno import SeisfnoError
from seisfno.operator import Normalization, encode_inputs, source_bump
from seisfno.physics import get_preset


@pytest.mark.parametrize("n", [64, 128, 33, 65])
def test_source_bump_peaks_at_physical_source(n):
    g = get_preset("quick").grid.with_shape(n)
    src = np.array([[g.x_m[n // 3], g.z_m[n // 2]]])
    b = source_bump(g, src)
    assert b.shape == (1, n, n)
    iz, ix = np.unravel_index(int(b[0].argmax()), (n, n))
    assert (iz, ix) == (n // 2, n // 3)
    assert float(b.max()) == pytest.approx(1.0)
    # Its integral (in m^2) is the same function of position on every grid: pi w^2.
    area = float(b.sum()) * g.dz_m * g.dx_m
    assert area == pytest.approx(np.pi * 375.0**2, rel=0.05)


def test_encoding_consistent_across_grids():
    g64 = get_preset("quick").grid
    g127 = g64.with_shape(127)
    norm = Normalization(3000.0, 150.0, 2500.0, 3500.0, 1e-9)
    src = np.array([[5000.0, 3000.0]])
    v64 = torch.full((1, 64, 64), 3150.0)
    v127 = torch.full((1, 127, 127), 3150.0)
    a, b = encode_inputs(v64, src, g64, norm), encode_inputs(v127, src, g127, norm)
    assert a.shape == (1, 4, 64, 64) and b.shape == (1, 4, 127, 127)
    # corners and the normalized velocity agree; 127 = 2 * 63 + 1 shares every 64-grid node
    torch.testing.assert_close(b[..., ::2, ::2], a, atol=1e-6, rtol=0)
    assert float(a[0, 0].mean()) == pytest.approx(1.0)


def test_normalization_fit_and_roundtrip():
    v = np.random.default_rng(0).normal(3000, 150, (5, 8, 8)).astype(np.float32)
    u = np.ones((5, 3, 8, 8), np.float32) * 2e-9
    n = Normalization.fit(v, u)
    assert n.u_scale == pytest.approx(2e-9)
    assert Normalization.from_dict(n.to_dict()) == n
    with pytest.raises(SeisfnoError):
        Normalization(3000.0, 0.0, 1.0, 2.0, 1.0)
