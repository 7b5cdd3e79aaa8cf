"""``seisfno simulate``: one wavefield for a velocity model and a source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from .._errors import SeisfnoError
from ._app import app
from ._common import emit_json, parse_xz, set_threads


@app.command()
def simulate(
    velocity: Path = typer.Option(..., help="Velocity model (m/s), .npy/.npz/.sgy, (nz, nx)."),
    source: str = typer.Option(..., help="Source position 'X,Z' in metres from the top-left node."),
    out: Path = typer.Option(..., help="Output .npy: (nt, nz, nx) float32, sample k at k*dt_out."),
    preset: str = typer.Option("quick", help="Preset: quick or paper."),
    frequency: float = typer.Option(None, help="Ricker peak frequency in Hz (preset's default)."),
    dt_out: float = typer.Option(None, help="Output sampling interval in s."),
    nt_out: int = typer.Option(None, help="Number of output samples."),
    spacing: float = typer.Option(None, help="Node spacing in m (default: the preset's domain)."),
    decimation: str = typer.Option(None, help="point or lowpass (anti-aliased)."),
    backend: str = typer.Option("torch", help="torch or deepwave."),
    device: str = typer.Option(None, help="cpu, cuda, ... (default cpu)."),
    plot: Path = typer.Option(None, help="Also draw snapshots and a shot gather to this PNG."),
    threads: int = typer.Option(None, help="CPU threads."),
) -> None:
    """Simulate one wavefield with the finite-difference solver."""
    from ..physics import get_preset, load_velocity
    from ..physics import simulate as run

    set_threads(threads)
    v = load_velocity(velocity)
    src = parse_xz(source)
    p = get_preset(preset, f_peak_hz=frequency, dt_out_s=dt_out, nt_out=nt_out,
                   decimation=decimation)
    kw = {"spacing_m": spacing} if spacing else {}
    u = run(v, src, p, backend=backend, device=device, **kw)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix != ".npy":
        raise SeisfnoError(f"--out must be a .npy file, got {out}")
    np.save(out, u)
    if plot is not None:
        from ..plotting import plot_wavefield

        plot_wavefield(u, v, src, p, plot)
    emit_json({"out": str(out), "shape": list(u.shape), "dt_out_s": p.dt_out_s,
               "f_peak_hz": p.f_peak_hz, "max_abs": float(np.abs(u).max())})
