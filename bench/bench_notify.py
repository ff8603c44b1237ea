"""Notifications off the tick path: tick-to-order with notifications on equals off.

One in-process simulator and runtime per mode, on a fresh SQLite file, built by
`hmt.compose.build` as `hmt run` builds it. A ladder of BUY triggers one tick
apart; one crossing price pushed at a time, 0.12 s apart (under Kite's 10
orders/s), each firing one trigger, waiting for its order before the next. The
engine's own tick-to-order histogram (from the tick's evaluation to the order
request leaving) is read at the end. "on": the triggers' owner has two dead
channels taking every kind of notice: one refusing connections, one accepting
and never answering (each send holds a sender thread until its timeout), so
every fire and every placed order queues notices that fail and are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.report import table
from hmt.compose import build
from hmt.config import Settings
from hmt.core.model import Trigger
from hmt.core.notices import ALL_KINDS
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
from hmt.engine.runtime import Runtime
from hmt.sim.simulator import Simulator

INFY = 408065
START = Decimal("1600.00")
STEP = Decimal("0.10")  # INFY's tick: each push crosses exactly one rung
SPACING_S = 0.12
USER = "bench"
KEY = "BenchNotifySealingKey0123456"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def _silent_receiver() -> AsyncIterator[int]:
    """An HTTP server on loopback that reads each request and never answers it."""

    async def hang(_request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hang)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def _ladder(runtime: Runtime, fires: int) -> None:
    listed = await runtime.instruments.resolve(InstrumentToken(INFY), Exchange.NSE, "INFY")
    for k in range(1, fires + 1):
        trigger = Trigger(
            id=TriggerId(str(uuid.uuid4())),
            user_id=UserId(USER),
            instrument_token=InstrumentToken(INFY),
            exchange=Exchange.NSE,
            tradingsymbol="INFY",
            trigger_type=TriggerType.SINGLE,
            side=Side.BUY,
            trigger_price_1=int((START + k * STEP) * 100),
            trigger_price_2=None,
            quantity=1,
            product=Product.CNC,
            order_type=OrderType.MARKET,
        )
        await runtime.triggers.create(trigger, instrument=listed.instrument)
        await runtime.engine.refresh(trigger.id)


async def _until(check: Any, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"bench_notify: gave up after {within:g} s")
        await asyncio.sleep(0.005)


async def _measure(notify: bool, fires: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with Simulator(seed=5, heartbeat_interval=0.2) as sim, _silent_receiver() as slow:
            settings = Settings(
                database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
                broker="paper",
                kite_api_url=sim.api_url,
                kite_ws_url=sim.ws_url,
                kite_api_key=sim.api_key,
                kite_access_token=sim.access_token,
                secret_key=KEY if notify else None,
                notify_allow_nets="127.0.0.1/32",
                notify_timeout_ms=2000,
            )
            runtime = await build(settings)
            await runtime.start()
            try:
                engine = runtime.engine
                await _until(lambda: runtime.feed.connected, 15)
                if notify:
                    assert runtime.channels is not None
                    for url in (
                        f"json://127.0.0.1:{_free_port()}/refused",
                        f"json://127.0.0.1:{slow}/silent",
                    ):
                        await runtime.channels.add(USER, name="dead", url=url, kinds=ALL_KINDS)
                sim.push_price(INFY, START)
                await _ladder(runtime, fires)  # INFY is subscribed once a trigger watches it
                await _until(lambda: engine.last_ltp.get(INFY) == int(START * 100), 15)
                for k in range(1, fires + 1):
                    sim.push_price(INFY, START + k * STEP)
                    await _until(lambda k=k: engine.stats.triggered_orders >= k, 15)
                    await asyncio.sleep(SPACING_S)
                figures = engine.stats.latency()["tick_to_order_us"]
                notices = runtime.stats().get("notifications", {})
            finally:
                await runtime.close()
    return {"latency": figures, "notices": notices, "placed": engine.stats.triggered_orders}


def run(quick: bool) -> str:
    fires = 20 if quick else 150
    off = asyncio.run(_measure(False, fires))
    on = asyncio.run(_measure(True, fires))
    rows = []
    for name, r in (("off", off), ("on: 2 dead channels, every kind", on)):
        lat, n = r["latency"], r["notices"]
        rows.append(
            (
                name,
                r["placed"],
                lat["p50"],
                lat["p90"],
                lat["p99"],
                lat["max"],
                n.get("sent", "-"),
                n.get("failed", "-"),
                n.get("retried", "-"),
                n.get("dropped", "-"),
            )
        )
    # "Within noise": on's p50 no more than 25 % or 200 us (whichever is larger) above off's.
    p50_off, p50_on = off["latency"]["p50"], on["latency"]["p50"]
    same = p50_on - p50_off <= max(200, p50_off * 0.25)
    verdict = f"{'yes' if same else 'no'}: p50 on/off {p50_on / max(1, p50_off):.2f}x"
    return "\n".join(
        [
            "## Notifications: tick-to-order on and off",
            "",
            f"How measured: {fires} fires, one at a time ({SPACING_S:g} s apart), each a price "
            "pushed by the in-process simulator crossing one BUY trigger of a ladder; the "
            "engine's own tick-to-order histogram (evaluation to the order request leaving), "
            "us. 'on': the owner's two channels take every kind of notice and never deliver "
            "(connection refused; accepted and never answered, 2 s timeout), so each fire and "
            "each placed order queues failing, retried deliveries (docs/notifications.md).",
            "",
            table(
                [
                    "notifications",
                    "placed",
                    "p50",
                    "p90",
                    "p99",
                    "max",
                    "sent",
                    "failed",
                    "retried",
                    "dropped",
                ],
                rows,
            ),
            "",
            f"Target: on equals off within noise (on's p50 at most 25 % or 200 us above off's): "
            f"{verdict}.",
        ]
    )
