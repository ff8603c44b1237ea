"""`hmt demo` (what `make run` runs): everything on loopback, nothing to sign up for.

Two brokers in one engine. The Kite simulator plays Kite with a seeded random
walk and a paper broker: it is the default account's broker. The Upstox
simulator (`hmt sim --broker upstox`) walks its own instruments: it is a linked
Upstox account's (`demo-upstox`), traded by the same engine beside Kite
(docs/accounts.md, "Two brokers in one process"). One API and UI on HMT_PORT,
one fresh SQLite file, one demo user with a token, and a few triggers on each
broker a handful of ticks away from the moving prices, so some fire within the
first minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from pathlib import Path
from typing import Any

import typer
from pydantic import SecretStr

from hmt.cli import app

DEMO_DB = Path("hmt-demo.db")
DEMO_USER = "demo"
UPSTOX_ACCOUNT = "demo-upstox"  # the linked account the Upstox simulator plays
# Six liquid names; each gets a BUY above, a SELL below and an oco around its price,
# nearer for the first names (they fire within a minute) and farther for the last.
DEMO_SYMBOLS = ("INFY", "RELIANCE", "TCS", "HDFCBANK", "ICICIBANK", "SBIN")
TICKS_AWAY = (3, 5, 10, 20, 40, 80)
# The Upstox simulator's equities (its master is small): the same three triggers each.
UPSTOX_SYMBOLS = ("RELIANCE", "SBIN")


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
        "paper_broker",
        "upstox_api_url",
        "upstox_order_url",
        "upstox_master_url",
        "upstox_client_id",
        "upstox_access_token",
        "secret_key",
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
    from hmt.sim.upstox.server import UpstoxSim
    from hmt.store.linked import LinkedAccount

    chosen = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    uses = set(Settings.model_fields) - DEMO_SETS
    settings_or_exit(uses, **chosen)  # a bad HMT_PORT stops the demo before it starts anything
    logs.configure()
    for leftover in (DEMO_DB, Path(f"{DEMO_DB}-wal"), Path(f"{DEMO_DB}-shm")):
        leftover.unlink(missing_ok=True)  # a demo starts from nothing, every time

    async def serve() -> None:
        async with (
            Simulator(seed=seed, walk=True, walk_speed=speed) as sim,
            UpstoxSim(seed=seed, walk_every_s=1 / speed) as upstox_sim,
        ):
            settings = settings_or_exit(
                uses,
                **chosen,
                database_url=f"sqlite:///{DEMO_DB}",
                broker="paper",
                kite_api_url=sim.api_url,
                kite_ws_url=sim.ws_url,
                kite_api_key=sim.api_key,
                kite_access_token=sim.access_token,
                # Linked accounts are stored sealed: a key for this demo's file alone.
                secret_key=secrets.token_urlsafe(32),
                upstox_api_url=upstox_sim.api_url,
                reconnect_delay_ms=500,
            )
            runtime = await build(settings)
            issued = await runtime.tokens.issue(DEMO_USER, operator=True, name="demo")
            await runtime.link_account(
                LinkedAccount(
                    id=UPSTOX_ACCOUNT,
                    user_id=DEMO_USER,
                    broker="upstox",
                    label="Upstox simulator",
                    api_key=upstox_sim.client_id,
                    access_token=SecretStr(upstox_sim.access_token),
                )
            )
            created = await _seed_triggers(runtime, sim)
            upstox_prices = {
                row["trading_symbol"]: upstox_sim.prices[key]
                for key, row in upstox_sim.instruments.items()
            }
            upstox_created = await _seed_upstox_triggers(runtime, upstox_prices)
            async with serving(runtime, host=settings.host, port=settings.port) as served:
                url = f"http://{_url_host(settings.host)}:{settings.port}"
                typer.echo(
                    f"hmt demo: {created} sample triggers on Kite (the default account) and "
                    f"{upstox_created} on Upstox (account {UPSTOX_ACCOUNT}), near the moving "
                    "prices, in one engine."
                )
                typer.echo(f"Kite simulator: {sim.api_url} (control API at /_sim/state)")
                typer.echo(f"Upstox simulator: {upstox_sim.api_url} (control API at /_sim/state)")
                typer.echo(f"API:   {url}  (OpenAPI at /docs)")
                typer.echo(f"UI:    {url}/ui/  (sign in with the last line below)")
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
    from hmt.core.types import Exchange, InstrumentToken

    count = 0
    for symbol, ticks_away in zip(DEMO_SYMBOLS, TICKS_AWAY, strict=True):
        instrument = sim.universe.by_key(f"NSE:{symbol}")  # type: ignore[attr-defined]
        if instrument is None:
            continue
        quote = sim.market.quote(instrument.token)  # type: ignore[attr-defined]
        last = quote.last if quote is not None else instrument.close
        # The same check as the API's: the instrument as the (simulated) broker's master lists it.
        listed = await runtime.instruments.resolve(  # type: ignore[attr-defined]
            InstrumentToken(instrument.token), Exchange.NSE, symbol
        )
        count += await _around(runtime, listed.instrument, last, instrument.tick * ticks_away)
    return count


async def _seed_upstox_triggers(runtime: object, prices: dict[str, float]) -> int:
    """The same three triggers on each Upstox demo symbol (`prices`: rupees by symbol) for
    the linked Upstox account, the instrument as the engine's master lists it (its
    Upstox listing: the Kite simulator lists the same symbols under Kite's ids)."""
    from decimal import Decimal

    listings = await runtime.instruments.listings()  # type: ignore[attr-defined]
    broker_of = runtime.broker_of  # type: ignore[attr-defined]
    by_symbol = {
        item.instrument.tradingsymbol: item.instrument
        for item in listings
        if broker_of(item.instrument.id) == "upstox"
    }
    count = 0
    for symbol, ticks_away in zip(UPSTOX_SYMBOLS, TICKS_AWAY, strict=False):
        instrument, price = by_symbol.get(symbol), prices.get(symbol)
        if instrument is None or price is None:
            continue
        last = int(Decimal(str(price)) * instrument.price_divisor)
        step = instrument.tick_size * ticks_away
        count += await _around(runtime, instrument, last, step, account=UPSTOX_ACCOUNT)
    return count


async def _around(
    runtime: object, instrument: Any, last: int, step: int, *, account: str | None = None
) -> int:
    """A BUY `step` above `last`, a SELL `step` below and an oco two steps either side, on
    the master's `instrument`, stored and armed; how many."""
    from hmt.core.model import Trigger
    from hmt.core.types import Exchange, OrderType, Product, Side, TriggerId, TriggerType, UserId

    legs = [
        (TriggerType.SINGLE, Side.BUY, last + step, None),
        (TriggerType.SINGLE, Side.SELL, last - step, None),
        (TriggerType.OCO, Side.SELL, last - 2 * step, last + 2 * step),
    ]
    for kind, side, first, second in legs:
        trigger = Trigger(
            id=TriggerId(str(uuid.uuid4())),
            user_id=UserId(DEMO_USER),
            instrument_token=instrument.id,
            exchange=Exchange.NSE,
            tradingsymbol=instrument.tradingsymbol,
            trigger_type=kind,
            side=side,
            trigger_price_1=first,
            trigger_price_2=second,
            quantity=1,
            product=Product.CNC,
            order_type=OrderType.MARKET,
            account=account,
        )
        await runtime.triggers.create(trigger, instrument=instrument)  # type: ignore[attr-defined]
        await runtime.engine.refresh(trigger.id)  # type: ignore[attr-defined]
    return len(legs)
