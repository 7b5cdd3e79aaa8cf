"""The dataset store: metadata, xarray, batched reads, the lazy PyTorch dataset."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import xarray as xr
import zarr
from torch.utils.data import DataLoader

import seisfno
from seisfno import SeisfnoError
from seisfno.data import WavefieldDataset, generate_dataset, open_store, open_xarray
from seisfno.physics import AcousticSolver, Preset, get_preset

torch.set_num_threads(1)
N = 7


@pytest.fixture(scope="module")
def preset() -> Preset:
    return get_preset("quick", nt_out=8, n=12, spacing_m=100.0, source_margin_m=100.0)


@pytest.fixture(scope="module")
def path(tmp_path_factory, preset):
    return generate_dataset(tmp_path_factory.mktemp("store") / "d.zarr", preset, N, seed=11,
                            shard_size=3, progress=False)


def test_metadata_records_everything(path, preset):
    s = open_store(path)
    assert s.preset == preset and Preset.from_dict(s.attrs["preset"]) == preset
    plan = AcousticSolver.from_preset(preset).plan_for(*preset.velocity.clip_mps)
    assert s.plan == {k: list(v) if isinstance(v, tuple) else v
                      for k, v in plan.to_dict().items()}
    a = s.attrs
    assert a["seed"] == 11 and a["backend"] == "torch" and a["decimation"] == "lowpass"
    assert a["seisfno_version"] == seisfno.__version__ and a["format_version"] == 1
    assert a["n_samples"] == N and a["shard_size"] == 3 and a["n_shards"] == 3
    assert a["generator"]["source"]["x_range_m"] == [100.0, 1000.0]
    assert a["generator"]["velocity"]["clip_mps"] == [2400.0, 3600.0]
    assert s.n_samples == s.n_done == N and s.complete
    assert s.velocity.chunks == (3, 12, 12) and s.sources.chunks == (3, 2)
    assert s.wavefield.shards == (3, 8, 12, 12) and s.wavefield.chunks == (1, 8, 12, 12)


def test_xarray_dims_coords_and_units(path, preset):
    ds = open_xarray(path)
    assert ds["wavefield"].dims == ("sample", "time", "z", "x")
    assert ds["velocity_mps"].dims == ("sample", "z", "x")
    assert ds["source_xz_m"].dims == ("sample", "xz")
    assert dict(ds.sizes) == {"sample": N, "time": 8, "z": 12, "x": 12, "xz": 2, "shard": 3}
    np.testing.assert_allclose(ds["time_s"].values, np.arange(8) * 0.08)
    np.testing.assert_allclose(ds["z_m"].values, preset.grid.z_m)
    np.testing.assert_allclose(ds["x_m"].values, preset.grid.x_m)
    assert {"time_s", "z_m", "x_m"} <= set(ds["wavefield"].coords)
    assert ds["velocity_mps"].attrs["units"] == "m/s"
    assert ds["source_xz_m"].attrs["units"] == "m" and ds["time_s"].attrs["units"] == "s"
    assert ds.attrs["format"] == "seisfno.wavefield-dataset"
    v, src, u = open_store(path).load()
    np.testing.assert_array_equal(ds["wavefield"].values, u)
    np.testing.assert_array_equal(ds["velocity_mps"].values, v)
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")
        plain = xr.open_zarr(path)  # what a user types: no warning, same dataset
    np.testing.assert_array_equal(plain["source_xz_m"].values, src)


def test_load_orders_and_repeats(path):
    s = open_store(path)
    v, src, u = s.load()
    assert v.shape == (N, 12, 12) and src.shape == (N, 2) and u.shape == (N, 8, 12, 12)
    v2, src2, u2 = s.load([6, 0, 4, 0])
    np.testing.assert_array_equal(u2, u[[6, 0, 4, 0]])
    np.testing.assert_array_equal(src2, src[[6, 0, 4, 0]])
    np.testing.assert_array_equal(s.load(slice(2, 5))[0], v[2:5])
    with pytest.raises(SeisfnoError, match="indices"):
        s.load([N])


def test_dataset_items_and_dataloader_workers(path):
    v, src, u = open_store(path).load()
    ds = WavefieldDataset(path)
    assert len(ds) == N and "7 of 7" in repr(ds)
    item = ds[4]
    assert set(item) == {"velocity", "source_xz_m", "wavefield", "index"}
    assert item["velocity"].shape == (12, 12) and item["velocity"].dtype == torch.float32
    assert item["source_xz_m"].shape == (2,) and item["source_xz_m"].dtype == torch.float32
    assert item["wavefield"].shape == (8, 12, 12) and item["index"] == 4
    np.testing.assert_array_equal(item["wavefield"].numpy(), u[4])
    assert pickle.loads(pickle.dumps(ds))._store is None  # ships without open handles
    sub = WavefieldDataset(path, indices=[5, 1, 2])
    loader = DataLoader(sub, batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    assert [b["index"].tolist() for b in batches] == [[5, 1], [2]]
    got = torch.cat([b["wavefield"] for b in batches]).numpy()
    np.testing.assert_array_equal(got, u[[5, 1, 2]])
    np.testing.assert_array_equal(torch.cat([b["source_xz_m"] for b in batches]).numpy(),
                                  src[[5, 1, 2]].astype(np.float32))


def test_incomplete_store(path, tmp_path):
    import shutil

    copy = tmp_path / "partial.zarr"
    shutil.copytree(path, copy)
    zarr.open_group(str(copy), mode="r+", use_consolidated=False)["shard_done"][1] = 0
    s = open_store(copy)
    assert s.n_done == N - 3 and not s.complete
    assert s.sample_done.tolist() == [True] * 3 + [False] * 3 + [True]
    with pytest.raises(SeisfnoError, match="incomplete"):
        WavefieldDataset(copy)
    with pytest.raises(SeisfnoError, match="incomplete"):
        s.load([4])
    assert len(WavefieldDataset(copy, indices=[0, 6])) == 2


def test_open_errors(tmp_path):
    with pytest.raises(SeisfnoError, match="no dataset"):
        open_store(tmp_path / "missing.zarr")
    with pytest.raises(SeisfnoError, match="not a Zarr store"):
        WavefieldDataset(tmp_path)
    with pytest.raises(SeisfnoError, match="not a seisfno dataset"):
        zarr.open_group(str(tmp_path / "z.zarr"), mode="w")
        open_xarray(tmp_path / "z.zarr")
