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
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nats

from bench.report import percentiles, table
from hmt.cluster.leases import LeaseKeeper, open_bucket

TICK = struct.pack(">qqqqqq", 256265, 2_512_345, 0, 0, 0, 1_700_000_000)  # 48 bytes


@dataclass(frozen=True)
class Size:
    ops: int
    pipelined: int
    failovers: int
    ttl_s: float


FULL = Size(ops=5_000, pipelined=200_000, failovers=10, ttl_s=1.5)
QUICK = Size(ops=300, pipelined=20_000, failovers=2, ttl_s=1.5)
PARTITIONS = 64


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server(store: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = _free_port()
    process = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("nats-server did not start")
        time.sleep(0.02)


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
    await asyncio.wait_for(done.wait(), 60)
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
        server, port = _start_server(Path(store))
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


def run(quick: bool) -> str:
    size = QUICK if quick else FULL
    ops, latencies, rate, failovers = asyncio.run(_all(size))
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
