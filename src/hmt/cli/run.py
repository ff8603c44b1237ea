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
        _refuse_cluster(settings)
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


def _refuse_cluster(settings: Settings) -> None:
    """Check the cluster's settings, then stop: the engine is not wired to the leases yet.

    Starting a single-node engine on a shared database while the operator asked for a
    cluster node would evaluate every partition on every node; refusing is safer.
    """
    try:
        node = settings.cluster_node_id()
    except ConfigError as error:
        typer.echo(f"hmt: {error}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(
        f"hmt: cluster node {node!r} on {settings.cluster_url} "
        f"({settings.cluster_partitions} partitions, lease TTL "
        f"{settings.cluster_lease_ttl_s:g} s): the settings are valid, but the engine "
        "does not run as a cluster node yet (docs/cluster.md, 'What remains'); "
        "unset HMT_CLUSTER_URL / drop --cluster to run one node",
        err=True,
    )
    raise typer.Exit(code=2)


async def _until(event: asyncio.Event) -> None:
    await event.wait()


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)
