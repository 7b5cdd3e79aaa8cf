"""Symmetry augmentation: training really sees transformed samples (not the coordinates), the
draws are seeded, non-square grids refuse an explicit d4, and the data-size study runs both."""

import importlib
import json

import numpy as np
import pytest
import torch

from seisfno import SeisfnoError
from seisfno.operator import coordinates, fit, synthetic_dataset
from seisfno.operator.train_data import augment_choices
from seisfno.physics import Grid, get_preset
from seisfno.physics.symmetry import transform_field, transform_sources

PRESET = get_preset("quick").replace(n=17, nt_out=6)
ARGS = {"width": 8, "modes": 4, "n_layers": 1, "projection": 8}


def _capture_inputs(monkeypatch):
    """Record the raw (velocity, sources) and the encoded input of every network call."""
    tr = importlib.import_module("seisfno.operator.train")
    seen = []
    enc = tr.encode_inputs

    def spy(v, s, grid, norm):
        x = enc(v, s, grid, norm)
        seen.append((v.detach().clone(), np.array(s), x.detach().clone()))
        return x

    monkeypatch.setattr(tr, "encode_inputs", spy)
    return seen


def test_training_batches_are_transformed_samples(tmp_path, monkeypatch, one_thread):
    v, s, u = synthetic_dataset(PRESET, 20, seed=1)
    seen = _capture_inputs(monkeypatch)
    fit(v, s, u, PRESET, tmp_path, arch_args=ARGS, epochs=1, n_val=4, batch_size=8,
        device="cpu", progress=False, seed=5)
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["training"]["augment"] == "d4"
    # the first batch of epoch 0: the sampler's order, each sample under its drawn symmetry
    sampler = torch.utils.data.DistributedSampler(range(16), num_replicas=1, rank=0,
                                                  shuffle=True, seed=5, drop_last=True)
    sampler.set_epoch(0)
    idx = np.fromiter(iter(sampler), dtype=np.int64)[:8]
    ks = augment_choices(5, 0, 16)[idx]
    assert len(set(ks.tolist())) > 2  # several symmetries in one batch
    vb, sb, x = seen[0]
    for j, (i, k) in enumerate(zip(idx, ks, strict=True)):
        np.testing.assert_array_equal(vb[j].numpy(), transform_field(v[i], int(k)))
        np.testing.assert_allclose(sb[j], transform_sources(s[i], int(k), PRESET.grid),
                                   rtol=0, atol=1e-9)
    assert not np.array_equal(vb.numpy(), v[idx])  # really transformed
    # the coordinate channels are the grid's, whatever the transform
    torch.testing.assert_close(x[:, 2:], coordinates(PRESET.grid).expand(8, 2, 17, 17),
                               rtol=0, atol=0)
    # validation is never augmented
    np.testing.assert_array_equal(seen[-1][0].numpy(), v[16:20])


def test_augment_none_and_draws_are_seeded():
    a, b = augment_choices(0, 3, 100), augment_choices(0, 3, 100)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, augment_choices(0, 4, 100))
    assert set(np.unique(a)) == set(range(8))


def test_augment_batch_transforms_the_target_too():
    from seisfno.operator.train_data import augment_batch

    v, s, u = synthetic_dataset(PRESET, 5, seed=2)
    ks = np.array([0, 5, 6, 4, 7])
    va, sa, ua = augment_batch(torch.from_numpy(v), s, torch.from_numpy(u), ks, PRESET.grid)
    for j, k in enumerate(ks):
        np.testing.assert_array_equal(ua[j].numpy(), transform_field(u[j], int(k)))
        np.testing.assert_array_equal(va[j].numpy(), transform_field(v[j], int(k)))
        np.testing.assert_allclose(sa[j], transform_sources(s, int(k), PRESET.grid)[j])
    v0, s0, u0 = synthetic_dataset(PRESET, 5, seed=2)  # no aliasing: the inputs are unchanged
    np.testing.assert_array_equal(v, v0)
    np.testing.assert_array_equal(s, s0)
    np.testing.assert_array_equal(u, u0)


def test_non_square_grid(tmp_path, one_thread):
    g = PRESET.grid
    rect = PRESET.replace(grid=Grid(17, 13, g.dz_m, g.dx_m))
    v, s, u = synthetic_dataset(rect, 10)
    with pytest.raises(SeisfnoError, match="square grid"):
        fit(v, s, u, rect, tmp_path / "a", arch_args=ARGS, epochs=1, n_val=2, device="cpu",
            progress=False, augment="d4")
    assert not (tmp_path / "a").exists()
    fit(v, s, u, rect, tmp_path / "b", arch_args=ARGS, epochs=1, n_val=2, device="cpu",
        progress=False)
    card = json.loads((tmp_path / "b" / "model.json").read_text())
    assert card["training"]["augment"] == "none"
    assert "not applicable" in card["training"]["augment_note"]
    with pytest.raises(SeisfnoError, match="augment must be"):
        fit(v, s, u, rect, tmp_path / "c", arch_args=ARGS, epochs=1, n_val=2, device="cpu",
            progress=False, augment="flip")


def test_cli_refuses_d4_on_a_non_square_store(tmp_path, capsys, one_thread):
    from seisfno.cli import main
    from seisfno.data import generate_dataset

    g = PRESET.grid
    store = generate_dataset(tmp_path / "rect.zarr", PRESET.replace(grid=Grid(17, 13, g.dz_m,
                                                                              g.dx_m)),
                             6, seed=0, progress=False)
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(store), "--out", str(tmp_path / "r"), "--augment", "d4",
              "--n-val", "2", "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "square grid" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_datasize_study_with_and_without_augmentation(tmp_path, one_thread):
    from seisfno.operator.studies import datasize_study

    v, s, u = synthetic_dataset(PRESET, 16, seed=0)
    res = datasize_study(v, s, u, PRESET, [4, 8], tmp_path, n_val=4, augment=("none", "d4"),
                         train_kwargs={"epochs": 1, "arch_args": ARGS, "batch_size": 4})
    assert [(r["n_train"], r["augment"]) for r in res["rows"]] == [
        (4, "none"), (4, "d4"), (8, "none"), (8, "d4")]
    assert [t["n_train"] for t in res["table"]] == [4, 8]
    assert set(res["table"][0]) == {"n_train", "val_rel_l2[none]", "val_rel_l2[d4]",
                                    "train_rel_l2[none]", "train_rel_l2[d4]"}
    for n, a in ((4, "none"), (8, "d4")):
        card = json.loads((tmp_path / f"n{n}-{a}" / "model.json").read_text())
        assert card["training"]["augment"] == a
    md = (tmp_path / "datasize.md").read_text()
    assert "val_rel_l2[d4]" in md and (tmp_path / "datasize.png").stat().st_size > 5000


def test_cli_datasize_study_runs_both_augmentations(tmp_path, capsys, one_thread):
    from seisfno.cli import main
    from seisfno.data import generate_dataset

    store = generate_dataset(tmp_path / "s.zarr", PRESET, 8, seed=0, progress=False)
    with pytest.raises(SystemExit) as e:
        main(["study", "datasize", "--data", str(store), "--out", str(tmp_path / "st"),
              "--sizes", "4", "--n-val", "4", "--epochs", "1", "--device", "cpu",
              "--arch-arg", "width=6"])
    out = capsys.readouterr().out
    assert (e.value.code or 0) == 0
    res = json.loads(out)
    assert [r["augment"] for r in res["rows"]] == ["none", "d4"]
    for run in ("n4-none", "n4-d4"):  # --arch-arg reaches every model
        assert json.loads((tmp_path / "st" / run / "model.json").read_text())[
            "arch_args"]["width"] == 6
    assert set(res["table"][0]) >= {"val_rel_l2[none]", "val_rel_l2[d4]"}
    with pytest.raises(SystemExit) as e:
        main(["study", "datasize", "--data", str(store), "--out", str(tmp_path / "st"),
              "--sizes", "4", "--n-val", "4", "--augment", "d4,flip"])
    assert e.value.code == 2 and "--augment" in capsys.readouterr().err
