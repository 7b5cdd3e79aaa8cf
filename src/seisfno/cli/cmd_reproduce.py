"""``seisfno reproduce``: every figure and number of the paper in one command."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from ._app import app
from ._common import emit_json, set_threads


@app.command()
def reproduce(
    out: Path = typer.Option(..., help="Output directory (finished stages with the same "
                             "configuration are kept on rerun; changed ones are redone)."),
    preset: str = typer.Option("quick", help="quick (laptop CPU) or paper (one GPU)."),
    small: bool = typer.Option(False, "--small", help="A few-minute version (the demo)."),
    smoke: bool = typer.Option(False, "--smoke", help="The profile's every stage and FWI "
                               "protocol at toy size (a few minutes on a CPU): a check of the "
                               "real command before spending GPU time."),
    stages: str = typer.Option(None, help="Comma-separated subset of the stages."),
    device: str = typer.Option(None, help="cpu, cuda, ... (default: CUDA when available)."),
    workers: int = typer.Option(None, help="Data-generation processes (default: cores on CPU)."),
    train_minutes: float = typer.Option(None, help="Override the training budget (min)."),
    train_epochs: int = typer.Option(None, help="Train the main model this many epochs (with "
                                     "the budget, the first reached ends it)."),
    n_samples: int = typer.Option(None, help="Override the number of generated samples."),
    in_memory: bool = typer.Option(None, "--in-memory/--streaming", help="Load the training "
                                   "data whole (fast; needs it in RAM) or stream it from the "
                                   "store (bounded memory). Default: the profile's choice."),
    threads: int = typer.Option(None, help="CPU threads."),
    progress: bool = typer.Option(True, help="Progress bars on stderr (on a terminal)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars and no stage "
                               "log; only changes of configuration and errors on stderr."),
) -> None:
    """Data, training, evaluation, studies, FWI and timings; writes report.md and metrics.json."""
    from ..pipeline import STAGES, get_profile
    from ..pipeline import reproduce as run

    set_threads(threads)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(message)s")
    for noisy in ("distributed", "dask"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = get_profile(preset, small, smoke, train_minutes=train_minutes,
                      train_epochs=train_epochs, n_samples=n_samples, train_in_memory=in_memory)
    chosen = tuple(s.strip() for s in stages.split(",")) if stages else STAGES
    m = run(out, cfg, device=device, workers=workers, stages=chosen,
            progress=progress and not quiet)
    summary = {"report": str(out / "report.md"), "metrics": str(out / "metrics.json"),
               "total_seconds": m["total_seconds"]}
    st = m["stages"]
    if "evaluate" in st:
        summary["val_rel_l2"] = st["evaluate"]["rel_l2_mean"]
    if "fwi" in st:
        summary["fwi_misfit"] = {k: v["model_misfit"] for k, v in st["fwi"]["results"].items()}
    emit_json(summary)
