"""Training's error contract: bad architecture arguments are user errors; only a compile error
falls back to eager (and says so); out-of-memory propagates as what it is."""

import json
import re

import pytest
import torch
from torch._dynamo.exc import BackendCompilerFailed

from seisfno import SeisfnoError
from seisfno.cli import main
from seisfno.operator import fit, synthetic_dataset
from seisfno.physics import get_preset

PRESET = get_preset("quick").replace(n=17, nt_out=6)
ARGS = {"width": 8, "modes": 4, "n_layers": 1, "projection": 8}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from seisfno.data import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("data") / "tiny.zarr", PRESET, 6, seed=0,
                            progress=False)


@pytest.mark.parametrize("arg, match", [
    ("norm=bogus", "unknown norm 'bogus'"),
    ("depth=3", "unknown argument.*depth.*it takes"),
    ("width=-3", "width must be a positive integer"),
    ("width=abc", "width must be a positive integer"),
    ("padding=-0.5", "padding must be a number >= 0"),
    ("norm=3", "norm must be a string"),
])
def test_bad_arch_args_are_one_line_errors(store, tmp_path, capsys, arg, match):
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(store), "--out", str(tmp_path / "r"), "--arch-arg", arg,
              "--n-val", "2", "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("seisfno: error:"), err
    assert len(err.strip().splitlines()) == 1 and re.search(match, err), err
    assert not (tmp_path / "r").exists()


def test_fit_rejects_bad_arch_args_before_training(tmp_path):
    v, s, u = synthetic_dataset(PRESET, 8)
    with pytest.raises(SeisfnoError, match="unknown norm"):
        fit(v, s, u, PRESET, tmp_path, arch_args={**ARGS, "norm": "bogus"}, epochs=1, n_val=2,
            device="cpu", progress=False)
    assert not (tmp_path / "checkpoint").exists()


def _fit_with_compiled(tmp_path, monkeypatch, compiled):
    monkeypatch.setattr(torch, "compile", lambda model, *a, **k: compiled)
    v, s, u = synthetic_dataset(PRESET, 12)
    return fit(v, s, u, PRESET, tmp_path, arch_args=ARGS, epochs=1, n_val=4, batch_size=4,
               device="cpu", compile="on", progress=False)


def test_compile_error_falls_back_to_eager_and_says_so(tmp_path, monkeypatch, capfd,
                                                       one_thread):
    calls = []

    def broken(x):
        calls.append(1)
        raise BackendCompilerFailed(lambda g: g, RuntimeError("no C++ compiler"), None)

    r = _fit_with_compiled(tmp_path, monkeypatch, broken)
    assert r.epochs_run == 1 and len(calls) == 1  # tried once, then eager
    err = capfd.readouterr().err
    assert "torch.compile failed (BackendCompilerFailed" in err and "without compilation" in err
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["training"]["compile_fallback"].startswith("torch.compile failed")


@pytest.mark.parametrize("exc", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    MemoryError(),
    BackendCompilerFailed(lambda g: g, torch.OutOfMemoryError("out of memory"), None),
    RuntimeError("an error of the model, not of the compiler"),
])
def test_out_of_memory_and_other_errors_are_not_retried(tmp_path, monkeypatch, exc, one_thread):
    def fails(x):
        raise exc

    with pytest.raises(type(exc)):
        _fit_with_compiled(tmp_path, monkeypatch, fails)
