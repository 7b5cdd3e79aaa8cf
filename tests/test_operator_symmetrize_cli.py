"""``predict --symmetrize`` and ``evaluate --symmetrize`` with the shipped ``quick`` model."""

import json

import numpy as np
import pytest
import torch

from seisfno.cli import main
from seisfno.operator import load_model
from seisfno.operator.evaluate import predict_symmetrized
from seisfno.physics import get_preset, sample_rng, von_karman

torch.set_num_threads(1)


def _run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_predict_symmetrize(tmp_path, capsys):
    m = load_model("quick")
    v = von_karman(m.preset.grid.with_shape(32), sample_rng(7, 0))
    np.save(tmp_path / "v.npy", v)
    code, out, _ = _run(capsys, "predict", "--model", "quick", "--velocity", tmp_path / "v.npy",
                        "--source", "3000,6500", "--out", tmp_path / "u.npy", "--symmetrize")
    assert code in (0, None) and json.loads(out)["symmetrized"] is True
    with torch.no_grad():
        want = predict_symmetrized(m, v, [[3000.0, 6500.0]])[0].numpy()
        plain = m.predict(v, [[3000.0, 6500.0]])[0].numpy()
    got = np.load(tmp_path / "u.npy")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    assert np.abs(got - plain).max() > 1e-4 * np.abs(plain).max()
    # A 32 x 24 model of the square domain has unequal spacing: one line, exit 2.
    np.save(tmp_path / "r.npy", v[:, :24])
    code, _, err = _run(capsys, "predict", "--model", "quick", "--velocity", tmp_path / "r.npy",
                        "--source", "3000,6500", "--out", tmp_path / "r_u.npy", "--symmetrize")
    assert code == 2 and "square grid with equal spacing" in err
    assert len(err.strip().splitlines()) == 1


def test_evaluate_symmetrize(tmp_path, capsys):
    from seisfno.data import generate_dataset

    store = tmp_path / "s.zarr"
    generate_dataset(store, get_preset("quick", n=32), 2, seed=99, progress=False)
    res = {}
    for flag in ("--no-symmetrize", "--symmetrize"):
        code, out, _ = _run(capsys, "evaluate", "--model", "quick", "--data", store, flag)
        assert code in (0, None)
        res[flag] = json.loads(out)
    assert res["--symmetrize"]["symmetrized"] is True
    for r in res.values():
        assert np.isfinite(r["rel_l2_mean"]) and r["envelope_misfit_mean"] > 0
        assert "envelope_misfit_per_sample" not in r
    assert res["--symmetrize"]["rel_l2_mean"] != res["--no-symmetrize"]["rel_l2_mean"]
