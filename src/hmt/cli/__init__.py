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


# Registered last: each module adds its commands to `app`.
from hmt.cli import backtest, cluster, db, demo, run, sim, status, token  # noqa: E402, F401
