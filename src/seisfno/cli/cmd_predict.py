"""``seisfno predict``: one wavefield from a trained operator (like ``simulate``, in ms)."""

from __future__ import annotations

from pathlib import Path

import typer

from .._errors import SeisfnoError
from ._app import app
from ._common import emit_json, parse_xz, set_threads


@app.command()
def predict(
    model: str = typer.Option(..., help="Run directory, model file, or shipped name (quick)."),
    velocity: Path = typer.Option(..., help="Velocity model (m/s), .npy/.npz/.sgy, (nz, nx)."),
    source: str = typer.Option(..., help="Source position 'X,Z' in metres from the top-left node."),
    out: Path = typer.Option(..., help="Output .npy: (nt, nz, nx) float32, sample k at k*dt_out."),
    symmetrize: bool = typer.Option(False, help="Average the 8 symmetry-transformed predictions "
                                    "(square grids; 8x the prediction time)."),
    device: str = typer.Option(None, help="cpu, cuda, ..."),
    threads: int = typer.Option(None, help="CPU threads."),
) -> None:
    """Predict one wavefield with a trained operator."""
    import numpy as np
    import torch

    from ..operator import load_model
    from ..operator.evaluate import predict_symmetrized
    from ..physics import load_velocity

    set_threads(threads)
    if out.suffix != ".npy":
        raise SeisfnoError(f"--out must be a .npy file, got {out}")
    v = load_velocity(velocity)
    src = parse_xz(source)
    m = load_model(model, device=device)
    with torch.no_grad():
        pred = (predict_symmetrized(m, v, np.asarray([src])) if symmetrize
                else m.predict(v, np.asarray([src])))
        u = pred.cpu().numpy()[0].astype(np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, u)
    emit_json({"out": str(out), "shape": list(u.shape), "dt_out_s": m.preset.dt_out_s,
               "f_peak_hz": m.preset.f_peak_hz, "max_abs": float(np.abs(u).max()),
               "symmetrized": symmetrize})
