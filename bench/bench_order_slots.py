"""The cluster's order slots: what asking the account's holder adds to an order.

A private nats-server (JetStream on) on loopback, two in-process nodes (each its own
NATS connection, lease keeper and `AccountSlots`), a broker that answers at once.
One order at a time: `place` through `SlottedOrders` on the node holding the
account (a local grant, no message), on the other node (a slot request and its
reply, then the done message), and the broker's `place` alone. The limits are
set far above any rate here so the figures are the hop's, not the throttle's wait.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_cluster import _start_server, _version
from bench.report import percentiles, table
from hmt.cluster.account_lease import account_id
from hmt.cluster.connection import connect
from hmt.cluster.leases import LeaseKeeper
from hmt.cluster.order_slots import AccountSlots, SlottedOrders
from hmt.core.broker import OrderReport
from hmt.core.model import OrderIntent
from hmt.core.throttle import Limit
from hmt.core.types import Exchange, InstrumentToken, Leg, OrderType, Product, Side, TriggerId

TTL = 1.5
ACCOUNT = account_id("Kite", "bench")
INTENT = OrderIntent(
    TriggerId("bench"),
    Leg.FIRST,
    "benchtag",
    InstrumentToken(256265),
    Exchange.NSE,
    "INFY",
    Side.BUY,
    1,
    Product.CNC,
    OrderType.MARKET,
    None,
    100,
)


class _Instant:
    def tag(self, trigger_id: str, leg: Leg, position: int = 0) -> str:
        return "benchtag"

    async def place(self, intent: OrderIntent) -> str:
        return "1"

    async def find(self, tag: str) -> list[OrderReport]:
        return []

    async def orders(self) -> list[OrderReport]:
        return []


async def _node(url: str, name: str) -> tuple[LeaseKeeper, AccountSlots, SlottedOrders]:
    nc = await connect(url, TTL, name=name)
    keeper = LeaseKeeper(nc, name, partitions=4, ttl_s=TTL, bucket="bench_slots")
    slots = AccountSlots(
        nc,
        name,
        ACCOUNT,
        limits=(Limit(100_000, 1.0),),
        margin=0.05,
        request_timeout=7.0,
        ttl_s=TTL,
        wait_s=5.0,
        live_nodes=lambda: keeper.live_nodes,
    )
    slots.lease.bucket = "bench_slots"
    await keeper.start()
    await slots.start()
    return keeper, slots, SlottedOrders(_Instant(), slots.client)


async def _timed(place: SlottedOrders | _Instant, samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        started = time.perf_counter()
        await place.place(INTENT)
        out.append((time.perf_counter() - started) * 1e6)
    return out


async def _measure(url: str, samples: int) -> dict[str, list[float]]:
    a, b = await _node(url, "node-a"), await _node(url, "node-b")
    deadline = time.monotonic() + 20
    while a[1].lease.token() is None and b[1].lease.token() is None:
        if time.monotonic() > deadline:
            raise RuntimeError("nobody took the account")
        await asyncio.sleep(0.02)
    await asyncio.sleep(1.5)  # hand-offs settled, the first window passed
    holder, other = (a, b) if a[1].lease.token() is not None else (b, a)
    figures = {
        "broker alone": await _timed(_Instant(), samples),
        "holder (local slot)": await _timed(holder[2], samples),
        "other node (request, reply, done)": await _timed(other[2], samples),
    }
    for keeper, slots, _ in (a, b):
        await slots.stop()
        await keeper.stop()
        await keeper.nc.close()
    return figures


async def _all(samples: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as store:
        server, port = _start_server(Path(store))
        try:
            return await _measure(f"nats://127.0.0.1:{port}", samples)
        finally:
            server.terminate()
            server.wait()


def run(quick: bool) -> str:
    samples = 300 if quick else 3_000
    figures = asyncio.run(_all(samples))
    rows = []
    for what, values in figures.items():
        p50, p99 = percentiles(values, [50, 99])
        rows.append((what, f"{p50:,.0f} / {p99:,.0f}", f"{samples:,}"))
    return "\n\n".join(
        [
            "## Orders in the cluster: a slot from the account's holder",
            "How measured: `bench/bench_order_slots.py`, a private nats-server "
            f"({_version()}) on loopback, two in-process nodes on their own connections, "
            "a broker answering at once, one order at a time; `place` through "
            "`SlottedOrders` on the account's holder and on the other node, and the "
            "broker alone. Limits far above the rate: the hop, not the throttle. "
            "p50 / p99, us.",
            table(["place", "p50 / p99", "samples"], rows),
        ]
    )


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
