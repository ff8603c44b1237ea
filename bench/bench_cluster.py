"""The cluster's coordination on NATS JetStream: lease operations, tick fan-out, fail-over.

A private nats-server (JetStream on, store in a temporary directory) on loopback,
on the same 2-core machine as the client. Measured:
- a lease's `create` (take a free partition) and `update(last=revision)` (renew),
  one at a time: round trip p50 / p99;
- a tick-sized message (48 bytes: token, price, exchange time) published on one
  connection and received on another, one at a time: the added latency a tick
  pays on its way from the node holding the feed to the partition's owner;
- the same messages pipelined: messages a second through one server;
- lease fail-over: a node holding every partition stops renewing (as after
  SIGKILL); time until the other node holds them all, at the bench's TTL.

And end to end (`bench/cluster_run.py`, `hmt run` processes): tick-to-order on one node
and in a two-node cluster (ticks over NATS) in the same run; the tick message's size
and codec cost; evaluated ticks/s and fires/s with 1, 2 and 3 nodes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nats

from bench.cluster_run import FLOOD_RATE, start_server, throughput, tick_to_order
from bench.cluster_run import PARTITIONS as PARTITIONS_E2E
from bench.cluster_run import TTL_S as TTL_E2E
from bench.report import percentiles, table
from hmt.cluster.leases import LeaseKeeper, open_bucket
from hmt.cluster.ticks import LTP, decode, encode
from hmt.waits import within

TICK = struct.pack(">qqqqqq", 256265, 2_512_345, 0, 0, 0, 1_700_000_000)  # 48 bytes


@dataclass(frozen=True)
class Size:
    ops: int
    pipelined: int
    failovers: int
    ttl_s: float
    samples: int = 45  # tick-to-order, per configuration: 4 x 48 orders, under 200/min
    background: float = 1_000.0  # trades/s on other instruments while sampling
    flood_s: float = 5.0
    fires: int = 100
    instruments: int = 64


FULL = Size(ops=5_000, pipelined=200_000, failovers=10, ttl_s=1.5)
QUICK = Size(ops=300, pipelined=20_000, failovers=2, ttl_s=1.5, samples=15, flood_s=2.0, fires=20)
SPACING_S = 0.12  # under Kite's 10 orders/s
WARMUP = 3
PARTITIONS = 64


async def _lease_ops(url: str, size: Size) -> dict[str, list[float]]:
    nc = await nats.connect(url)
    kv = await open_bucket(nc, "bench_ops", 60.0)
    creates, updates = [], []
    for n in range(size.ops):
        started = time.perf_counter()
        revision = await kv.create(f"partition.{n}", b"node-a")
        creates.append((time.perf_counter() - started) * 1e6)
        started = time.perf_counter()
        await kv.update(f"partition.{n}", b"node-a", last=revision)
        updates.append((time.perf_counter() - started) * 1e6)
    await nc.close()
    return {"create": creates, "update": updates}


async def _fan_out(url: str, size: Size) -> tuple[list[float], float]:
    pub, sub = await nats.connect(url), await nats.connect(url)
    arrived: asyncio.Queue[float] = asyncio.Queue()
    count = 0
    done = asyncio.Event()
    target = size.pipelined

    async def one(msg: object) -> None:
        arrived.put_nowait(time.perf_counter())

    async def many(msg: object) -> None:
        nonlocal count
        count += 1
        if count == target:
            done.set()

    s1 = await sub.subscribe("hmt.ticks.p.1", cb=one)
    await sub.flush()
    latencies = []
    for _ in range(size.ops):
        started = time.perf_counter()
        await pub.publish("hmt.ticks.p.1", TICK)
        await pub.flush()
        latencies.append((await arrived.get() - started) * 1e6)
    await s1.unsubscribe()
    await sub.subscribe("hmt.ticks.p.2", cb=many)
    await sub.flush()
    started = time.perf_counter()
    for _ in range(target):
        await pub.publish("hmt.ticks.p.2", TICK)
    await pub.flush()
    await within(done.wait(), 60)
    rate = target / (time.perf_counter() - started)
    await pub.close()
    await sub.close()
    return latencies, rate


async def _failover(url: str, size: Size) -> list[float]:
    return [await _one_failover(url, f"bench_failover_{n}", size) for n in range(size.failovers)]


async def _one_failover(url: str, bucket: str, size: Size) -> float:
    dying_nc, survivor_nc = await nats.connect(url), await nats.connect(url)
    dying = LeaseKeeper(dying_nc, "dying", partitions=PARTITIONS, ttl_s=size.ttl_s, bucket=bucket)
    await dying.start()
    await _until(lambda: len(dying.held()) == PARTITIONS)
    full = asyncio.Event()

    def gained(partition: int, token: int) -> None:
        if len(survivor.held()) == PARTITIONS:
            full.set()

    survivor = LeaseKeeper(
        survivor_nc,
        "survivor",
        partitions=PARTITIONS,
        ttl_s=size.ttl_s,
        bucket=bucket,
        on_gained=gained,
    )
    await survivor.start()
    await asyncio.sleep(size.ttl_s)  # the survivor has taken its share by hand-over
    for task in (dying._task, dying._watchdog):
        assert task is not None
        task.cancel()
    killed = time.perf_counter()
    await full.wait()  # set by the gain that completes the survivor's set
    took = time.perf_counter() - killed
    await survivor.stop()
    await dying_nc.close()
    await survivor_nc.close()
    return took


async def _until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("lease keeper did not settle")
        await asyncio.sleep(0.01)


async def _all(size: Size) -> tuple[dict[str, list[float]], list[float], float, list[float]]:
    with tempfile.TemporaryDirectory() as store:
        server, port = start_server(Path(store))
        try:
            url = f"nats://127.0.0.1:{port}"
            ops = await _lease_ops(url, size)
            latencies, rate = await _fan_out(url, size)
            failovers = await _failover(url, size)
        finally:
            server.terminate()
            server.wait()
    return ops, latencies, rate, failovers


def _pair(values: list[float], unit: str = "") -> str:
    p50, p99 = percentiles(values, [50, 99])
    return f"{p50:,.0f} / {p99:,.0f}{unit}"


def run(quick: bool, *, end_to_end: bool = True) -> str:
    size = QUICK if quick else FULL
    ops, latencies, rate, failovers = asyncio.run(_all(size))
    coordination = _coordination(size, ops, latencies, rate, failovers)
    return coordination if not end_to_end else coordination + "\n\n" + _end_to_end(size)


def _codec() -> list[tuple[str, str, str]]:
    """The tick message (`hmt.cluster.ticks`): bytes a tick and the codec's cost, against
    the first sketch's 48-byte struct per tick (one message a tick)."""
    rows = []
    for n in (1, 10, 100):
        tokens = [256265 + i for i in range(n)]
        prices = [2_512_345 + i for i in range(n)]
        data = encode(LTP, 1, 1, tokens, prices)
        loops = 20_000 if n < 100 else 5_000
        started = time.perf_counter()
        for _ in range(loops):
            encode(LTP, 1, 1, tokens, prices)
        enc = (time.perf_counter() - started) / loops * 1e6
        started = time.perf_counter()
        for _ in range(loops):
            batch = decode(data)
            batch.columns[0].tolist()
        dec = (time.perf_counter() - started) / loops * 1e6
        rows.append(
            (
                f"{n} LTP tick(s) in one message",
                f"{len(data)} B ({len(data) / n:.1f} B a tick; 48 B a tick one by one)",
                f"{enc:.1f} / {dec:.1f}",
            )
        )
    return rows


def _end_to_end(size: Size) -> str:
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    codec = _codec()
    samples = asyncio.run(
        tick_to_order(size.instruments, size.samples, size.background, SPACING_S, WARMUP)
    )
    rows = []
    for label, values in samples.items():
        p50, p99, top = percentiles(values, [50, 99, 100])
        rows.append(
            (label, f"{p50 / 1000:.2f}", f"{p99 / 1000:.2f}", f"{top / 1000:.2f}", len(values))
        )
    flows = [
        asyncio.run(throughput(n, size.instruments, size.flood_s, size.fires)) for n in (1, 2, 3)
    ]
    rates = [
        (
            f.nodes,
            f"{f.sent_per_s:,.0f}",
            f"{f.evaluated_per_s:,.0f}",
            f"{f.fires_per_s:,.0f}",
            f.load,
        )
        for f in flows
    ]
    return "\n\n".join(
        [
            "## The cluster end to end: ticks over NATS",
            "How measured: `bench/bench_cluster.py` with `bench/cluster_run.py`. `hmt run` "
            "processes (paper mode) on the Kite simulator (in the bench's process), "
            "PostgreSQL (a fresh database) and a private nats-server; "
            f"{PARTITIONS_E2E} partitions, lease TTL {TTL_E2E:g} s. **This machine has 2 "
            "cores**, shared by the simulator, nats-server, PostgreSQL, every node and other "
            f"people's work: load average {load} (1/5/15 min) when this section began.",
            "Tick-to-order on the wire: the simulator's frame carrying the crossing price "
            "written (`ticker.on_frame`) to the order request arriving at it (`on_request`), "
            f"{size.background:,.0f} background trades/s on {size.instruments - 12} other "
            f"instruments, {size.samples} samples per row after {WARMUP} warm-up, one every "
            f"{SPACING_S} s; all rows in one run, one after the other. In the cluster the tick "
            "goes simulator -> feed holder's ticker -> NATS `hmt.ticks.<p>` -> the owner's "
            "engine -> its claim -> the order.",
            table(["configuration", "p50 ms", "p99 ms", "max ms", "samples"], rows),
            "The tick message (`hmt.cluster.ticks.encode`): a 14-byte header (kind, price "
            "width, the partition's sequence number, the feed lease's token), the instrument "
            "ids as u32, the prices as i32 (i64 only when one does not fit), in columns; "
            "encode and decode in us, in this process:",
            table(["message", "size", "encode / decode us"], codec),
            "Throughput with 1, 2 and 3 nodes (each its own run): the simulator is asked for "
            f"{FLOOD_RATE:,.0f} trades/s over {size.instruments} instruments for "
            f"{size.flood_s:g} s (4 far "
            "triggers each, nothing fires); *evaluated* is the ticks the nodes' engines took "
            "from NATS, summed. Then one price crossing "
            f"{size.fires} triggers at once; *fires/s* is {size.fires} over the time from the "
            "push to the last claim committed (orders then leave at the throttle's pace). "
            "With 2 cores the nodes compete with the simulator for CPU: more nodes cannot "
            "add throughput here, only show the cost of the fan-out.",
            table(
                ["nodes", "ticks sent/s", "evaluated ticks/s", "fires/s", "load average"],
                rates,
            ),
        ]
    )


def _coordination(
    size: Size,
    ops: dict[str, list[float]],
    latencies: list[float],
    rate: float,
    failovers: list[float],
) -> str:
    p50, p99 = percentiles(failovers, [50, 99])
    rows = [
        ("lease create (take a free partition)", _pair(ops["create"]), f"{size.ops:,}"),
        ("lease update(last) (renew)", _pair(ops["update"]), f"{size.ops:,}"),
        ("tick hop: publish -> subscriber", _pair(latencies), f"{size.ops:,}"),
        ("tick hop pipelined (msgs/s)", f"{rate:,.0f}", f"{size.pipelined:,}"),
        (
            f"lease fail-over, TTL {size.ttl_s:g} s ({PARTITIONS} partitions): s",
            f"{p50:.2f} / {p99:.2f}",
            f"{size.failovers}",
        ),
    ]
    return "\n\n".join(
        [
            "## The cluster's coordination on NATS JetStream",
            "How measured: `bench/bench_cluster.py`, a private nats-server "
            f"({_version()}) with JetStream on loopback, on the same machine as the "
            "client (2 cores shared). Lease operations one at a time on one connection; "
            "the tick hop is a 48-byte message published on one connection and received "
            "on another; fail-over: a node holding every partition stops renewing (as after "
            "SIGKILL) and the other node's keeper takes them all. p50 / p99, us unless said.",
            table(["what", "p50 / p99", "samples"], rows),
        ]
    )


def _version() -> str:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "nats-server"


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
