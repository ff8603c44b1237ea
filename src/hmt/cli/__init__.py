"""The `hmt` command: one module per command group, registered here."""

from __future__ import annotations

import typer

from hmt import __version__

app = typer.Typer(
    name="hmt",
    help="Server-side GTT/OCO trigger engine for Zerodha Kite.",
    no_args_is_help=True,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"hmt {__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Server-side GTT/OCO trigger engine for Zerodha Kite."""


@app.command()
def demo() -> None:
    """Run the engine, API and UI against the simulator in paper mode."""
    typer.echo(
        "hmt demo is not wired yet: the engine, simulator and API land in later issues.\n"
        "What exists today is the pure trigger core; `make test` and `make bench` exercise it.",
        err=True,
    )
    raise typer.Exit(code=2)


# Registered last: each module adds its commands to `app`.
from hmt.cli import db, run, sim, token  # noqa: E402, F401
