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


# What `hmt db reseal` reads: the database and the keys (nothing of the broker or server).
RESEAL_USES = ("database_url", "secret_key")


@db_app.command("reseal")
def db_reseal() -> None:
    """Re-seal every stored secret under HMT_SECRET_KEY's first key (after a rotation).

    Run with the new key first and the old after it (HMT_SECRET_KEY=new,old); then
    the old one can be dropped. Each store is one transaction, so a rerun is safe.
    """
    import asyncio

    from cryptography.exceptions import InvalidTag

    from hmt.cli.run import settings_or_exit
    from hmt.logs import register_secret
    from hmt.store.accounts import AccountStore
    from hmt.store.channels import ChannelStore
    from hmt.store.db import Database, create_engine
    from hmt.store.linked import LinkedAccounts
    from hmt.store.sealing import Sealer

    settings = settings_or_exit(RESEAL_USES)
    if settings.secret_key is None:
        typer.echo("hmt: HMT_SECRET_KEY is not set: nothing can be opened or re-sealed", err=True)
        raise typer.Exit(code=2)
    register_secret(settings.secret_key.get_secret_value())
    for key in settings.sealing_keys():
        register_secret(key)
    sealer = Sealer(settings.sealing_keys())

    async def run() -> list[tuple[str, int | str]]:
        engine = create_engine(settings.database_url, application_name="hmt-reseal")
        db = Database(engine)
        stores = (
            ("the default account's session (hmt_broker_accounts)", AccountStore(db, sealer)),
            ("linked accounts (hmt_accounts)", LinkedAccounts(db, sealer)),
            ("notification channels (hmt_notify_channels)", ChannelStore(db, sealer)),
        )
        done: list[tuple[str, int | str]] = []
        try:
            for name, store in stores:
                try:
                    done.append((name, await store.reseal_all()))
                except InvalidTag as error:
                    # The message names the field and the key's id, never a key or value.
                    done.append((name, str(error) or "a sealed value was altered or moved"))
        finally:
            await engine.dispose()
        return done

    failed = False
    for name, result in asyncio.run(run()):
        if isinstance(result, int):
            typer.echo(f"{name}: {result} re-sealed")
        else:
            failed = True
            typer.echo(f"hmt: {name}: nothing re-sealed: {result}", err=True)
    if failed:
        typer.echo(
            "hmt: a value opened with no key of HMT_SECRET_KEY: add the key it was sealed "
            "with (comma-separated, after the new one) and run `hmt db reseal` again",
            err=True,
        )
        raise typer.Exit(code=1)
    typer.echo(f"every sealed value is under key {sealer.current}")
