"""``seisfno generate``: a dataset of random models, sources and wavefields (Zarr, resumable)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ._app import app
from ._common import emit_json


def _default_workers() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


@app.command()
def generate(
    out: Path = typer.Option(..., help="Zarr store to write; rerun the same command to resume."),
    samples: int = typer.Option(..., help="Number of samples (models, sources, wavefields)."),
    preset: str = typer.Option("paper", help="Preset: paper or quick."),
    seed: int = typer.Option(0, help="Base seed; sample i depends on (seed, i) only."),
    backend: str = typer.Option("torch", help="torch or deepwave."),
    workers: int = typer.Option(None, help="Local Dask worker processes (default: one per "
                                "core); 1 computes in this process."),
    scheduler: str = typer.Option(None, help="Address of an existing Dask scheduler "
                                  "(tcp://host:port) instead of a local cluster."),
    shard_size: int = typer.Option(None, help="Samples per task, solver batch and chunk "
                                   "(default: 16, fewer below 128 samples)."),
    frequency: float = typer.Option(None, help="Ricker peak frequency in Hz (preset's default)."),
    dt_out: float = typer.Option(None, help="Output sampling interval in s."),
    nt_out: int = typer.Option(None, help="Number of output time samples."),
    n: int = typer.Option(None, help="Nodes per side over the preset's domain."),
    spacing: float = typer.Option(None, help="Node spacing in m (same node count)."),
    decimation: str = typer.Option(None, help="point or lowpass (anti-aliased)."),
    source_margin: float = typer.Option(None, help="Keep random sources this far (m) from the "
                                        "edges."),
    velocity: str = typer.Option(None, help="Velocity-model distribution: default (ours, "
                                 "clipped to 2400-3600 m/s) or authors (the paper's: drawn on "
                                 "2x the grid, cropped, not clipped; 1.6x solver time on paper)."),
    progress: bool = typer.Option(True, help="Show a progress bar on stderr (on a terminal)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Generate (or resume) a training dataset with the finite-difference solver."""
    from ..data import generate_dataset, open_store
    from ..physics import get_preset

    p = get_preset(preset, f_peak_hz=frequency, dt_out_s=dt_out, nt_out=nt_out, n=n,
                   spacing_m=spacing, decimation=decimation, source_margin_m=source_margin,
                   velocity=velocity)
    if workers is None:
        workers = 1 if scheduler else _default_workers()
    t0 = time.perf_counter()
    path = generate_dataset(out, p, samples, seed=seed, backend=backend, workers=workers,
                            scheduler=scheduler, shard_size=shard_size,
                            progress=progress and not quiet)
    store = open_store(path)
    emit_json({"out": str(path), "n_samples": store.n_samples, "shard_size": store.shard_size,
               "preset": p.name, "velocity": velocity or "default", "seed": seed,
               "backend": backend,
               "wavefield_shape": list(store.wavefield.shape),
               "seconds": round(time.perf_counter() - t0, 3)})
