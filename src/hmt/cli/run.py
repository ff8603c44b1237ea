"""`hmt run`: the engine and its HTTP API in one process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import typer

from hmt.cli import app
from hmt.config import ConfigError, Settings, load_settings


def settings_or_exit(uses: Iterable[str] | None = None, **overrides: object) -> Settings:
    """The settings a command `uses` (default: all), or exit 2 naming the bad variable.

    Each command checks only what it reads, so a server-only setting such as
    HMT_PORT cannot stop `hmt token create`.
    """
    try:
        return load_settings(uses=uses, **overrides)
    except ConfigError as error:
        typer.echo(f"hmt: {error}", err=True)
        raise typer.Exit(code=2) from None


@app.command()
def run(
    json_logs: bool = typer.Option(False, "--json-logs", help="Log one JSON object a line."),
) -> None:
    """Run the engine and the HTTP API until SIGTERM or Ctrl-C (a graceful stop)."""
    import uvicorn

    from hmt import logs
    from hmt.api.app import create_app
    from hmt.engine.wiring import build

    settings = settings_or_exit()
    logs.configure(json=json_logs)

    async def serve() -> None:
        try:
            runtime = await build(settings)
        except ConfigError as error:
            typer.echo(f"hmt: {error}", err=True)
            raise typer.Exit(code=2) from None
        config = uvicorn.Config(
            create_app(runtime), host=settings.host, port=settings.port, log_config=None
        )
        await uvicorn.Server(config).serve()

    asyncio.run(serve())
