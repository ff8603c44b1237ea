"""`hmt token`: API tokens (stored hashed; the plaintext is shown once)."""

from __future__ import annotations

import asyncio

import typer

from hmt.cli import app
from hmt.cli.run import settings_or_exit

# What these commands read: the database, and whether to migrate it first.
CREATE_USES = ("database_url", "db_auto_upgrade")
REVOKE_USES = ("database_url",)

token_app = typer.Typer(name="token", help="API tokens.", no_args_is_help=True)
app.add_typer(token_app)


@token_app.command("create")
def create(
    user: str = typer.Option(..., "--user", help="The user the token acts for."),
    operator: bool = typer.Option(False, "--operator", help="May also start and stop the engine."),
    name: str | None = typer.Option(None, "--name", help="A label to recognise it by."),
) -> None:
    """Issue a token; it is printed once, as the last line."""
    from hmt.store import migrate
    from hmt.store.db import Database, create_engine
    from hmt.store.tokens import TokenStore

    settings = settings_or_exit(CREATE_USES)
    if not user.strip():
        typer.echo("hmt: --user must not be empty", err=True)
        raise typer.Exit(code=2)

    async def issue() -> tuple[str, str]:
        engine = create_engine(settings.database_url, application_name="hmt-cli")
        try:
            await migrate.upgrade_at_start(engine, enabled=settings.db_auto_upgrade)
            issued = await TokenStore(Database(engine)).issue(user, operator=operator, name=name)
            return issued.token_id, issued.token
        finally:
            await engine.dispose()

    token_id, token = asyncio.run(issue())
    kind = "operator token" if operator else "token"
    typer.echo(f"{kind} {token_id} for user {user} (revoke with `hmt token revoke {token_id}`):")
    typer.echo(token)


@token_app.command("revoke")
def revoke(
    token_id: str = typer.Argument(..., help="The id printed by `hmt token create`."),
) -> None:
    """Stop a token working at once."""
    from hmt.store.db import Database, create_engine
    from hmt.store.tokens import TokenStore

    settings = settings_or_exit(REVOKE_USES)

    async def work() -> bool:
        engine = create_engine(settings.database_url, application_name="hmt-cli")
        try:
            return await TokenStore(Database(engine)).revoke(token_id)
        finally:
            await engine.dispose()

    if not asyncio.run(work()):
        typer.echo(f"hmt: no live token with id {token_id}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"token {token_id} revoked")
