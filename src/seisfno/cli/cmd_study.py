"""``seisfno study``: the paper's generalization studies (data size, square anomaly, 128 x 128)."""

from __future__ import annotations

from pathlib import Path

import typer

from .._errors import SeisfnoError
from ._app import app
from ._common import emit_json, parse_key_values, set_threads

study_app = typer.Typer(help="Generalization studies; each writes a figure and a JSON file.",
                        no_args_is_help=True)
app.add_typer(study_app, name="study")

_PROGRESS_HELP = "Progress bars on stderr (on a terminal)."
_QUIET_HELP = "Nothing on stderr but errors (no progress bars)."


@study_app.command("datasize")
def datasize(
    data: Path = typer.Option(..., help="Dataset store (seisfno generate)."),
    out: Path = typer.Option(..., help="Output directory (one run per size; resumable)."),
    sizes: str = typer.Option("1200,2400,3600,4800", help="Training-set sizes, comma-separated."),
    epochs: int = typer.Option(None, help="Epochs per model."),
    time_budget: float = typer.Option(None, help="Minutes per model."),
    n_val: int = typer.Option(200, help="Validation samples (the last of the store)."),
    augment: str = typer.Option(
        "none,d4", help="Augmentations trained side by side, comma-separated (d4, none): one "
                        "run per size and augmentation, one column each in the table."),
    batch_size: int = typer.Option(16, help="Global batch size of every model."),
    arch_arg: list[str] = typer.Option(
        None, help="Override an architecture argument of every model, KEY=VALUE (repeatable), "
                   "e.g. width=32; defaults come from the preset."),
    device: str = typer.Option(None, help="cpu, cuda, ..."),
    threads: int = typer.Option(None, help="CPU threads."),
    progress: bool = typer.Option(True, help=_PROGRESS_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=_QUIET_HELP),
) -> None:
    """Training and validation error against training-set size (the paper's Fig. 3)."""
    from ..data import open_store
    from ..operator.studies import datasize_study

    set_threads(threads)
    arch_args = parse_key_values(arch_arg, "--arch-arg")
    try:
        size_list = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError:
        raise SeisfnoError(f"--sizes must be integers separated by commas, got {sizes!r}") from None
    modes = [a.strip() for a in augment.split(",") if a.strip()]
    if not modes or any(a not in ("d4", "none") for a in modes) or len(set(modes)) < len(modes):
        raise SeisfnoError(f"--augment must list d4 and/or none once each, got {augment!r}")
    if epochs is not None and epochs < 1 or batch_size < 1:
        raise SeisfnoError("--epochs and --batch-size must be at least 1")
    if not size_list or min(size_list) < 1:
        raise SeisfnoError(f"--sizes must be positive integers, got {sizes!r}")
    store = open_store(data)
    n = store.n_samples
    if max(size_list) > n - n_val:
        raise SeisfnoError(f"the largest size {max(size_list)} needs {max(size_list) + n_val} "
                           f"samples; {data} has {n}")
    v, s, u = store.load(None)
    kw = {k: val for k, val in (("epochs", epochs), ("time_budget_min", time_budget)) if val}
    emit_json(datasize_study(v, s, u, store.preset, size_list, out, n_val=n_val,
                             train_kwargs={**kw, "batch_size": batch_size,
                                           "arch_args": arch_args},
                             device=device, augment=modes, progress=progress and not quiet))


@study_app.command("square")
def square(
    model: str = typer.Option(..., help="Run directory or pretrained name."),
    out: Path = typer.Option(..., help="Output directory."),
    device: str = typer.Option(None, help="cpu, cuda, ..."),
    threads: int = typer.Option(None, help="CPU threads."),
    progress: bool = typer.Option(True, help=_PROGRESS_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=_QUIET_HELP),
) -> None:
    """Operator vs solver on the 5 % square anomaly (the paper's Fig. 4a-c)."""
    from ..operator import load_model
    from ..operator.studies import square_anomaly_study

    set_threads(threads)
    emit_json(square_anomaly_study(load_model(model, device), out, device=device,
                                   progress=progress and not quiet))


@study_app.command("superres")
def superres(
    model: str = typer.Option(..., help="Run directory or pretrained name."),
    out: Path = typer.Option(..., help="Output directory."),
    nodes: int = typer.Option(128, help="Nodes per side of the finer grid."),
    samples: int = typer.Option(16, help="Held-out samples."),
    device: str = typer.Option(None, help="cpu, cuda, ..."),
    threads: int = typer.Option(None, help="CPU threads."),
    progress: bool = typer.Option(True, help=_PROGRESS_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=_QUIET_HELP),
) -> None:
    """A model evaluated on a finer grid of its domain (the paper's Fig. 4d-f)."""
    from ..operator import load_model
    from ..operator.studies import superres_study

    set_threads(threads)
    if nodes < 8 or samples < 1:
        raise SeisfnoError(f"--nodes must be at least 8 and --samples at least 1, got {nodes} "
                           f"and {samples}")
    emit_json(superres_study(load_model(model, device), out, nodes=nodes, n_samples=samples,
                             device=device, progress=progress and not quiet))
