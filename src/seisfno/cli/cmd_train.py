"""``seisfno train``: train a Fourier neural operator on a dataset store."""

from __future__ import annotations

from pathlib import Path

import typer

from .._errors import SeisfnoError
from ._app import app
from ._common import emit_json, parse_key_values, set_threads


@app.command()
def train(
    data: Path = typer.Option(..., help="Dataset store (from `seisfno generate`)."),
    out: Path = typer.Option(..., help="Run directory (resumed if it holds a checkpoint)."),
    arch: str = typer.Option("fno2d", help="Architecture: fno2d or paper3d."),
    arch_arg: list[str] = typer.Option(
        None, help="Override an architecture argument, KEY=VALUE (repeatable), e.g. "
                   "width=48 or projection=64; defaults come from the preset."),
    epochs: int = typer.Option(None, help="Epochs (default 50, or as many as the budget fits)."),
    time_budget: float = typer.Option(None, help="Fit the schedule into this many minutes."),
    batch_size: int = typer.Option(16, help="Global batch size."),
    lr: float = typer.Option(3e-3, help="Peak learning rate."),
    loss: str = typer.Option("rel_l2", help="rel_l2 or mse."),
    n_train: int = typer.Option(None, help="Training samples (default: all but the last n_val)."),
    n_val: int = typer.Option(200, help="Validation samples: the last ones of the store."),
    device: str = typer.Option(None, help="cpu, cuda, ... (default CUDA when available)."),
    amp: str = typer.Option("auto", help="bf16 autocast: auto (CUDA), on, off."),
    compile: str = typer.Option("auto", help="torch.compile: auto (CUDA), on, off."),
    seed: int = typer.Option(0, help="Initialization and shuffling seed."),
    augment: str = typer.Option(
        None, help="d4: a random symmetry of the square per sample (exact on a square grid; "
                   "the default there), or none (the default on other grids)."),
    in_memory: bool = typer.Option(
        None, "--in-memory/--streaming",
        help="Load the training data whole (fast, needs its size in RAM) or stream it chunk by "
             "chunk (bounded memory). Default: whole when it takes at most 40 % of the memory "
             "available (at least 512 MiB)."),
    progress: bool = typer.Option(True, help="Progress bar on stderr (on a terminal)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Nothing on stderr but errors."),
    threads: int = typer.Option(None, help="CPU threads."),
) -> None:
    """Train an operator; prints the run's summary as one JSON object."""
    from ..operator import train as run

    set_threads(threads)
    arch_args = parse_key_values(arch_arg, "--arch-arg")
    if not data.exists():
        raise SeisfnoError(f"dataset not found: {data}")
    if epochs is not None and epochs < 1:
        raise SeisfnoError("--epochs must be at least 1")
    if batch_size < 1 or not lr > 0:
        raise SeisfnoError("--batch-size must be >= 1 and --lr positive")
    if augment is not None and augment not in ("d4", "none"):
        raise SeisfnoError(f"--augment must be d4 or none, got {augment!r}")
    r = run(data, out, arch=arch, epochs=epochs, time_budget_min=time_budget,
            batch_size=batch_size, lr=lr, loss=loss, n_val=n_val, n_train=n_train,
            device=device, amp=amp, compile=compile, seed=seed, progress=progress and not quiet,
            arch_args=arch_args, augment=augment, in_memory=in_memory)
    emit_json({"out": str(r.out_dir), "model": str(r.out_dir / "model.json"),
               "epochs": r.epochs_run, "val_rel_l2": r.val_rel_l2,
               "train_rel_l2": r.train_rel_l2, "seconds": round(r.seconds, 2)})
