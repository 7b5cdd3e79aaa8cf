"""The Typer application every command module registers with."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="seisfno",
    help="Neural operators and full-waveform inversion for the 2-D acoustic wave equation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """Neural operators and full-waveform inversion for the 2-D acoustic wave equation."""
    if version:
        from .._version import __version__

        typer.echo(__version__)
        raise typer.Exit()
