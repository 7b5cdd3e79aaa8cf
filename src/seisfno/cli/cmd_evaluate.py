"""``seisfno evaluate``: relative L2 errors and envelope/phase misfits on a dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from .._errors import SeisfnoError
from ._app import app
from ._common import emit_json, set_threads


@app.command()
def evaluate(
    model: str = typer.Option(..., help="Run directory, model file, or shipped name (quick)."),
    data: Path = typer.Option(..., help="Dataset store with wavefields on the evaluation grid."),
    resolution: int = typer.Option(None, help="Resample velocities to N x N (same domain)."),
    n_last: int = typer.Option(None, help="Evaluate only the last N samples (e.g. 200)."),
    figure: Path = typer.Option(None, help="Also draw true vs predicted (like Fig. 2) here."),
    per_sample: bool = typer.Option(False, help="Include per-sample and per-time errors."),
    symmetrize: bool = typer.Option(False, help="Average the 8 symmetry-transformed predictions "
                                    "(square grids; 8x the prediction time)."),
    device: str = typer.Option(None, help="cpu, cuda, ..."),
    threads: int = typer.Option(None, help="CPU threads."),
) -> None:
    """Evaluate an operator; prints one JSON object."""
    import numpy as np
    import torch

    from ..data import open_store
    from ..operator import evaluate as run
    from ..operator import load_model, plot_comparison
    from ..operator.evaluate import predict_symmetrized

    set_threads(threads)
    if resolution is not None and resolution < 2:
        raise SeisfnoError("--resolution must be at least 2")
    if not data.exists():
        raise SeisfnoError(f"dataset not found: {data}")
    m = load_model(model, device=device)
    store = open_store(data)
    idx = None
    if n_last:
        idx = np.arange(max(0, store.n_samples - n_last), store.n_samples)
    res = run(m, data, resolution=resolution, indices=idx, symmetrize=symmetrize)
    if figure is not None:
        i = store.n_samples - 1 if idx is None else int(idx[-1])
        v, s, u = store.load([i])
        grid = m.preset.grid.with_shape(*u.shape[-2:])
        from ..physics import resample

        vv = resample(torch.as_tensor(v), grid)
        with torch.no_grad():
            pred = (predict_symmetrized(m, vv, s) if symmetrize
                    else m.predict(vv, s)).cpu().numpy()[0]
        plot_comparison(u[0], pred, vv.numpy()[0], s[0], m.preset, figure,
                        title=f"sample {i}")
        res["figure"] = str(figure)
    if not per_sample:
        for key in ("rel_l2_per_sample", "rel_l2_per_time", "envelope_misfit_per_sample",
                    "phase_misfit_per_sample"):
            res.pop(key)
    res["model"] = model
    emit_json(res)
