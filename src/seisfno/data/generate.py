"""Dataset generation: random models and sources, batched simulations, Dask, resumable.

Sample ``i`` depends on ``(seed, i)`` alone (:func:`draw_sample`), so the data are the same for any
number of workers or shard size. The work is cut into shards of ``shard_size`` samples; each task
simulates one shard in a single batched solver call, writes it into the store itself, flushes it
to disk and only then marks it done. A rerun of the same command skips the shards marked done, so
a run killed at any moment finishes with exactly the data of an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from .._errors import SeisfnoError
from .._version import __version__
from ..physics import AcousticSolver, Preset, get_preset, sample_rng
from .store import (
    FORMAT,
    FORMAT_VERSION,
    check_same,
    clear_shard,
    create_store,
    fsync_shard,
    n_shards,
    open_store,
    read_done,
    remove_partials,
    shard_range,
)

#: Default samples per shard (one solver batch, one chunk) for large datasets.
DEFAULT_SHARD_SIZE = 16
_VELOCITY_KEYS = ("mean_mps", "sigma_mps", "kappa", "corr_len_m", "clip_mps", "method")


def source_bounds(preset: Preset) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ``(x, z)`` bounds in metres of the random sources."""
    g, m = preset.grid, preset.source_margin_m
    if not (0 <= 2 * m < min(g.width_m, g.depth_m)):
        raise SeisfnoError(f"source margin {m:g} m leaves no room in the "
                           f"{g.width_m:g} x {g.depth_m:g} m domain")
    return np.array([m, m]), np.array([g.width_m - m, g.depth_m - m])


def draw_sample(preset: Preset, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """The velocity model and source of sample ``index``.

    The model is ``preset.velocity.draw(grid, sample_rng(seed, index))`` (``von_karman`` with
    the velocity params, clipped to ``clip_mps``, or the authors' recipe); the source is then
    drawn from the same generator, uniformly in the domain less ``source_margin_m`` (``x`` and
    ``z`` in one call).

    Returns
    -------
    velocity : ndarray, (nz, nx) float32, m/s
    source_xz_m : ndarray, (2,) float64, (x, z) in m
    """
    rng = sample_rng(seed, index)
    v = preset.velocity.draw(preset.grid, rng)
    lo, hi = source_bounds(preset)
    return v, rng.uniform(lo, hi)


def generator_info(preset: Preset) -> dict:
    """How models and sources are drawn (recorded in the store)."""
    lo, hi = source_bounds(preset)
    return {
        "rng": "numpy.random.default_rng(SeedSequence([seed, index])): model, then source",
        "velocity": {"model": "seisfno.physics.VonKarmanParams.draw",
                     **{k: getattr(preset.velocity, k) for k in _VELOCITY_KEYS}},
        "source": {"distribution": "uniform", "margin_m": preset.source_margin_m,
                   "x_range_m": [lo[0], hi[0]], "z_range_m": [lo[1], hi[1]]},
    }


@dataclass(frozen=True)
class ShardJob:
    """Everything a task needs to compute shards (small and picklable)."""

    path: str
    preset: dict
    seed: int
    n_samples: int
    shard_size: int
    backend: str
    threads: int | None = None
    device: str | None = None


def compute_shard(shard: int, job: ShardJob) -> int:
    """Simulate shard ``shard``, write it into the store, mark it done; return its sample count.

    Runs in a Dask worker or in-process. A shard already marked done is skipped (a Dask retry).
    """
    import zarr

    if job.threads:
        torch.set_num_threads(job.threads)
    path = Path(job.path)
    root = zarr.open_group(zarr.storage.LocalStore(path), mode="r+", use_consolidated=False)
    start, stop = shard_range(shard, job.shard_size, job.n_samples)
    if root["shard_done"][shard] == 1:
        return stop - start
    clear_shard(path, shard)
    preset = Preset.from_dict(job.preset)
    drawn = [draw_sample(preset, job.seed, i) for i in range(start, stop)]
    v = np.stack([d[0] for d in drawn])
    src = np.stack([d[1] for d in drawn])
    solver = AcousticSolver.from_preset(preset, backend=job.backend, device=job.device)
    with torch.no_grad():
        u = solver(torch.from_numpy(v), src).cpu().numpy().astype(np.float32, copy=False)
    if not np.isfinite(u).all():  # never store a silent wrong answer
        bad = start + int(np.flatnonzero(~np.isfinite(u).reshape(len(u), -1).all(1))[0])
        raise SeisfnoError(f"the solver gave non-finite values for sample {bad} (shard {shard}); "
                           "nothing of this shard was written")
    root["velocity_mps"][start:stop] = v
    root["source_xz_m"][start:stop] = src
    root["wavefield"][start:stop] = u
    fsync_shard(path, shard)  # the data are on disk before the marker says so
    root["shard_done"][shard] = 1
    fsync_shard(path, shard)
    return stop - start


def _store_attrs(preset: Preset, n_samples: int, shard_size: int, seed: int,
                 backend: str) -> dict:
    try:
        solver = AcousticSolver.from_preset(preset, backend=backend)
    except ImportError as e:
        raise SeisfnoError(f"backend {backend!r} is not available: {e}") from e
    plan = solver.plan_for(*preset.velocity.clip_mps)
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "seisfno_version": __version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "title": f"seisfno wavefields: preset {preset.name!r}, {n_samples} samples",
        "n_samples": n_samples, "shard_size": shard_size,
        "n_shards": n_shards(n_samples, shard_size), "seed": seed, "backend": backend,
        "decimation": preset.decimation, "preset": preset.to_dict(), "plan": plan.to_dict(),
        "generator": generator_info(preset),
    }


def default_shard_size(n_samples: int) -> int:
    """``DEFAULT_SHARD_SIZE``, smaller for small datasets so that there are >= 8 shards.

    It depends on the sample count only, so a rerun with other ``workers`` resumes the store.
    """
    return max(1, min(DEFAULT_SHARD_SIZE, n_samples // 8))


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SeisfnoError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def generate_dataset(out: str | Path, preset: str | Preset, n_samples: int, *, seed: int = 0,
                     backend: str = "torch", workers: int = 1, scheduler: str | None = None,
                     shard_size: int | None = None, progress: bool = True,
                     device: str | None = None) -> Path:
    """Generate (or resume) a dataset of random models, sources and their wavefields.

    Parameters
    ----------
    out : str or Path
        The Zarr store to write. If it exists, it must be a store started by this function with
        the same parameters; its finished shards are kept and the rest are computed.
    preset : str or Preset
        ``"paper"``, ``"quick"`` or a :class:`~seisfno.physics.Preset`.
    n_samples : int
    seed : int
        Base seed; sample ``i`` uses ``sample_rng(seed, i)``.
    backend : {"torch", "deepwave"}
    workers : int
        Processes of a local Dask cluster (1 thread each, torch threads = cores / workers);
        ``1`` computes in this process without any cluster.
    scheduler : str, optional
        Address of an existing Dask scheduler to use instead of a local cluster.
    shard_size : int, optional
        Samples per task, solver batch and chunk (default :func:`default_shard_size`).
    progress : bool
        Show a progress bar on stderr (only on a terminal; see :mod:`seisfno._progress`).
    device : str, optional
        Torch device of the solver (``cuda`` for a GPU; default CPU). The stored data do not
        depend on it beyond floating-point rounding.

    Returns
    -------
    Path
        ``out``, complete.
    """
    n_samples = _check_int(n_samples, "the number of samples", 1)
    seed = _check_int(seed, "the seed", 0)
    workers = _check_int(workers, "workers", 1)
    shard_size = default_shard_size(n_samples) if shard_size is None else \
        _check_int(shard_size, "the shard size", 1)
    preset = get_preset(preset)
    attrs = _store_attrs(preset, n_samples, shard_size, seed, backend)
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        store = open_store(out, mode="r+")
        check_same(store, attrs)
        remove_partials(out)
    else:
        create_store(out, attrs)
    import zarr

    done = read_done(zarr.open_group(zarr.storage.LocalStore(out), mode="r",
                                     use_consolidated=False))
    todo = [int(s) for s in np.flatnonzero(~done)]
    job = ShardJob(str(out.resolve()), preset.to_dict(), seed, n_samples, shard_size, backend,
                   device=device)
    n_done = int(np.repeat(done, shard_size)[:n_samples].sum())
    bar = _progress_bar(n_samples, n_done, out.name, progress)
    try:
        if todo and workers == 1 and scheduler is None:
            for s in todo:
                bar.update(compute_shard(s, job))
        elif todo:
            _run_dask(todo, job, workers, scheduler, bar)
    finally:
        bar.close()
    final = open_store(out)
    if not final.complete:  # pragma: no cover - a task returned without marking its shard
        raise SeisfnoError(f"{out}: {final.n_done} of {n_samples} samples written; rerun")
    return out


def _progress_bar(total: int, initial: int, name: str, enabled: bool):
    from .._progress import progress_bar

    return progress_bar(total, initial=initial, unit="sample", desc=name, progress=enabled)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _run_dask(todo: list[int], job: ShardJob, workers: int, scheduler: str | None, bar) -> None:
    """Compute ``todo`` shards on a Dask cluster: local processes, or ``scheduler``'s."""
    import dask
    from distributed import Client, LocalCluster, as_completed
    from distributed.client import FutureCancelledError

    cluster = None
    try:
        if scheduler is None:
            job = ShardJob(**{**job.__dict__, "threads": max(1, _cores() // workers)})
            # Dask sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's dynamic
            # mmap threshold: every large torch temporary is then mmapped and page-faulted anew,
            # and the solver ran ~5x slower (mostly system time). Unset it for our workers.
            with dask.config.set(
                    {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as e:
                raise SeisfnoError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from e
    except OSError as e:
        raise SeisfnoError(f"cannot start a local Dask cluster: {e}") from e
    try:
        futures = client.map(compute_shard, todo, job=job, pure=False,
                             key=[f"seisfno-shard-{s}-{os.getpid()}" for s in todo])
        try:
            for fut in as_completed(futures):
                bar.update(fut.result())
        except BaseException as e:
            client.cancel(futures)
            if type(e).__name__ == "KilledWorker":
                raise SeisfnoError(f"a Dask worker died while generating ({e}); rerun the same "
                                   "command to resume") from e
            if isinstance(e, FutureCancelledError):
                raise SeisfnoError("generation was cancelled; rerun to resume") from e
            raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
