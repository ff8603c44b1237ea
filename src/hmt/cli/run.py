"""`hmt run`: the engine and its HTTP API in one process."""

from __future__ import annotations

import asyncio
import signal
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
    from hmt.compose import build

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

    # uvicorn stops gracefully on SIGTERM, then raises the signal again for the handler
    # it found: the default one would end the process "killed by SIGTERM" (143) after a
    # clean stop. This one exits 0, as a finished service should (and before uvicorn
    # serves, a SIGTERM still ends the process at once).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    asyncio.run(serve())


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)
