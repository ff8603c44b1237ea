"""End to end through `hmt run` processes: tick-to-order on one node and in the cluster
(ticks over NATS), and a cluster's evaluated ticks/s and fires/s with 1, 2 and 3 nodes.

The simulator runs in the bench's process (its ticker's `on_frame` and its REST
`on_request` time a sample on one clock); each node is an `hmt run` child process
(paper mode on the simulator), all on PostgreSQL (a fresh database) and a private
nats-server. Used by `bench/bench_cluster.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.bench_engine import PG, _admin, _fill, _row
from bench.engine_sim import CLOSE, FUNDS, TICK, Probe, rung, universe
from hmt import waits
from hmt.cluster.connection import connect
from hmt.cluster.leases import read_leases
from hmt.cluster.ticks import feed_key
from hmt.core.partitions import assignment, partition_of
from hmt.sim.simulator import Simulator
from hmt.store.db import Database, create_engine
from hmt.store.tokens import TokenStore

PARTITIONS = 16
TTL_S = 1.5
ORDER_TIMEOUT_S = 5.0
FLOOD_RATE = 20_000.0  # trades/s asked of the simulator (twice bench_engine's background)
HMT = shutil.which("hmt") or str(Path(sys.executable).parent / "hmt")


@dataclass
class Node:
    name: str
    proc: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(store: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private nats-server with JetStream, its store in `store`; (process, port)."""
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


@contextlib.contextmanager
def nats_server(store: Path) -> Iterator[str]:
    process, port = start_server(store)
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()


@dataclass
class Rig:
    """The simulator, the database, NATS, and the `hmt run` processes started on them."""

    sim: Simulator
    db_url: str
    nats_url: str
    logs: Path
    ops: str = ""
    nodes: list[Node] = field(default_factory=list)

    async def start(self, name: str, *, cluster: bool) -> Node:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HMT_")}
        values: dict[str, object] = {
            "database_url": self.db_url,
            "broker": "paper",
            "kite_api_url": self.sim.api_url,
            "kite_ws_url": self.sim.ws_url,
            "kite_api_key": self.sim.api_key,
            "kite_access_token": self.sim.access_token,
            "port": port,
            "engine_id": name,
            "reconnect_delay_ms": 100,
            "log_level": "warning",
        }
        if cluster:
            values |= {
                "cluster_url": self.nats_url,
                "cluster_partitions": PARTITIONS,
                "cluster_lease_ttl_s": TTL_S,
            }
        env.update({f"HMT_{k.upper()}": str(v) for k, v in values.items()})
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                HMT, "run", env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        node = Node(name, proc, port, log)
        self.nodes.append(node)
        await _until(lambda: self._serves(node), 60, f"{name} did not start: {log}")
        return node

    async def _serves(self, node: Node) -> bool:
        if node.proc.returncode is not None:
            raise RuntimeError(f"{node.name} exited: {node.log.read_text()[-2000:]}")
        async with httpx.AsyncClient(timeout=2) as client:
            try:
                response = await client.get(f"{node.url}/health")
            except httpx.TransportError:
                return False
        return response.status_code in (200, 503)

    async def stop_all(self) -> None:
        for node in self.nodes:
            if node.proc.returncode is None:
                node.proc.terminate()
        for node in self.nodes:
            try:
                await waits.within(node.proc.wait(), 15)
            except TimeoutError:
                node.proc.kill()
                await node.proc.wait()
        self.nodes = []

    async def stats(self) -> dict[str, dict[str, Any]]:
        found = {}
        async with httpx.AsyncClient(timeout=5) as client:
            for node in self.nodes:
                response = await client.get(
                    f"{node.url}/stats", headers={"Authorization": f"Bearer {self.ops}"}
                )
                response.raise_for_status()
                found[node.name] = response.json()
        return found

    async def settled(self, armed: int) -> dict[int, str]:
        """Every partition with its preferred node, the books adding up to `armed`, one
        feed holder; each partition's holder."""
        names = {node.name for node in self.nodes}
        held: dict[int, str] = {}

        async def ready() -> bool:
            nonlocal held
            nc = await connect(self.nats_url, TTL_S, persistent=False)
            try:
                live, leases = await read_leases(nc)
                kv = await nc.jetstream().key_value("hmt_leases")
                try:
                    feed = (await kv.get(feed_key(self.sim.api_key))).value
                except Exception:
                    feed = None
            finally:
                await nc.close()
            held = {p: holder for p, (holder, _) in leases.items()}
            if set(live) != names or held != assignment(PARTITIONS, names) or not feed:
                return False
            books = await self.stats()
            return sum(s["active_triggers"] for s in books.values()) == armed

        await _until(ready, 60, "cluster did not settle")
        return held


async def _until(check: Callable[[], Awaitable[bool] | bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while True:
        done = check()
        if not isinstance(done, bool):
            done = await done
        if done:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(what)
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def rig(instruments: int) -> AsyncIterator[Rig]:
    logging.getLogger("websockets.server").setLevel(logging.CRITICAL)
    name = f"hmt_bench_cluster_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as tmp, nats_server(Path(tmp)) as nats_url:
            sim = Simulator(seed=1, universe=universe(instruments), funds=FUNDS)
            async with sim:
                url = f"{PG}/{name}"
                await _fill(url, [])  # migrated
                engine = create_engine(url, application_name="hmt-bench")
                try:
                    ops = (await TokenStore(Database(engine)).issue("ops", operator=True)).token
                finally:
                    await engine.dispose()
                made = Rig(sim, url, nats_url, Path(tmp), ops)
                try:
                    yield made
                finally:
                    await made.stop_all()
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- tick-to-order -------------------------------------------------------------------------


async def _background(sim: Simulator, tokens: list[int], rate: float) -> None:
    """`rate` trades a second over `tokens`, between CLOSE and one tick up (no trigger near)."""
    quotes, trade = sim.market.quotes, sim.market.trade
    start, made, i = time.perf_counter(), 0, 0
    while True:
        await asyncio.sleep(0.002)
        due = int((time.perf_counter() - start) * rate) - made
        for _ in range(due):
            token = tokens[i % len(tokens)]
            i += 1
            trade(token, CLOSE + TICK if quotes[token].last == CLOSE else CLOSE)
        made += due


async def _samples(sim: Simulator, token: int, rungs: range, spacing: float) -> list[float]:
    probe = Probe()
    sim.ticker.on_frame = probe.on_frame
    sim.on_request = probe.on_request
    found = []
    try:
        for k in rungs:
            probe.watch(token, rung(k))
            sim.market.trade(token, rung(k))
            try:
                await waits.within(probe.arrived.wait(), ORDER_TIMEOUT_S)
            except TimeoutError:
                continue
            if probe.sent_ns is not None and probe.received_ns is not None:
                found.append((probe.received_ns - probe.sent_ns) / 1000)
            await asyncio.sleep(spacing)
    finally:
        sim.ticker.on_frame = None
        sim.on_request = None
    return found


async def tick_to_order(
    instruments: int, samples: int, rate: float, spacing: float, warmup: int
) -> dict[str, list[float]]:
    """Rung ladders on three targets; samples on one node, then on a two-node cluster for
    a target owned by the feed holder and one owned by the other node."""
    per = samples + warmup
    now = datetime.now(UTC)
    tokens = [i.token for i in universe(instruments)]
    targets = tokens[: min(len(tokens), 12)]  # one owned by each node, whatever the holder
    rows = [
        _row(t, f"BENCH{n}", "BUY", rung(k), "ladder", now)
        for n, t in enumerate(targets)
        for k in range(3 * per)
    ]
    found: dict[str, list[float]] = {}
    async with rig(instruments) as made:
        await _fill(made.db_url, rows)
        background = asyncio.create_task(
            _background(made.sim, [t for t in tokens if t not in targets], rate)
        )
        try:
            await made.start("single", cluster=False)
            await asyncio.sleep(1.0)
            got = await _samples(made.sim, targets[0], range(per), spacing)
            found["one node (`hmt run`)"] = got[warmup:]
            await made.stop_all()
            for name in ("node-1", "node-2"):
                await made.start(name, cluster=True)
            armed = len(rows) - per  # the single node used up one target's first rungs
            held = await made.settled(armed)
            holder = await _feed_holder(made)
            owner = {t: held[partition_of(t, PARTITIONS)] for t in targets}
            mine = next(t for t in targets[1:] if owner[t] == holder)
            other = next(t for t in targets[1:] if owner[t] != holder)
            await asyncio.sleep(1.0)
            got = await _samples(made.sim, mine, range(per), spacing)
            found["cluster of 2, owner = feed holder (one NATS hop to itself)"] = got[warmup:]
            got = await _samples(made.sim, other, range(per), spacing)
            found["cluster of 2, owner = the other node (one NATS hop)"] = got[warmup:]
            # One node again, so that neither side has the run's early or late moments alone.
            await made.stop_all()
            await made.start("single", cluster=False)
            await asyncio.sleep(1.0)
            got = await _samples(made.sim, targets[0], range(per, 2 * per), spacing)
            found["one node (`hmt run`), again after the cluster"] = got[warmup:]
        finally:
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
    return found


async def _feed_holder(made: Rig) -> str:
    nc = await connect(made.nats_url, TTL_S, persistent=False)
    try:
        kv = await nc.jetstream().key_value("hmt_leases")
        return ((await kv.get(feed_key(made.sim.api_key))).value or b"").decode()
    finally:
        await nc.close()


# --- throughput -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    nodes: int
    sent_per_s: float  # ticks the simulator wrote
    evaluated_per_s: float  # ticks the nodes' engines evaluated, summed
    fires_per_s: float  # triggers claimed a second, every crossing at once
    load: str


async def throughput(nodes: int, instruments: int, seconds: float, fires: int) -> Throughput:
    """Ticks flooded for `seconds` (FLOOD_RATE asked of the simulator); then `fires`
    triggers crossed at once, timed from the push to the last claim in PostgreSQL."""
    now = datetime.now(UTC)
    tokens = [i.token for i in universe(instruments)]
    far = [
        _row(tokens[n % len(tokens)], f"BENCH{n % len(tokens)}", "BUY", CLOSE * 3 // 2, "far", now)
        for n in range(instruments * 4)
    ]
    crossing = [
        _row(tokens[n % len(tokens)], f"BENCH{n % len(tokens)}", "BUY", CLOSE + 10 * TICK, "x", now)
        for n in range(fires)
    ]
    async with rig(instruments) as made:
        await _fill(made.db_url, far + crossing)
        for n in range(nodes):
            await made.start(f"node-{n + 1}", cluster=True)
        await made.settled(len(far) + len(crossing))
        before = await made.stats()
        sent_before = made.sim.counters["ticks_sent"]
        started = time.perf_counter()
        flood = asyncio.create_task(_background(made.sim, tokens, FLOOD_RATE))
        await asyncio.sleep(seconds)
        flood.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flood
        await asyncio.sleep(0.5)  # the last frames through
        elapsed = time.perf_counter() - started
        after = await made.stats()
        evaluated = sum(after[n]["ticks_processed"] - before[n]["ticks_processed"] for n in after)
        sent = made.sim.counters["ticks_sent"] - sent_before
        load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
        # Every crossing trigger at once: one price over all their thresholds.
        engine = create_engine(made.db_url, application_name="hmt-bench")
        try:
            pushed = time.perf_counter()
            for token in tokens:
                made.sim.market.trade(token, CLOSE + 11 * TICK)

            async def claimed() -> bool:
                async with engine.connect() as conn:
                    left = await conn.exec_driver_sql(
                        "SELECT count(*) FROM hmt_gtt_orders WHERE user_id = 'x' "
                        "AND status = 'active'"
                    )
                    return int(left.scalar_one()) == 0

            await _until(claimed, 120, "crossing triggers not all claimed")
            fired_s = time.perf_counter() - pushed
        finally:
            await engine.dispose()
    return Throughput(nodes, sent / elapsed, evaluated / elapsed, fires / fired_s, load)
