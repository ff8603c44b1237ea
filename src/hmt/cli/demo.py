"""`hmt demo` (what `make run` runs): everything on loopback, nothing to sign up for.

The simulator plays Kite with a seeded random walk and a paper broker; the
engine and the API run on a fresh SQLite file; a demo user gets a token and a
few triggers a handful of ticks away from the moving prices, so some fire
within the first minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import typer

from hmt.cli import app

DEMO_DB = Path("hmt-demo.db")
DEMO_USER = "demo"
# Six liquid names; each gets a BUY above, a SELL below and an oco around its price,
# nearer for the first names (they fire within a minute) and farther for the last.
DEMO_SYMBOLS = ("INFY", "RELIANCE", "TCS", "HDFCBANK", "ICICIBANK", "SBIN")
TICKS_AWAY = (3, 5, 10, 20, 40, 80)


# Set by the demo itself (the simulator's URLs and credentials, a fresh SQLite
# file): the environment's values for these are neither read nor checked.
DEMO_SETS = frozenset(
    {
        "database_url",
        "broker",
        "kite_api_url",
        "kite_ws_url",
        "kite_api_key",
        "kite_access_token",
        "reconnect_delay_ms",
    }
)


@app.command()
def demo(
    host: str | None = typer.Option(
        None, help="Address of the API and UI [default: HMT_HOST, else 127.0.0.1]."
    ),
    port: int | None = typer.Option(
        None, help="Port of the API and UI [default: HMT_PORT, else 8000].", min=1, max=65535
    ),
    seed: int = typer.Option(1, help="Seeds the simulated market."),
    speed: float = typer.Option(4.0, help="How fast the simulated market moves."),
) -> None:
    """Run the engine and API against the simulator in paper mode, with sample triggers.

    It listens where `hmt run` would (HMT_HOST, HMT_PORT) unless --host or --port says otherwise.
    """
    from hmt import logs
    from hmt.cli.run import settings_or_exit
    from hmt.cli.serving import serving
    from hmt.compose import build
    from hmt.config import Settings
    from hmt.sim.simulator import Simulator

    chosen = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    uses = set(Settings.model_fields) - DEMO_SETS
    settings_or_exit(uses, **chosen)  # a bad HMT_PORT stops the demo before it starts anything
    logs.configure()
    for leftover in (DEMO_DB, Path(f"{DEMO_DB}-wal"), Path(f"{DEMO_DB}-shm")):
        leftover.unlink(missing_ok=True)  # a demo starts from nothing, every time

    async def serve() -> None:
        async with Simulator(seed=seed, walk=True, walk_speed=speed) as sim:
            settings = settings_or_exit(
                uses,
                **chosen,
                database_url=f"sqlite:///{DEMO_DB}",
                broker="paper",
                kite_api_url=sim.api_url,
                kite_ws_url=sim.ws_url,
                kite_api_key=sim.api_key,
                kite_access_token=sim.access_token,
                reconnect_delay_ms=500,
            )
            runtime = await build(settings)
            issued = await runtime.tokens.issue(DEMO_USER, operator=True, name="demo")
            created = await _seed_triggers(runtime, sim)
            async with serving(runtime, host=settings.host, port=settings.port) as served:
                url = f"http://{_url_host(settings.host)}:{settings.port}"
                typer.echo(f"hmt demo: {created} sample triggers near the moving prices.")
                typer.echo(f"API:   {url}  (OpenAPI at /docs)")
                typer.echo(f"UI:    {url}/ui/  (sign in with the last line below)")
                typer.echo(f"Kite simulator: {sim.api_url} (control API at /_sim/state)")
                typer.echo("Watch them fire:")
                typer.echo(f"  curl -s -H 'Authorization: Bearer {issued.token}' {url}/triggers")
                typer.echo("Ctrl-C stops everything. The demo user's token:")
                typer.echo(issued.token)
                await served.done

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


def _url_host(host: str) -> str:
    """`host` as it goes in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


async def _seed_triggers(runtime: object, sim: object) -> int:
    """A BUY above, a SELL below and an oco around the current price of each demo symbol."""
    from hmt.core.model import Trigger
    from hmt.core.types import (
        Exchange,
        InstrumentToken,
        OrderType,
        Product,
        Side,
        TriggerId,
        TriggerType,
        UserId,
    )

    count = 0
    for symbol, ticks_away in zip(DEMO_SYMBOLS, TICKS_AWAY, strict=True):
        instrument = sim.universe.by_key(f"NSE:{symbol}")  # type: ignore[attr-defined]
        if instrument is None:
            continue
        quote = sim.market.quote(instrument.token)  # type: ignore[attr-defined]
        last = quote.last if quote is not None else instrument.close
        step = instrument.tick * ticks_away
        legs = [
            (TriggerType.SINGLE, Side.BUY, last + step, None),
            (TriggerType.SINGLE, Side.SELL, last - step, None),
            (TriggerType.OCO, Side.SELL, last - 2 * step, last + 2 * step),
        ]
        # The same check as the API's: the instrument as the (simulated) broker's master lists it.
        listed = await runtime.instruments.resolve(  # type: ignore[attr-defined]
            InstrumentToken(instrument.token), Exchange.NSE, symbol
        )
        for kind, side, first, second in legs:
            trigger = Trigger(
                id=TriggerId(str(uuid.uuid4())),
                user_id=UserId(DEMO_USER),
                instrument_token=InstrumentToken(instrument.token),
                exchange=Exchange.NSE,
                tradingsymbol=symbol,
                trigger_type=kind,
                side=side,
                trigger_price_1=first,
                trigger_price_2=second,
                quantity=1,
                product=Product.CNC,
                order_type=OrderType.MARKET,
            )
            await runtime.triggers.create(trigger, instrument=listed.instrument)  # type: ignore[attr-defined]
            await runtime.engine.refresh(trigger.id)  # type: ignore[attr-defined]
            count += 1
    return count
