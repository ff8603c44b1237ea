"""`hmt db`: database schema migrations."""

from __future__ import annotations

import typer

from hmt.cli import app

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
        settings = load_settings(uses=("database_url",))  # nothing else matters to a migration
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
