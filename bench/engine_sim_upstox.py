"""The simulator side of bench_engine on Upstox, in a process of its own: `hmt sim --broker
upstox` on loopback, timed as bench/engine_sim.py times Kite's.

`python -m bench.engine_sim_upstox CONFIG_JSON` starts an `UpstoxSim` over
`rows(n)` (the same BENCH0.. instruments, prices and tick as the Kite side,
in Upstox's master format) and prints one JSON line (its URL and
credentials). On `go` it streams background moves at the configured rate,
round-robin over every instrument but the target, every 2 ms the moves due in
one live_feed frame (protobuf; Kite's ticker likewise packs what is due into
one frame); then at each offset of the schedule it trades the target at the
next rung and times the sample from the frame carrying it about to be written
(`on_frame`) to the order request arriving (`on_request`), perf_counter_ns on
CLOCK_MONOTONIC. The same protocol on stdin and stdout as bench.engine_sim.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from aiohttp import web

from bench.engine_sim import CLOSE, ORDER_TIMEOUT_S, TICK, rung
from hmt.sim.upstox.server import UpstoxSim
from hmt.waits import within


def key(i: int) -> str:
    return f"NSE_EQ|BENCH{i:07d}"


def rows(instruments: int) -> list[dict[str, Any]]:
    """BENCH0.. as Upstox's master lists an equity: tick_size in paise (FACTS 4)."""
    return [
        {
            "segment": "NSE_EQ",
            "name": f"BENCH {i}",
            "exchange": "NSE",
            "instrument_type": "EQ",
            "instrument_key": key(i),
            "exchange_token": str(100_000 + i),
            "trading_symbol": f"BENCH{i}",
            "lot_size": 1,
            "tick_size": float(TICK),
            "last_price": CLOSE / 100,
        }
        for i in range(instruments)
    ]


class Probe:
    """One sample at a time: the frame carrying the target's rung out -> order request in."""

    def __init__(self, sim: UpstoxSim, target: str) -> None:
        self.sim, self.target = sim, target
        self.watched: float | None = None
        self.sent_ns: int | None = None
        self.received_ns: int | None = None
        self.arrived = asyncio.Event()
        self.orders = 0

    def watch(self, price: float) -> None:
        self.watched = price
        self.sent_ns = self.received_ns = None
        self.arrived.clear()

    def on_frame(self, keys: list[str]) -> None:
        if self.watched is None or self.sent_ns is not None or self.target not in keys:
            return
        if self.sim.prices[self.target] == self.watched:
            self.sent_ns = time.perf_counter_ns()

    def on_request(self, request: web.Request) -> None:
        if request.method == "POST" and request.path == "/v3/order/place":
            self.orders += 1
            if self.received_ns is None:
                self.received_ns = time.perf_counter_ns()
                self.arrived.set()


async def background(sim: UpstoxSim, keys: list[str], rate: float, made: list[int]) -> None:
    """`rate` moves a second, each instrument between CLOSE and one tick up, batched."""
    prices, up, close = sim.prices, (CLOSE + TICK) / 100, CLOSE / 100
    start, i = time.perf_counter(), 0
    while True:
        await asyncio.sleep(0.002)
        due = int((time.perf_counter() - start) * rate) - made[0]
        batch: dict[str, float] = {}
        for _ in range(due):
            moved = keys[i % len(keys)]
            i += 1
            batch[moved] = up if prices[moved] == close else close
        if batch:
            await sim.push_prices(batch)
        made[0] += due


async def _line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def _say(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


async def main(config: dict[str, Any]) -> None:
    async with UpstoxSim(seed=1, instruments=rows(config["instruments"])) as sim:
        keys = list(sim.instruments)
        target, others = keys[0], keys[1:]
        probe = Probe(sim, target)
        sim.on_frame, sim.on_request = probe.on_frame, probe.on_request
        _say(
            {
                "api_url": sim.api_url,
                "client_id": sim.client_id,
                "access_token": sim.access_token,
            }
        )
        if (await _line()).strip() != "go":
            return
        made = [0]
        started = time.perf_counter()
        streaming = asyncio.create_task(background(sim, others, config["rate"], made))
        loop = asyncio.get_running_loop()
        await asyncio.sleep(config["warmup_s"])
        begin = loop.time()
        latencies_us: list[float] = []
        stamps: list[tuple[int, int]] = []
        missed = 0
        made_before = made[0]
        first = config.get("first_rung", 0)
        for k, offset in enumerate(config["schedule"], start=first):
            await asyncio.sleep(max(0.0, begin + offset - loop.time()))
            price = rung(k) / 100
            probe.watch(price)
            await sim.push_price(target, price)
            try:
                await within(probe.arrived.wait(), ORDER_TIMEOUT_S)
            except TimeoutError:
                missed += 1
                continue
            if probe.sent_ns is None or probe.received_ns is None:
                missed += 1
                continue
            latencies_us.append((probe.received_ns - probe.sent_ns) / 1000)
            stamps.append((probe.sent_ns, probe.received_ns))
        seconds = loop.time() - begin
        trades = made[0] - made_before
        _say(
            {
                "latencies_us": latencies_us,
                "stamps": stamps,
                "missed": missed,
                "orders": probe.orders,
                "book_orders": len(sim.orders),
                # Every move is written to the subscribed engine (no backlog is ever cut).
                "ticks_sent": trades + len(config["schedule"]),
                "trades": trades,
                "seconds": seconds,
                "dropped": 0,
                "elapsed_s": time.perf_counter() - started,
            }
        )
        await _line()
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
