"""`hmt run`: the engine and its HTTP API in one process (the API on its own thread)."""

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
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        metavar="NATS_URL",
        help="Run as a cluster node on this NATS JetStream (overrides HMT_CLUSTER_URL).",
    ),
) -> None:
    """Run the engine and the HTTP API until SIGTERM or Ctrl-C (a graceful stop)."""
    from hmt import logs
    from hmt.cli.serving import serving
    from hmt.compose import build
    from hmt.config import ApiLoop

    settings = settings_or_exit(**({} if cluster is None else {"cluster_url": cluster}))
    if settings.cluster_url is not None:
        _check_cluster(settings)
    logs.configure(json=json_logs)

    async def serve() -> None:
        try:
            runtime = await build(settings)
        except ConfigError as error:
            typer.echo(f"hmt: {error}", err=True)
            raise typer.Exit(code=2) from None
        stop = asyncio.Event()
        if settings.api_loop is ApiLoop.THREAD:  # else uvicorn, on this thread, takes them
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
        async with serving(runtime, host=settings.host, port=settings.port) as served:
            stopping: asyncio.Future[None] = asyncio.ensure_future(_until(stop))
            await asyncio.wait([served.done, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()

    # uvicorn stops gracefully on SIGTERM, then raises the signal again for the handler
    # it found: the default one would end the process "killed by SIGTERM" (143) after a
    # clean stop. This one exits 0, as a finished service should (and before uvicorn
    # serves, a SIGTERM still ends the process at once). With the API on its own
    # thread this loop takes SIGTERM and SIGINT itself once the runtime is built.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    asyncio.run(serve())


def _check_cluster(settings: Settings) -> None:
    """A cluster node (docs/cluster.md): its id must suit NATS; exit 2 naming it if not.

    PostgreSQL only: the settings refuse HMT_CLUSTER_URL with SQLite, naming both."""
    try:
        settings.cluster_node_id()
    except ConfigError as error:
        typer.echo(f"hmt: {error}", err=True)
        raise typer.Exit(code=2) from None


async def _until(event: asyncio.Event) -> None:
    await event.wait()


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)
