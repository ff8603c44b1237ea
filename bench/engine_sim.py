"""The simulator side of bench_engine, in a process of its own: Kite on loopback, timed.

`python -m bench.engine_sim CONFIG_JSON` starts a `Simulator` over `universe(n)`
and prints one JSON line (its URLs and credentials). On `go` (stdin) it streams
background ticks at the configured rate, round-robin over every instrument but
the target, at prices no trigger is near; then, at each offset of the schedule,
it trades the target at the next rung of the ladder and times the sample from
the moment the frame carrying that price is written (`ticker.on_frame`) to the
moment the order request arrives (`on_request`), both on CLOCK_MONOTONIC
(perf_counter_ns), which every process on the machine shares. It prints the samples as one
JSON line and keeps the background going until `stop` (or end of input).

A process of its own so that the simulator's work (making, encoding and
sending 10k ticks/s) runs on one core and the engine's on the other, as with
Kite on the far side of a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from typing import Any

from hmt.sim.httpd import Request
from hmt.sim.simulator import Simulator
from hmt.sim.universe import Instrument, Universe
from hmt.waits import within

EXCHANGE_TOKEN_BASE = 100_000  # the bench's instruments, clear of the default universe
CLOSE = 100_000  # every instrument starts at 1000.00 rupees (wire units: paise)
TICK = 5  # 0.05 rupees
FUNDS = 10**9  # rupees: no ladder order is ever refused for margin
ORDER_TIMEOUT_S = 5.0


def universe(instruments: int) -> Universe:
    """`instruments` NSE equities BENCH0.., all at CLOSE; BENCH0 is the target."""
    return Universe(
        Instrument(EXCHANGE_TOKEN_BASE + i, f"BENCH{i}", f"BENCH {i}", TICK, CLOSE)
        for i in range(instruments)
    )


def rung(k: int) -> int:
    """The target's price (wire units) for sample k: one tick higher each time."""
    return CLOSE + (k + 1) * TICK


class Probe:
    """Times one sample at a time: frame with the watched packet out -> order request in."""

    def __init__(self) -> None:
        self.watched: bytes | None = None  # token + price, the head of the packet to spot
        self.sent_ns: int | None = None
        self.received_ns: int | None = None
        self.arrived = asyncio.Event()
        self.orders = 0

    def watch(self, token: int, price: int) -> None:
        self.watched = token.to_bytes(4, "big") + price.to_bytes(4, "big")
        self.sent_ns = self.received_ns = None
        self.arrived.clear()

    def on_frame(self, packets: list[bytes]) -> None:
        watched = self.watched
        if watched is None or self.sent_ns is not None:
            return
        # Every mode's packet starts with the token and the last price.
        if any(p.startswith(watched) for p in packets):
            self.sent_ns = time.perf_counter_ns()

    def on_request(self, request: Request) -> None:
        if request.method == "POST" and request.path.startswith("/orders/"):
            self.orders += 1
            if self.received_ns is None:
                self.received_ns = time.perf_counter_ns()
                self.arrived.set()


async def background(sim: Simulator, tokens: list[int], rate: float, made: list[int]) -> None:
    """`rate` trades a second, alternating each instrument between CLOSE and one tick up."""
    quotes, trade = sim.market.quotes, sim.market.trade
    start, i = time.perf_counter(), 0
    while True:
        await asyncio.sleep(0.002)
        due = int((time.perf_counter() - start) * rate) - made[0]
        for _ in range(due):
            token = tokens[i % len(tokens)]
            i += 1
            trade(token, CLOSE + TICK if quotes[token].last == CLOSE else CLOSE)
        made[0] += due


async def _line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def _say(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


async def main(config: dict[str, Any]) -> None:
    # When the engine closes its link while frames are still flowing, the
    # simulator's handler re-raises the sender's ConnectionClosed and websockets
    # logs a traceback at shutdown: noise here, reported separately.
    logging.getLogger("websockets.server").setLevel(logging.CRITICAL)
    sim = Simulator(seed=1, universe=universe(config["instruments"]), funds=FUNDS)
    async with sim:
        tokens = [i.token for i in sim.universe]
        target, others = tokens[0], tokens[1:]
        probe = Probe()
        sim.ticker.on_frame = probe.on_frame
        sim.on_request = probe.on_request
        _say(
            {
                "api_url": sim.api_url,
                "ws_url": sim.ws_url,
                "api_key": sim.api_key,
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
        stamps: list[tuple[int, int]] = []  # (frame written, request arrived) per sample
        missed = 0
        ticks_before, made_before = sim.counters["ticks_sent"], made[0]
        # A later run on the same database starts above the rungs earlier runs used up.
        first = config.get("first_rung", 0)
        for k, offset in enumerate(config["schedule"], start=first):
            await asyncio.sleep(max(0.0, begin + offset - loop.time()))
            probe.watch(target, rung(k))
            sim.market.trade(target, rung(k))
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
        _say(
            {
                "latencies_us": latencies_us,
                "stamps": stamps,
                "missed": missed,
                "orders": probe.orders,
                "book_orders": len(sim.orders()),
                "ticks_sent": sim.counters["ticks_sent"] - ticks_before,
                "trades": made[0] - made_before,
                "seconds": seconds,
                "dropped": sum(c.dropped for c in sim.ticker.clients),
                "elapsed_s": time.perf_counter() - started,
            }
        )
        await _line()  # `stop`, or end of input: the background runs until then
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
