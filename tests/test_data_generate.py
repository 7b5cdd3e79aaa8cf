"""Dataset generation: determinism, Dask, resume after SIGKILL, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from seisfno import SeisfnoError
from seisfno.cli import main
from seisfno.data import draw_sample, generate_dataset, open_store
from seisfno.physics import get_preset, sample_rng, von_karman

torch.set_num_threads(1)

# A tiny setup (12 x 12 nodes, 8 output samples): ~0.1 s per sample on one core.
TINY = {"nt_out": 8, "n": 12, "spacing_m": 100.0}
TINY_ARGS = ["--preset", "quick", "--nt-out", "8", "--n", "12", "--spacing", "100"]
N, SEED = 10, 7


def tiny():
    return get_preset("quick", **TINY)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[np.ndarray, ...]:
    """The data of an uninterrupted in-process run, shard size 4."""
    path = generate_dataset(tmp_path_factory.mktemp("ref") / "ref.zarr", tiny(), N, seed=SEED,
                            shard_size=4, progress=False)
    return open_store(path).load()


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_samples_follow_seed_and_index(reference):
    p = tiny()
    v, src, u = reference
    for i in (0, 5, 9):
        rng = sample_rng(SEED, i)
        want = von_karman(p.grid, rng, mean_mps=3000.0, sigma_mps=150.0, kappa=0.5,
                          corr_len_m=(1600.0, 1600.0), clip_mps=(2400.0, 3600.0))
        np.testing.assert_array_equal(v[i], want)
        np.testing.assert_array_equal(src[i], rng.uniform([0, 0], [1100.0, 1100.0]))
        dv, ds = draw_sample(p, SEED, i)
        np.testing.assert_array_equal(dv, v[i])
        np.testing.assert_array_equal(ds, src[i])
    assert v.dtype == np.float32 and src.dtype == np.float64 and u.dtype == np.float32
    assert v.min() >= 2400 and v.max() <= 3600
    assert np.isfinite(u).all() and np.abs(u).max() > 0
    assert len({tuple(s) for s in src}) == N  # distinct sources


def test_source_margin_is_respected(tmp_path):
    p = tiny().replace(source_margin_m=300.0)
    srcs = np.stack([draw_sample(p, 0, i)[1] for i in range(200)])
    assert srcs.min() >= 300.0 and srcs.max() <= 800.0
    with pytest.raises(SeisfnoError, match="margin"):
        generate_dataset(tmp_path / "m.zarr", tiny().replace(source_margin_m=600.0), 2,
                         progress=False)


def test_shard_size_does_not_change_the_data(reference, tmp_path):
    path = generate_dataset(tmp_path / "s3.zarr", tiny(), N, seed=SEED, shard_size=3,
                            progress=False)
    store = open_store(path)
    assert store.shard_size == 3 and store.n_shards == 4 and store.complete
    assert store.velocity.chunks[0] == 3 and store.wavefield.shards[0] == 3
    assert _same(store.load(), reference)


@pytest.mark.slow
def test_local_cluster_gives_the_same_data(reference, tmp_path):
    path = generate_dataset(tmp_path / "dask.zarr", tiny(), N, seed=SEED, workers=2,
                            shard_size=3, progress=False)
    assert _same(open_store(path).load(), reference)


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_file(path: Path, proc: subprocess.Popen, log: Path, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while not (path.is_file() and path.stat().st_size > 0):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{path} not written in {seconds} s"
        time.sleep(0.05)


@pytest.mark.slow
def test_generate_against_a_running_scheduler_equals_a_local_run(reference, tmp_path):
    """What a user of a cluster runs: `dask scheduler`, `dask worker`, `generate --scheduler`."""
    import json

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    info = tmp_path / "scheduler.json"
    procs = []
    try:
        procs.append(_start(["scheduler", "--host", "127.0.0.1", "--port", "0",
                             "--no-dashboard", "--scheduler-file", str(info)], env,
                            tmp_path / "scheduler.log"))
        _wait_for_file(info, procs[0], tmp_path / "scheduler.log")
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:"), address
        procs.append(_start(["worker", address, "--nthreads", "1", "--nworkers", "1",
                             "--no-dashboard", "--local-directory", str(tmp_path / "w")], env,
                            tmp_path / "worker.log"))
        out = tmp_path / "remote.zarr"
        args = _cli(out, "--no-progress", "--scheduler", address)
        k = args.index("--workers")
        del args[k:k + 2]  # as a user runs it: no local workers, the scheduler's
        res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)
        assert res.returncode == 0, res.stderr + (tmp_path / "worker.log").read_text()
        assert json.loads(res.stdout)["n_samples"] == N
        assert _same(open_store(out).load(), reference)
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _cli(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from seisfno.cli import main; main()", "generate",
            "--out", str(out), "--samples", str(N), "--seed", str(SEED), "--shard-size", "2",
            "--workers", "1", *TINY_ARGS, *extra]


def test_resume_after_sigkill_equals_uninterrupted_run(reference, tmp_path):
    out = tmp_path / "killed.zarr"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cli(out, "--no-progress"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    markers = out / "shard_done" / "c"
    deadline = time.monotonic() + 60
    while not (markers.is_dir() and any(markers.iterdir())):
        assert proc.poll() is None, "generation ended before it could be killed"
        assert time.monotonic() < deadline, "no shard finished within 60 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = open_store(out)
    assert 0 < partial.n_done < N, "kill landed after the end; make the run longer"
    done_before = partial.shard_done.copy()
    stamps = {s: (out / "wavefield" / "c" / str(s) / "0" / "0" / "0").stat().st_mtime_ns
              for s in np.flatnonzero(done_before)}
    # A second kill-free run finishes the store without touching the finished shards.
    res = subprocess.run(_cli(out), env={**env, "SEISFNO_PROGRESS": "1"}, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "sample/s" in res.stderr or "s/sample" in res.stderr  # the progress bar (forced)
    store = open_store(out)
    assert store.complete
    for s, t in stamps.items():
        assert (out / "wavefield" / "c" / str(s) / "0" / "0" / "0").stat().st_mtime_ns == t
    assert _same(store.load(), reference)
    assert not list(out.rglob("*.partial"))


def test_resume_recomputes_torn_shards(reference, tmp_path):
    out = generate_dataset(tmp_path / "torn.zarr", tiny(), N, seed=SEED, shard_size=4,
                           progress=False)
    root = zarr.open_group(str(out), mode="r+", use_consolidated=False)
    root["shard_done"][1] = 0  # as if killed after the data but before the marker ...
    chunk = out / "wavefield" / "c" / "1" / "0" / "0" / "0"
    chunk.write_bytes(b"garbage")  # ... or in the middle of a (non-atomic) write
    (chunk.parent / "0.deadbeef.partial").write_bytes(b"left by a kill")
    assert open_store(out).n_done == N - 4
    generate_dataset(out, tiny(), N, seed=SEED, shard_size=4, progress=False)
    assert _same(open_store(out).load(), reference)
    assert not list(out.rglob("*.partial"))


def test_rerun_with_other_parameters_is_an_error(tmp_path):
    out = generate_dataset(tmp_path / "a.zarr", tiny(), 4, seed=1, progress=False)
    with pytest.raises(SeisfnoError, match=r"different parameters \(seed: 1 in the store, 2"):
        generate_dataset(out, tiny(), 4, seed=2, progress=False)
    with pytest.raises(SeisfnoError, match="n_samples"):
        generate_dataset(out, tiny(), 5, seed=1, progress=False)
    with pytest.raises(SeisfnoError, match="preset.f_peak_hz"):
        generate_dataset(out, tiny().replace(f_peak_hz=2.5), 4, seed=1, progress=False)
    with pytest.raises(SeisfnoError, match="shard_size"):
        generate_dataset(out, tiny(), 4, seed=1, shard_size=2, progress=False)
    # the same parameters: nothing left to do, the store is unchanged
    assert generate_dataset(out, tiny(), 4, seed=1, progress=False) == out


def _run_main(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].startswith("seisfno: error: ")
    return lines[-1]


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    base = ["generate", *TINY_ARGS, "--workers", "1", "--no-progress"]
    assert "number of samples" in _run_main(
        [*base, "--out", str(tmp_path / "x.zarr"), "--samples", "0"], capsys)
    assert "shard size" in _run_main(
        [*base, "--out", str(tmp_path / "x.zarr"), "--samples", "2", "--shard-size", "0"],
        capsys)
    afile = tmp_path / "file.txt"
    afile.write_text("not a store")
    assert "not a Zarr store" in _run_main([*base, "--out", str(afile), "--samples", "2"], capsys)
    assert "cannot create" in _run_main(
        [*base, "--out", str(afile / "d.zarr"), "--samples", "2"], capsys)
    other = tmp_path / "other.zarr"
    zarr.open_group(str(other), mode="w").create_array("a", shape=(2,), dtype="f4")
    assert "not a seisfno dataset" in _run_main(
        [*base, "--out", str(other), "--samples", "2"], capsys)
    notempty = tmp_path / "dir"
    notempty.mkdir()
    (notempty / "f").write_text("x")
    assert "not a Zarr store" in _run_main([*base, "--out", str(notempty), "--samples", "2"],
                                           capsys)
    assert "backend" in _run_main(
        [*base, "--out", str(tmp_path / "y.zarr"), "--samples", "2", "--backend", "nope"], capsys)
    assert not (tmp_path / "x.zarr").exists() and not (tmp_path / "y.zarr").exists()


def test_corrupt_store_is_a_clear_error(tmp_path, capsys):
    out = generate_dataset(tmp_path / "c.zarr", tiny(), 2, seed=0, progress=False)
    (out / "wavefield" / "zarr.json").unlink()
    with pytest.raises(SeisfnoError, match="corrupt"):
        open_store(out)
    line = _run_main(["generate", *TINY_ARGS, "--out", str(out), "--samples", "2",
                      "--workers", "1", "--no-progress"], capsys)
    assert "corrupt" in line
    (out / "zarr.json").write_text("{not json")
    with pytest.raises(SeisfnoError, match="not a readable Zarr store"):
        open_store(out)


def test_empty_directory_is_used(tmp_path):
    out = tmp_path / "empty.zarr"
    out.mkdir()
    generate_dataset(out, tiny(), 1, progress=False)
    assert open_store(out).complete


def test_progress_bar_only_on_a_terminal_and_never_when_quiet(tmp_path, capsys, monkeypatch):
    base = ["generate", *TINY_ARGS, "--workers", "1", "--samples", "2"]
    monkeypatch.delenv("SEISFNO_PROGRESS", raising=False)
    for i, extra in enumerate(([], ["--quiet"])):
        with pytest.raises(SystemExit) as e:
            main([*base, "--out", str(tmp_path / f"p{i}.zarr"), *extra])
        assert e.value.code in (0, None)
        assert capsys.readouterr().err == ""  # stderr is no terminal here
    monkeypatch.setenv("SEISFNO_PROGRESS", "1")  # as if it were one
    for i, extra in enumerate(([], ["--quiet"])):
        with pytest.raises(SystemExit):
            main([*base, "--out", str(tmp_path / f"t{i}.zarr"), *extra])
        err = capsys.readouterr().err
        assert ("sample" in err) == (not extra), err


def test_non_finite_solver_output_is_never_written(tmp_path, monkeypatch):
    """A shard whose simulation is not finite raises a clear error and is not marked done."""
    import torch

    from seisfno import SeisfnoError
    from seisfno.data import generate_dataset, open_store
    from seisfno.physics import AcousticSolver, get_preset

    real = AcousticSolver.__call__
    monkeypatch.setattr(AcousticSolver, "__call__",
                        lambda self, v, s: real(self, v, s) * torch.tensor(float("nan")))
    with pytest.raises(SeisfnoError, match="non-finite values for sample 0"):
        generate_dataset(tmp_path / "d.zarr", get_preset("quick", n=17, nt_out=4), 2,
                         workers=1, progress=False)
    assert open_store(tmp_path / "d.zarr").n_done == 0
