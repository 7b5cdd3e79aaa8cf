"""Velocity models: von Karman statistics, determinism, shapes, files and resampling."""

from __future__ import annotations

import numpy as np
import pytest

from seisfno._errors import SeisfnoError
from seisfno.physics import (
    blocky,
    get_preset,
    layered,
    load_velocity,
    resample,
    sample_rng,
    square_anomaly,
    von_karman,
    von_karman_covariance,
)

GRID = get_preset("paper").grid


def test_von_karman_covariance_matches_exponential():
    """kappa = 0.5: the empirical covariance (centre rows/columns, 300 seeded draws) follows
    ``sigma^2 exp(-r/a)``."""
    sigma, a = 150.0, 1600.0
    lags = np.arange(0, 20)
    acc = np.zeros(len(lags))
    n = 300
    for i in range(n):
        f = von_karman(GRID, sample_rng(11, i), sigma_mps=sigma, corr_len_m=(a, a)) - 3000.0
        c = f[22:42, 22:42]  # the centre, away from the crop edges
        for j, lag in enumerate(lags):
            acc[j] += 0.5 * (np.mean(f[22:42, 22 + lag:42 + lag] * c)
                             + np.mean(f[22 + lag:42 + lag, 22:42] * c))
    emp = acc / n
    theory = von_karman_covariance(lags * GRID.dx_m, sigma, 0.5, a)
    np.testing.assert_allclose(theory, sigma**2 * np.exp(-lags * GRID.dx_m / a), rtol=1e-6)
    assert np.max(np.abs(emp - theory)) < 0.1 * sigma**2, (emp / sigma**2, theory / sigma**2)


def test_determinism_from_seed_and_index():
    a = von_karman(GRID, sample_rng(5, 17))
    b = von_karman(GRID, sample_rng(5, 17))
    c = von_karman(GRID, sample_rng(5, 18))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == GRID.shape
    clipped = von_karman(GRID, sample_rng(5, 17), sigma_mps=600.0, clip_mps=(2400.0, 3600.0))
    assert clipped.min() >= 2400.0 and clipped.max() <= 3600.0


def test_square_layered_blocky():
    v = square_anomaly(GRID, contrast=0.05, size_m=2000.0)
    assert set(np.unique(v)) == {3000.0, 3150.0}
    inside = v == 3150.0
    zs, xs = np.nonzero(inside)
    assert abs(GRID.x_m[xs].mean() - 5000.0) < 100 and abs(GRID.z_m[zs].mean() - 5000.0) < 100
    assert (GRID.x_m[xs].max() - GRID.x_m[xs].min()) <= 2000.0
    lay = layered(GRID, [2000.0, 2500.0, 3000.0], [3000.0, 6000.0])
    assert lay[0, 0] == 2000.0 and lay[-1, 0] == 3000.0 and np.all(lay == lay[:, :1])
    with pytest.raises(SeisfnoError):
        layered(GRID, [2000.0], [3000.0])
    with pytest.raises(SeisfnoError):
        layered(GRID, [1.0, 2.0, 3.0], [5000.0, 3000.0])
    b1 = blocky(GRID, sample_rng(0, 0))
    np.testing.assert_array_equal(b1, blocky(GRID, sample_rng(0, 0)))
    assert np.abs(b1 / 3000.0 - 1).max() <= 0.08 + 1e-6 and (b1 != 3000.0).any()


def test_load_velocity_files(tmp_path):
    v = von_karman(GRID, sample_rng(0, 0))[:10, :12]
    np.save(tmp_path / "v.npy", v)
    np.testing.assert_array_equal(load_velocity(tmp_path / "v.npy"), v)
    np.savez(tmp_path / "v.npz", vp=v)
    np.testing.assert_array_equal(load_velocity(tmp_path / "v.npz"), v)
    np.savez(tmp_path / "two.npz", a=v, b=v)
    np.testing.assert_array_equal(load_velocity(tmp_path / "two.npz", key="b"), v)
    with pytest.raises(SeisfnoError):
        load_velocity(tmp_path / "two.npz")
    segyio = pytest.importorskip("segyio")
    segyio.tools.from_array2D(str(tmp_path / "v.sgy"), np.ascontiguousarray(v.T))  # traces = x
    np.testing.assert_allclose(load_velocity(tmp_path / "v.sgy"), v, rtol=1e-6)


def test_load_velocity_errors(tmp_path):
    with pytest.raises(SeisfnoError):
        load_velocity(tmp_path / "missing.npy")
    (tmp_path / "v.txt").write_text("1 2 3")
    with pytest.raises(SeisfnoError):
        load_velocity(tmp_path / "v.txt")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(SeisfnoError):
        load_velocity(tmp_path / "bad.npy")
    np.save(tmp_path / "neg.npy", -np.ones((4, 4)))
    with pytest.raises(SeisfnoError):
        load_velocity(tmp_path / "neg.npy")
    np.save(tmp_path / "three.npy", np.ones((2, 4, 4)))
    with pytest.raises(SeisfnoError):
        load_velocity(tmp_path / "three.npy")
    (tmp_path / "bad.sgy").write_bytes(b"\0" * 100)
    with pytest.raises(SeisfnoError):
        load_velocity(tmp_path / "bad.sgy")


def test_resample_to_128_same_domain():
    v = von_karman(GRID, sample_rng(0, 3))
    fine = GRID.with_shape(128)
    assert fine.same_domain(GRID) and fine.shape == (128, 128)
    w = resample(v, fine)
    assert w.shape == (128, 128)
    # corners map to corners; a linear field is reproduced exactly
    assert w[0, 0] == pytest.approx(v[0, 0]) and w[-1, -1] == pytest.approx(v[-1, -1])
    lin = (1000.0 + 0.1 * GRID.x_m[None, :] + 0.05 * GRID.z_m[:, None]).astype(np.float32)
    expect = 1000.0 + 0.1 * fine.x_m[None, :] + 0.05 * fine.z_m[:, None]
    np.testing.assert_allclose(resample(lin, fine), expect, rtol=1e-5)
