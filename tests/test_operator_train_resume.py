"""`train` into an existing run directory: same data and settings resume, anything else is refused.

Before the fix, rerunning into a run directory with a store of another seed kept the weights,
ignored a larger --epochs, and rewrote the card with the new data's normalization.
"""

import json

import pytest

from seisfno.cli import main
from seisfno.operator.checkpoint import load_tensors
from seisfno.physics import get_preset

PRESET = get_preset("quick", n=17, nt_out=6)
TINY = ["--n-val", "4", "--batch-size", "4", "--device", "cpu", "--no-progress",
        "--arch-arg", "width=8", "--arch-arg", "modes=4", "--arch-arg", "projection=8",
        "--arch-arg", "n_layers=1"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from seisfno.data import generate_dataset

    d = tmp_path_factory.mktemp("stores")
    return {seed: generate_dataset(d / f"s{seed}.zarr", PRESET, 12, seed=seed, progress=False)
            for seed in (0, 99)}


def _train(capsys, store, out, *extra):
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(store), "--out", str(out), *TINY, *map(str, extra)])
    err = capsys.readouterr().err
    return e.value.code or 0, err


def _snapshot(out):
    return ((out / "model.json").read_bytes(), (out / "model.safetensors").read_bytes(),
            (out / "checkpoint" / "state.json").read_bytes())


def test_resume_refuses_other_data_and_settings(stores, tmp_path, capsys, one_thread):
    out = tmp_path / "run"
    assert _train(capsys, stores[0], out, "--epochs", "1")[0] == 0
    before = _snapshot(out)
    # the reproduction: another store's seed, more epochs, another learning rate
    code, err = _train(capsys, stores[99], out, "--epochs", "2", "--lr", "0.1")
    assert code == 2 and err.startswith("seisfno: error:") and len(err.strip().splitlines()) == 1
    assert "other data" in err and "seed: 0 in the checkpoint, 99 now" in err
    assert _snapshot(out) == before  # weights, card and checkpoint untouched
    code, err = _train(capsys, stores[0], out, "--epochs", "2", "--lr", "0.1")
    assert code == 2 and "other settings" in err and "lr: 0.003 in the checkpoint" in err
    code, err = _train(capsys, stores[0], out, "--epochs", "2", "--arch-arg", "width=12")
    assert code == 2 and "arch_args" in err
    code, err = _train(capsys, stores[0], out, "--epochs", "2", "--n-train", "6")
    assert code == 2 and "n_train: 8 in the checkpoint, 6 now" in err
    code, err = _train(capsys, stores[0], out, "--epochs", "2", "--augment", "none")
    assert code == 2 and "augment: 'd4' in the checkpoint, 'none' now" in err
    assert _snapshot(out) == before


def test_resume_with_more_epochs_continues_and_card_changes_only_with_weights(
        stores, tmp_path, capsys, one_thread):
    out = tmp_path / "run"
    assert _train(capsys, stores[0], out, "--epochs", "1")[0] == 0
    card1 = json.loads((out / "model.json").read_text())
    w1 = load_tensors(out / "model.safetensors")
    before = _snapshot(out)
    assert _train(capsys, stores[0], out, "--epochs", "1")[0] == 0  # finished: nothing changes
    assert _snapshot(out) == before
    assert _train(capsys, stores[0], out, "--epochs", "3")[0] == 0  # continues to epoch 3
    card3 = json.loads((out / "model.json").read_text())
    w3 = load_tensors(out / "model.safetensors")
    assert card3["training"]["epochs_run"] == 3 and card3["training"]["epochs"] == 3
    assert card3["normalization"] == card1["normalization"]
    assert any(not (w1[k] == w3[k]).all() for k in w1)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 3 and state["data"]["seed"] == 0
    after = _snapshot(out)
    assert _train(capsys, stores[0], out)[0] == 0  # no --epochs: the stored run, unchanged
    assert _snapshot(out) == after


def test_resume_refuses_a_store_of_another_preset(stores, tmp_path, capsys, one_thread):
    from seisfno.data import generate_dataset

    other = generate_dataset(tmp_path / "paper.zarr", get_preset("paper", n=17, nt_out=6), 12,
                             seed=0, progress=False)
    out = tmp_path / "run"
    assert _train(capsys, stores[0], out, "--epochs", "1")[0] == 0
    before = _snapshot(out)
    code, err = _train(capsys, other, out, "--epochs", "2")
    assert code == 2 and "preset: 'quick' in the checkpoint, 'paper' now" in err
    assert _snapshot(out) == before


def test_resume_refuses_a_checkpoint_without_a_data_fingerprint(stores, tmp_path, capsys,
                                                                 one_thread):
    """A checkpoint from before runs recorded their data cannot be checked, so it is refused
    (resuming it decoded the old weights with the new store's statistics)."""
    out = tmp_path / "run"
    assert _train(capsys, stores[0], out, "--epochs", "1")[0] == 0
    state = out / "checkpoint" / "state.json"
    old = json.loads(state.read_text())
    old.pop("data")
    old.pop("normalization", None)
    state.write_text(json.dumps(old))
    before = _snapshot(out)
    code, err = _train(capsys, stores[99], out, "--epochs", "2")
    assert code == 2 and "did not record its training data" in err
    assert _snapshot(out) == before
