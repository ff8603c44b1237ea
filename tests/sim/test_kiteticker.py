"""The official KiteTicker (Twisted: run in a subprocess) decodes the simulator's ticks."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from hmt import waits
from hmt.sim.simulator import Simulator
from tests.sim.support import INFY, NIFTY, SBIN

PROBE = Path(__file__).with_name("kiteticker_probe.py")
RELIANCE = 738561


class Probe:
    """A running kiteticker_probe.py and the events it has printed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []

    async def until(self, wanted: Any, within: float = 30.0) -> dict[str, Any]:
        """Read events until one satisfies `wanted`; fail with what was seen."""
        assert self.process.stdout is not None
        for event in self.events:
            if wanted(event):
                return event
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            line = await waits.within(self.process.stdout.readline(), deadline - loop.time())
            if not line:
                break
            event = json.loads(line)
            self.events.append(event)
            if wanted(event):
                return event
        raise AssertionError(f"KiteTicker never saw it; events: {self.events[-10:]}")


@asynccontextmanager
async def probe(sim: Simulator, access_token: str) -> AsyncIterator[Probe]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROBE),
        sim.ws_url,
        sim.api_key,
        access_token,
        str(INFY),
        str(SBIN),
        str(RELIANCE),
        str(NIFTY),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield Probe(process)
    finally:
        process.kill()
        await process.wait()


def tick_of(token: int, mode: str, price: float | None = None) -> Any:
    def match(event: dict[str, Any]) -> bool:
        return event["event"] == "ticks" and any(
            t["instrument_token"] == token
            and t["mode"] == mode
            and (price is None or t["last_price"] == price)
            for t in event["ticks"]
        )

    return match


async def test_kiteticker_decodes_all_three_modes_and_order_updates(sim: Simulator) -> None:
    """Pointed at the simulator, KiteTicker gets ltp, quote and full ticks and postbacks."""
    async with probe(sim, sim.access_token) as seen:
        await seen.until(lambda e: e["event"] == "connect")
        for token, mode in ((INFY, "ltp"), (SBIN, "quote"), (RELIANCE, "full"), (NIFTY, "full")):
            await seen.until(tick_of(token, mode))
        sim.push_price(INFY, "1603.40")
        sim.push_price(SBIN, "861.35")
        sim.push_price(RELIANCE, "1411.70")
        sim.push_price(NIFTY, "25123.45")
        ltp = await seen.until(tick_of(INFY, "ltp", 1603.4))
        quote = await seen.until(tick_of(SBIN, "quote", 861.35))
        full = await seen.until(tick_of(RELIANCE, "full", 1411.7))
        index = await seen.until(tick_of(NIFTY, "full", 25123.45))
        [q] = [t for t in quote["ticks"] if t["last_price"] == 861.35]
        assert q["tradable"] is True
        assert set(q["ohlc"]) == {"open", "high", "low", "close"}
        [f] = [t for t in full["ticks"] if t["last_price"] == 1411.7]
        assert len(f["depth"]["buy"]) == 5
        assert f["exchange_timestamp"] not in (None, "None")
        assert any(t["tradable"] is False for t in index["ticks"])
        assert ltp["ticks"][0]["mode"] == "ltp"

        sim.broker.place(
            "regular",
            {
                "exchange": "NSE",
                "tradingsymbol": "SBIN",
                "transaction_type": "SELL",
                "order_type": "LIMIT",
                "quantity": "4",
                "product": "MIS",
                "price": "870",
            },
        )
        sim.push_price(SBIN, "870.5")
        order = await seen.until(lambda e: e["event"] == "order")
        assert order["data"]["status"] == "COMPLETE"
        assert order["data"]["tradingsymbol"] == "SBIN"


async def test_kiteticker_sees_the_403_for_a_bad_token(sim: Simulator) -> None:
    """A bad access token fails KiteTicker's upgrade with 403, as Kite's does."""
    async with probe(sim, "expired-token") as seen:
        event = await seen.until(
            lambda e: e["event"] in ("error", "close") and "403" in e["reason"]
        )
        assert event["code"] == 1006
