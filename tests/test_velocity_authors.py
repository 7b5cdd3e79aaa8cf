"""The authors' velocity distribution (issue 11): their recipe, and statistics that match theirs.

The reference statistics below are those of the 20 models in
``../shared/reference/salvus_yang2021/samples_0_19.npz`` (the authors' published models),
computed with :func:`velocity_statistics`; the last test recomputes them where the file exists.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from seisfno._errors import SeisfnoError
from seisfno.physics import (
    AUTHORS_VELOCITY,
    VonKarmanParams,
    get_preset,
    sample_rng,
    von_karman_authors,
)
from seisfno.physics.velocity import velocity_statistics

GRID = get_preset("paper").grid
#: velocity_statistics of the authors' 20 reference models (m/s, m).
REFERENCE = {"mean_mps": 2997.108, "sigma_mps": 159.394, "corr_len_m": 1880.07}
REF_FILE = (Path(__file__).resolve().parents[1] / ".." / "shared" / "reference"
            / "salvus_yang2021" / "samples_0_19.npz")


def _z_scores(params: VonKarmanParams, groups: int = 40, size: int = 20) -> dict[str, float]:
    """How many standard deviations of a ``size``-model estimate the reference lies from the
    mean estimate of ``params`` (``groups`` groups of ``size`` models)."""
    stats = []
    for g in range(groups):
        models = np.stack([params.draw(GRID, sample_rng(2021, g * size + i))
                           for i in range(size)])
        stats.append(velocity_statistics(models, GRID.dx_m))
    out = {}
    for key, ref in REFERENCE.items():
        a = np.array([s[key] for s in stats])
        out[key] = (ref - a.mean()) / a.std(ddof=1)
    return out


def test_authors_statistics_match_their_models():
    """Mean, sigma and correlation length of our draws agree with their 20 models to within
    3 standard deviations of a 20-model estimate; the notebook's 10-node correlation length
    and our own default distribution do not (the test can fail)."""
    z = _z_scores(AUTHORS_VELOCITY)
    assert all(abs(v) < 3 for v in z.values()), z
    ten = dataclasses.replace(AUTHORS_VELOCITY, corr_len_m=(10 * GRID.dx_m, 10 * GRID.dx_m))
    assert _z_scores(ten)["corr_len_m"] > 5
    assert _z_scores(VonKarmanParams())["corr_len_m"] > 3


def test_authors_recipe():
    """Deterministic in (seed, index), float32, not clipped, the doubled grid normalized: the
    crop's spread varies between draws (unlike a per-crop normalization)."""
    a = von_karman_authors(GRID, sample_rng(1, 2))
    np.testing.assert_array_equal(a, von_karman_authors(GRID, sample_rng(1, 2)))
    assert a.dtype == np.float32 and a.shape == GRID.shape
    wide = von_karman_authors(GRID, sample_rng(1, 2), sigma_mps=900.0)
    assert wide.min() < 2400.0 - 300 or wide.max() > 3600.0 + 300
    spreads = [von_karman_authors(GRID, sample_rng(1, i)).std() for i in range(30)]
    assert np.std(spreads) > 5.0 and 120 < np.mean(spreads) < 160
    with pytest.raises(SeisfnoError, match="positive correlation"):
        von_karman_authors(GRID, sample_rng(0, 0), corr_len_m=(0.0, 100.0))


def test_preset_option():
    p = get_preset("paper", velocity="authors")
    assert p.velocity == AUTHORS_VELOCITY and p.velocity.method == "authors"
    v = p.velocity.draw(p.grid, sample_rng(3, 4))
    np.testing.assert_array_equal(v, von_karman_authors(
        p.grid, sample_rng(3, 4), corr_len_m=AUTHORS_VELOCITY.corr_len_m))
    # the default draw is unchanged: von_karman, clipped
    from seisfno.physics import von_karman

    d = get_preset("paper")
    np.testing.assert_array_equal(d.velocity.draw(d.grid, sample_rng(3, 4)),
                                  von_karman(d.grid, sample_rng(3, 4), clip_mps=(2400, 3600)))
    assert type(p).from_dict(json.loads(json.dumps(p.to_dict()))) == p  # a store's record
    with pytest.raises(SeisfnoError, match="unknown velocity distribution"):
        get_preset("paper", velocity="gaussian")
    with pytest.raises(SeisfnoError, match="method"):
        VonKarmanParams(method="periodic")


@pytest.mark.skipif(not REF_FILE.is_file(), reason="authors' reference models not present")
def test_reference_statistics_constants():
    with np.load(REF_FILE) as z:
        models = 3000.0 * (1 + z["dV_percent"].astype(np.float64) / 100)
    s = velocity_statistics(models, GRID.dx_m)
    for key, value in REFERENCE.items():
        assert s[key] == pytest.approx(value, rel=1e-4)


def test_generate_cli_velocity_authors(tmp_path, capsys):
    from seisfno.cli import main
    from seisfno.data import open_store

    out = tmp_path / "a.zarr"
    args = ["generate", "--out", str(out), "--samples", "2", "--preset", "quick", "--n", "17",
            "--nt-out", "4", "--seed", "5", "--workers", "1", "--no-progress"]
    with pytest.raises(SystemExit) as e:
        main(args + ["--velocity", "authors"])
    assert e.value.code in (0, None)
    assert json.loads(capsys.readouterr().out)["velocity"] == "authors"
    store = open_store(out)
    assert store.preset.velocity == AUTHORS_VELOCITY
    v, _, _ = store.load([1])
    np.testing.assert_array_equal(v[0], AUTHORS_VELOCITY.draw(store.preset.grid, sample_rng(5, 1)))
    with pytest.raises(SystemExit) as e:
        main(args[:2] + [str(tmp_path / "b.zarr")] + args[3:] + ["--velocity", "gaussian"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "unknown velocity distribution" in err
    assert len(err.strip().splitlines()) == 1
