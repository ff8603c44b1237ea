"""The `hmt` command."""

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


# --- hmt db: schema migrations (hmt.store) ---

db_app = typer.Typer(name="db", help="Database schema.", no_args_is_help=True)
app.add_typer(db_app)


@db_app.command("upgrade")
def db_upgrade(
    revision: str = typer.Argument("head", help="Target revision (default: the newest)."),
) -> None:
    """Migrate the database named by HMT_DATABASE_URL up to REVISION."""
    import asyncio

    from hmt.config import ConfigError, load_settings
    from hmt.store import migrate
    from hmt.store.db import create_engine

    try:
        settings = load_settings()
    except ConfigError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=2) from None

    async def run() -> str | None:
        engine = create_engine(settings.database_url, application_name="hmt-migrate")
        try:
            await migrate.upgrade(engine, revision)
            return await migrate.current(engine)
        finally:
            await engine.dispose()

    typer.echo(f"database schema at revision {asyncio.run(run())}")
