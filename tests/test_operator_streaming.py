"""Streaming training: chunk-aware shuffled batches, per-rank shares, streamed statistics, bounded
memory, deterministic resume, and a corrupt chunk met mid-epoch."""

import importlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from seisfno.data.dataset import WavefieldDataset, chunk_batches, chunk_runs, prefetch
from seisfno.operator import Normalization
from seisfno.operator.checkpoint import load_tensors
from seisfno.physics import get_preset

PRESET = get_preset("quick", n=17, nt_out=6)
ARGS = {"width": 8, "modes": 4, "n_layers": 1, "projection": 8}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from seisfno.data import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("data") / "s.zarr", PRESET, 14, seed=3,
                            shard_size=3, progress=False)


def fake_store(path, preset, n, shard_size, seed=0):
    """A store of ``n`` cheap, compressible samples (no simulation), for memory tests."""
    import zarr

    from seisfno.data.generate import _store_attrs
    from seisfno.data.store import create_store

    create_store(path, _store_attrs(preset, n, shard_size, seed, "torch"))
    root = zarr.open_group(zarr.storage.LocalStore(path), mode="r+", use_consolidated=False)
    g, nt = preset.grid, preset.nt_out
    for a in range(0, n, shard_size):
        b = min(a + shard_size, n)
        k = np.arange(a, b, dtype=np.float32)
        root["velocity_mps"][a:b] = np.broadcast_to(3000 + k[:, None, None], (b - a, *g.shape))
        root["source_xz_m"][a:b] = np.stack([1000 + k, 2000 + k], axis=1)
        root["wavefield"][a:b] = np.broadcast_to(1e-3 * (1 + k[:, None, None, None]),
                                                 (b - a, nt, *g.shape))
    root["shard_done"][:] = 1
    return path


def test_chunk_runs_share_the_epoch_between_ranks():
    n, chunk, world = 23, 4, 3
    shares = [chunk_runs(n, chunk, seed=1, epoch=2, rank=r, world=world) for r in range(world)]
    items = [np.concatenate([np.arange(a, b) for a, b in runs]) for runs in shares]
    assert all(len(i) == n // world for i in items)
    both = np.concatenate(items)
    assert len(np.unique(both)) == len(both)  # disjoint
    for runs in shares:
        assert all(a // chunk == (b - 1) // chunk for a, b in runs)  # within one chunk
    assert chunk_runs(n, chunk, 1, 2, 0, world) == shares[0]  # seeded
    assert chunk_runs(n, chunk, 1, 3, 0, world) != shares[0]  # reshuffled per epoch


def test_chunk_batches_read_whole_chunks_and_shuffle(store, monkeypatch):
    data = WavefieldDataset(store, np.arange(12))
    reads = []
    load = data.load_range
    monkeypatch.setattr(data, "load_range", lambda a, b: reads.append((a, b)) or load(a, b))
    batches = list(chunk_batches(data, 4, 3, seed=0, epoch=0, buffer_chunks=2))
    assert [len(b[3]) for b in batches] == [4, 4, 4]
    assert sorted(reads) == [(0, 3), (3, 6), (6, 9), (9, 12)]  # whole chunks, once each
    items = np.concatenate([b[3] for b in batches])
    assert sorted(items.tolist()) == list(range(12))
    assert not np.array_equal(items, np.sort(items))  # shuffled
    v, s, u = data._open().load(batches[0][3])
    np.testing.assert_array_equal(batches[0][0], v)
    np.testing.assert_array_equal(batches[0][2], u)
    again = list(chunk_batches(data, 4, 3, seed=0, epoch=0, buffer_chunks=2))
    assert all(np.array_equal(a[3], b[3]) for a, b in zip(batches, again, strict=True))
    # two ranks: equal step counts, disjoint items
    r = [np.concatenate([b[3] for b in chunk_batches(data, 2, 3, 0, 1, rank=k, world=2)])
         for k in range(2)]
    assert len(r[0]) == len(r[1]) == 6 and not set(r[0]) & set(r[1])


def test_prefetch_raises_in_order_and_stops():
    def items():
        yield 1
        yield 2
        raise ValueError("bad chunk")

    it = prefetch(items())
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(ValueError, match="bad chunk"):
        next(it)
    endless = prefetch(iter(int, 1))  # never ends: closing must stop the thread
    next(endless)
    endless.close()


def test_streamed_statistics_match_the_whole_set(store):
    from seisfno.operator.train_data import StoreSource

    norm = StoreSource(store, 10, 4).normalization()
    from seisfno.data import open_store

    v, _, u = open_store(store).load(np.arange(10))
    ref = Normalization.fit(v, u)
    for k, val in ref.to_dict().items():
        assert getattr(norm, k) == pytest.approx(val, rel=1e-9), k


def _train(store, out, epochs, **kw):
    from seisfno.operator import train

    return train(store, out, arch_args=ARGS, epochs=epochs, n_val=4, batch_size=4,
                 device="cpu", progress=False, in_memory=False, **kw)


def test_streaming_resumes_to_the_same_weights(store, tmp_path, monkeypatch, one_thread):
    tr = importlib.import_module("seisfno.operator.train")
    full = _train(store, tmp_path / "full", 3)
    save = tr._save_state

    def save_then_die(ckpt, net, opt, counters):
        save(ckpt, net, opt, counters)
        if counters["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(tr, "_save_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _train(store, tmp_path / "cut", 3)
    monkeypatch.setattr(tr, "_save_state", save)
    cut = _train(store, tmp_path / "cut", 3)
    assert cut.epochs_run == 3 and len(cut.history) == 2
    assert cut.val_rel_l2 == full.val_rel_l2
    a = load_tensors(tmp_path / "full" / "model.safetensors")
    b = load_tensors(tmp_path / "cut" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    card = json.loads((tmp_path / "full" / "model.json").read_text())
    assert card["training"]["data_mode"] == "stream"


_RSS_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    torch.set_num_threads(1)
    from seisfno.operator import fit, synthetic_dataset, train
    from seisfno.data import open_store
    store, out = sys.argv[1], sys.argv[2]
    preset = open_store(store).preset
    args = {"width": 4, "modes": 2, "n_layers": 1, "projection": 4}
    kw = dict(arch_args=args, epochs=1, batch_size=8, device="cpu", progress=False)
    v, s, u = synthetic_dataset(preset, 40)  # warm-up: allocator, FFT plans, autograd
    fit(v, s, u, preset, out + "/warm", n_val=8, **kw)
    del v, s, u
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking process (a
    # large pytest process would hide everything), while VmHWM belongs to this process's memory
    def peak():
        with open("/proc/self/status") as f:
            return 1024 * int(next(x for x in f if x.startswith("VmHWM:")).split()[1])
    base = peak()
    train(store, out + "/stream", n_val=32, in_memory=False, **kw)
    stream = peak()
    whole = open_store(store).load(None)  # what the in-memory path holds at least
    print(json.dumps({"base": base, "stream": stream, "memory": peak()}))
""")


@pytest.mark.slow
def test_streaming_memory_stays_bounded(tmp_path):
    preset = get_preset("quick", n=32, nt_out=48)
    n = 1280
    store = fake_store(tmp_path / "big.zarr", preset, n, 8)
    store_bytes = n * 4 * 32 * 32 * (48 + 1)  # 257 MB as float32
    r = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(store), str(tmp_path)],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    grow_stream, grow_memory = m["stream"] - m["base"], m["memory"] - m["base"]
    # the measurement sees a whole-store load ...
    assert grow_memory > 0.9 * store_bytes, m
    # ... and streaming holds a few chunks only (about 30 MB here, whatever the store's size)
    assert grow_stream < 0.25 * store_bytes, m


def test_corrupt_chunk_mid_epoch_is_a_clear_error_and_keeps_the_checkpoint(
        store, tmp_path, capsys, one_thread):
    import shutil

    from seisfno.cli import main

    data = tmp_path / "s.zarr"
    shutil.copytree(store, data)
    out = tmp_path / "run"
    cmd = ["train", "--data", str(data), "--out", str(out), "--streaming", "--n-val", "4",
           "--batch-size", "4", "--device", "cpu", "--no-progress",
           *sum((["--arch-arg", f"{k}={v}"] for k, v in ARGS.items()), [])]
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--epochs", "1"])
    assert (e.value.code or 0) == 0
    capsys.readouterr()
    before = {p: (out / p).read_bytes() for p in ("model.json", "model.safetensors",
                                                  "checkpoint/state.json",
                                                  "checkpoint/state.safetensors")}
    chunk = data / "wavefield" / "c" / "2" / "0" / "0" / "0"  # samples 6..8, mid-epoch
    raw = bytearray(chunk.read_bytes())
    raw[-40:] = b"\0" * 40
    chunk.write_bytes(bytes(raw))
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--epochs", "2"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("seisfno: error:"), err
    assert len(err.strip().splitlines()) == 1
    assert "samples 6..8" in err and "wavefield/c/2/0/0/0" in err
    after = {p: (out / p).read_bytes() for p in before}
    assert after == before  # the last checkpoint and the model are intact
    assert json.loads(after["checkpoint/state.json"])["epoch"] == 1
    load_tensors(out / "checkpoint" / "state.safetensors")


def _ddp_stream_worker(rank, world, port, store, out):
    from seisfno.operator import train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        r = train(store, out, arch_args=ARGS, epochs=2, n_val=3, batch_size=4, device="cpu",
                  progress=False, in_memory=False)
        with open(f"{out}/rank{rank}.json", "w") as f:
            json.dump({"val": r.val_rel_l2, "train": r.train_rel_l2}, f)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_streaming_under_ddp_two_cpu_processes(store, tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_ddp_stream_worker, args=(2, port, str(store), str(tmp_path)), nprocs=2, join=True)
    res = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert res[0] == res[1] and np.isfinite(res[0]["val"])  # reduced over both ranks' shares
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["training"]["world_size"] == 2 and card["training"]["data_mode"] == "stream"


def test_auto_memory_rule_follows_the_available_memory(tmp_path, monkeypatch):
    """Loaded whole up to 40 % of the memory available (a cgroup's limit less its use caps
    psutil's number), never below the 512 MiB floor; the floor alone when nothing can be read,
    under torchrun, and for a checkpoint that did not record its mode; a checkpoint's recorded
    mode otherwise."""
    import types

    import psutil

    tr = importlib.import_module("seisfno.operator.train")
    gib = 2**30
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(tr, "CGROUP_ROOT", tmp_path / "no-cgroup")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(
        available=10 * gib))
    assert tr.available_memory_bytes() == 10 * gib
    out = tmp_path / "run"
    assert tr.auto_in_memory(int(3.9 * gib), out) and not tr.auto_in_memory(int(4.1 * gib), out)
    cg = tmp_path / "cgroup"  # a container limited to 4 GiB, 1 GiB of it in use
    cg.mkdir()
    (cg / "memory.max").write_text(f"{4 * gib}\n")
    (cg / "memory.current").write_text(f"{gib}\n")
    monkeypatch.setattr(tr, "CGROUP_ROOT", cg)
    assert tr.available_memory_bytes() == 3 * gib
    assert not tr.auto_in_memory(int(1.3 * gib), out)
    (cg / "memory.max").write_text("max\n")
    assert tr.available_memory_bytes() == 10 * gib

    def broken():
        raise OSError("no /proc")

    monkeypatch.setattr(tr, "CGROUP_ROOT", tmp_path / "no-cgroup")
    monkeypatch.setattr(psutil, "virtual_memory", broken)
    assert tr.available_memory_bytes() is None
    assert tr.auto_in_memory(tr.IN_MEMORY_AUTO_BYTES, out)
    assert not tr.auto_in_memory(tr.IN_MEMORY_AUTO_BYTES + 1, out)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(
        available=10 * gib))
    monkeypatch.setenv("WORLD_SIZE", "2")  # ranks decide alike, without memory readings
    assert not tr.auto_in_memory(gib, out)
    monkeypatch.delenv("WORLD_SIZE")
    (out / "checkpoint").mkdir(parents=True)
    for state, small, large in (({"data_mode": "stream"}, False, False),
                                ({"data_mode": "memory"}, True, True),
                                ({"epoch": 3}, True, False)):  # before the mode was recorded
        (out / "checkpoint" / "state.json").write_text(json.dumps(state))
        assert tr.auto_in_memory(2**20, out) is small
        assert tr.auto_in_memory(gib, out) is large


def test_resumed_run_keeps_its_data_mode(store, tmp_path, monkeypatch, one_thread):
    """A run streamed by the automatic rule streams again when resumed, even where the rule
    would now load the data whole (the two draw batches in different orders)."""
    from seisfno.operator import train

    tr = importlib.import_module("seisfno.operator.train")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    kw = dict(arch_args=ARGS, n_val=4, batch_size=4, device="cpu", progress=False)
    monkeypatch.setattr(tr, "IN_MEMORY_AUTO_BYTES", 0)
    monkeypatch.setattr(tr, "available_memory_bytes", lambda: 0)
    train(store, tmp_path / "run", epochs=1, **kw)
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["data_mode"] == "stream"
    monkeypatch.setattr(tr, "available_memory_bytes", lambda: 2**40)
    train(store, tmp_path / "fresh", epochs=1, **kw)
    card = json.loads((tmp_path / "fresh" / "model.json").read_text())
    assert card["training"]["data_mode"] == "memory"
    train(store, tmp_path / "run", epochs=2, **kw)
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["training"]["data_mode"] == "stream"
    with pytest.warns(UserWarning, match="streamed and resumes with them loaded whole"):
        train(store, tmp_path / "run", epochs=3, in_memory=True, **kw)
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # the same mode, said or not: no warning
        train(store, tmp_path / "run", epochs=4, in_memory=True, **kw)
        train(store, tmp_path / "fresh", epochs=2, in_memory=True, **kw)
    assert not [w for w in seen if "resumes with them" in str(w.message)]


def test_store_load_peaks_near_the_data_size(tmp_path, monkeypatch):
    """``DatasetStore.load`` reads blocks of shards into its result: a store loaded whole for
    training peaks near its size (one zarr read of the whole array peaked at 2x and more, and
    the reordering copy added 1x; tracemalloc sees numpy's and zarr's buffers). Out of order,
    repeated, within and across blocks, and empty, the right samples come back."""
    import tracemalloc

    from seisfno.data import open_store
    from seisfno.data import store as store_mod

    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is already tracing: the peak would include earlier memory")
    preset = get_preset("quick", n=32, nt_out=40)
    s = open_store(fake_store(tmp_path / "f.zarr", preset, 64, shard_size=4))
    nbytes = 64 * 40 * 32 * 32 * 4
    ref = [np.asarray(a[:]) for a in (s.velocity, s.sources, s.wavefield)]
    monkeypatch.setattr(store_mod, "READ_BLOCK_BYTES", nbytes // 16)  # a shard a block
    tracemalloc.start()
    try:
        got = s.load(None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.4 * nbytes, peak / nbytes
    for block in (nbytes // 16, nbytes):  # a shard a block; the whole store one block
        monkeypatch.setattr(store_mod, "READ_BLOCK_BYTES", block)
        for idx in ([13, 1, 13, 40], [0, 2, 9], [5]):
            for a, r in zip(s.load(idx), ref, strict=True):
                np.testing.assert_array_equal(a, r[idx])
    for a, r in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, r)
    assert [a.shape[0] for a in s.load([])] == [0, 0, 0]
