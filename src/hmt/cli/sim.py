"""`hmt sim`: the Kite-compatible simulator (docs/simulator.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hmt.cli import app


@app.command()
def sim(
    port: Annotated[int, typer.Option(help="REST and /_sim/ port; 0 picks a free one.")] = 8765,
    ws_port: Annotated[
        int | None, typer.Option(help="Ticker port; default --port + 1 (0 if --port is 0).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (keep it loopback).")] = (
        "127.0.0.1"
    ),
    seed: Annotated[int, typer.Option(help="Seeds prices, faults, order ids, credentials.")] = 1,
    replay: Annotated[
        Path | None, typer.Option(help="CSV of timestamp,token,ltp[,volume] to replay.")
    ] = None,
    replay_speed: Annotated[float, typer.Option(help="Replay pace: 2.0 is twice as fast.")] = 1.0,
    walk: Annotated[bool, typer.Option(help="Run the random walk (off with --replay).")] = True,
    funds: Annotated[
        str | None, typer.Option(help="Paper funds in rupees; unset: no funds check.")
    ] = None,
    broker: Annotated[
        str, typer.Option(help="Whose protocol to speak: kite, or upstox (docs/upstox/).")
    ] = "kite",
    fill_parts: Annotated[
        int, typer.Option(help="Orders fill in this many slices, one per trade (1 to 100).")
    ] = 1,
    market_fills: Annotated[
        str, typer.Option(help="MARKET orders fill 'now' (the last price) or at 'next_tick'.")
    ] = "now",
) -> None:
    """Serve a Kite-compatible simulator and paper broker on loopback (docs/simulator.md)."""
    import asyncio
    import contextlib
    from decimal import Decimal, InvalidOperation

    from hmt import logs
    from hmt.sim.broker import Fills
    from hmt.sim.prices import ReplayError
    from hmt.sim.simulator import Simulator

    logs.configure()  # on stderr: stdout carries only the settings lines
    if broker == "upstox":
        _serve_upstox(host=host, port=port, seed=seed, walk=walk)
        return
    if broker != "kite":
        typer.echo(f"hmt sim: --broker {broker!r} is not one of kite, upstox", err=True)
        raise typer.Exit(code=2)

    try:
        paper_funds = None if funds is None else Decimal(funds)
    except InvalidOperation:
        typer.echo(f"hmt sim: --funds {funds!r} is not a number of rupees", err=True)
        raise typer.Exit(code=2) from None
    try:
        fills = Fills(parts=fill_parts, market=market_fills)
    except ValueError as exc:
        typer.echo(f"hmt sim: {exc}", err=True)
        raise typer.Exit(code=2) from None
    chosen_ws = ws_port if ws_port is not None else (port + 1 if port else 0)
    try:
        simulator = Simulator(
            seed=seed,
            host=host,
            port=port,
            ws_port=chosen_ws,
            walk=walk and replay is None,
            replay=replay,
            replay_speed=replay_speed,
            funds=paper_funds,
            fills=fills,
        )
    except (ReplayError, OSError) as exc:
        typer.echo(f"hmt sim: {exc}", err=True)
        raise typer.Exit(code=2) from None

    async def serve() -> None:
        async with simulator:
            typer.echo(f"HMT_KITE_API_URL={simulator.api_url}")
            typer.echo(f"HMT_KITE_WS_URL={simulator.ws_url}")
            typer.echo(f"HMT_KITE_API_KEY={simulator.api_key}")
            typer.echo(f"HMT_KITE_API_SECRET={simulator.api_secret}")
            typer.echo(f"HMT_KITE_ACCESS_TOKEN={simulator.access_token}")
            typer.echo(
                f"# paper credentials; control API: {simulator.api_url}/_sim/state", err=True
            )
            await asyncio.Event().wait()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve())
    except OSError as exc:  # the port is taken, or the address is not ours
        typer.echo(f"hmt sim: {exc}", err=True)
        raise typer.Exit(code=2) from None


def _serve_upstox(*, host: str, port: int, seed: int, walk: bool) -> None:
    """The Upstox simulator (REST, login, authorize and feed on one port; docs/upstox/SIM.md)."""
    import asyncio
    import contextlib

    from hmt.sim.upstox.server import UpstoxSim

    async def serve() -> None:
        every = 1.0 if walk else None  # one tick step a second per instrument
        async with UpstoxSim(seed=seed, host=host, port=port, walk_every_s=every) as simulator:
            typer.echo(f"HMT_UPSTOX_API_URL={simulator.api_url}")
            typer.echo(f"HMT_UPSTOX_CLIENT_ID={simulator.client_id}")
            typer.echo(f"HMT_UPSTOX_CLIENT_SECRET={simulator.client_secret}")
            typer.echo(f"HMT_UPSTOX_REDIRECT_URI={simulator.redirect_uri}")
            typer.echo(f"HMT_UPSTOX_ACCESS_TOKEN={simulator.access_token}")
            typer.echo("HMT_BROKER=paper")
            typer.echo("HMT_PAPER_BROKER=upstox")  # the engine speaks Upstox to it
            typer.echo(
                f"# paper credentials; control API: {simulator.api_url}/_sim/state", err=True
            )
            await asyncio.Event().wait()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve())
    except OSError as exc:
        typer.echo(f"hmt sim: {exc}", err=True)
        raise typer.Exit(code=2) from None
