"""Progress on stderr for `seisfno train` and `seisfno study ...`: a bar on a terminal (forced
here with SEISFNO_PROGRESS=1), nothing when stderr is no terminal, nothing with --quiet."""

import json

import pytest

from seisfno.cli import main
from seisfno.physics import get_preset

PRESET = get_preset("quick").replace(n=17, nt_out=6)
ARCH = ["--arch-arg", "width=8", "--arch-arg", "modes=4", "--arch-arg", "n_layers=1",
        "--arch-arg", "projection=8"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from seisfno.data import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("data") / "tiny.zarr", PRESET, 8, seed=0,
                            progress=False)


def _run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert (e.value.code or 0) == 0, err
    return out, err


@pytest.fixture
def terminal(monkeypatch):
    """``set(True)``: stderr counts as a terminal; ``set(False)``: it does not (as in pytest)."""
    def set_(on: bool):
        if on:
            monkeypatch.setenv("SEISFNO_PROGRESS", "1")
        else:
            monkeypatch.delenv("SEISFNO_PROGRESS", raising=False)
    return set_


def test_train_progress_only_on_a_terminal_and_never_when_quiet(store, tmp_path, capsys,
                                                                  terminal, one_thread):
    cmd = ["train", "--data", store, "--n-val", 4, "--epochs", 2, "--batch-size", 4,
           "--device", "cpu", *ARCH]
    terminal(False)
    out, err = _run(capsys, *cmd, "--out", tmp_path / "a")
    assert err == "" and json.loads(out)["epochs"] == 2
    terminal(True)
    out, err = _run(capsys, *cmd, "--out", tmp_path / "b")
    assert "2/2" in err and "epoch" in err and "MiB of training data" in err, err
    for flag in ("--quiet", "-q", "--no-progress"):
        out, err = _run(capsys, *cmd, flag, "--out", tmp_path / flag)
        assert err == "", (flag, err)
        assert json.loads(out)["epochs"] == 2


def test_study_datasize_progress(store, tmp_path, capsys, terminal, one_thread):
    cmd = ["study", "datasize", "--data", store, "--sizes", "2,4", "--n-val", 4, "--epochs", 1,
           "--batch-size", 2, "--augment", "none", "--device", "cpu"]
    terminal(False)
    out, err = _run(capsys, *cmd, "--out", tmp_path / "a")
    assert err == "" and [r["n_train"] for r in json.loads(out)["rows"]] == [2, 4]
    terminal(True)
    _, err = _run(capsys, *cmd, "--out", tmp_path / "b")
    assert "datasize" in err and "2/2" in err and "model" in err, err  # the study's bar
    assert "1/1" in err and "epoch" in err  # each model's bar
    _, err = _run(capsys, *cmd, "--quiet", "--out", tmp_path / "c")
    assert err == ""
    card = json.loads((tmp_path / "c" / "n4-none" / "model.json").read_text())
    assert card["training"]["batch_size"] == 2  # --batch-size reaches every model


def test_study_datasize_rejects_bad_numbers(store, tmp_path, capsys):
    base = ["study", "datasize", "--data", str(store), "--out", str(tmp_path / "x"),
            "--n-val", "4"]
    for extra in (["--batch-size", "0"], ["--epochs", "0"], ["--sizes", "0,2"]):
        with pytest.raises(SystemExit) as e:
            main([*base, *extra])
        err = capsys.readouterr().err
        assert e.value.code == 2 and len(err.strip().splitlines()) == 1, (extra, err)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("study, extra", [("square", []),
                                          ("superres", ["--nodes", 24, "--samples", 2])])
def test_study_square_and_superres_progress(store, tmp_path, capsys, terminal, one_thread,
                                            study, extra):
    _run(capsys, "train", "--data", store, "--out", tmp_path / "m", "--n-val", 4, "--epochs", 1,
         "--device", "cpu", "--quiet", *ARCH)
    cmd = ["study", study, "--model", tmp_path / "m", "--device", "cpu", *extra]
    terminal(False)
    out, err = _run(capsys, *cmd, "--out", tmp_path / "a")
    assert err == "" and json.loads(out)["study"] in ("square_anomaly", "superres")
    terminal(True)
    _, err = _run(capsys, *cmd, "--out", tmp_path / "b")
    assert study in err and "4/4" in err and "step" in err, err
    _, err = _run(capsys, *cmd, "-q", "--out", tmp_path / "c")
    assert err == ""
