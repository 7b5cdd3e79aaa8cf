"""The train / evaluate / predict commands on a tiny solver dataset, and their error paths."""

import json

import numpy as np
import pytest
import torch

from seisfno.cli import main
from seisfno.physics import get_preset

torch.set_num_threads(1)
PRESET = get_preset("quick", n=17, nt_out=6)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from seisfno.data import generate_dataset

    path = tmp_path_factory.mktemp("data") / "tiny.zarr"
    generate_dataset(path, PRESET, 12, seed=0)
    return path


def _run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(scope="module")
def run_dir(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(store), "--out", str(out), "--epochs", "2", "--n-val", "4",
              "--batch-size", "4", "--device", "cpu", "--no-progress",
              "--arch-arg", "width=12", "--arch-arg", "projection=24"])
    assert e.value.code in (0, None)
    return out


def test_train_evaluate_predict(run_dir, store, tmp_path, capsys):
    card = json.loads((run_dir / "model.json").read_text())
    assert card["data"]["n_train"] == 8 and card["data"]["seed"] == 0
    assert card["arch_args"]["width"] == 12 and card["arch_args"]["projection"] == 24
    code, out, _ = _run(capsys, "evaluate", "--model", run_dir, "--data", store, "--n-last", "4",
                        "--figure", tmp_path / "fig.png")
    assert code in (0, None)
    res = json.loads(out)
    assert res["n_samples"] == 4 and np.isfinite(res["rel_l2_mean"])
    assert (tmp_path / "fig.png").stat().st_size > 10_000
    v = np.full((17, 17), 3000.0, np.float32)
    np.save(tmp_path / "v.npy", v)
    code, out, _ = _run(capsys, "predict", "--model", run_dir, "--velocity", tmp_path / "v.npy",
                        "--source", "5000,3000", "--out", tmp_path / "u.npy")
    assert code in (0, None)
    u = np.load(tmp_path / "u.npy")
    assert u.shape == (6, 17, 17) and u.dtype == np.float32


def test_errors_exit_2(run_dir, store, tmp_path, capsys):
    np.save(tmp_path / "v.npy", np.full((17, 17), 3000.0, np.float32))
    cases = [
        ("predict", "--model", "no_such_model", "--velocity", tmp_path / "v.npy",
         "--source", "1,1", "--out", tmp_path / "u.npy"),
        ("predict", "--model", run_dir, "--velocity", tmp_path / "v.npy",
         "--source", "99999,1", "--out", tmp_path / "u.npy"),
        ("predict", "--model", run_dir, "--velocity", tmp_path / "v.npy",
         "--source", "1;1", "--out", tmp_path / "u.npy"),
        ("evaluate", "--model", run_dir, "--data", tmp_path / "missing.zarr"),
        ("evaluate", "--model", run_dir, "--data", store, "--resolution", "33"),
        ("train", "--data", store, "--out", tmp_path / "r", "--arch", "nope", "--no-progress"),
        ("train", "--data", store, "--out", tmp_path / "r", "--arch-arg", "width"),
        ("train", "--data", store, "--out", tmp_path / "r", "--arch-arg", "depth=3"),
    ]
    for args in cases:
        code, _, err = _run(capsys, *args)
        assert code == 2, args
        assert err.startswith("seisfno: error:") and len(err.strip().splitlines()) == 1, err


def test_python_dash_m_runs_the_command():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "seisfno", "invert", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--check-sources" in r.stdout
