"""The engine: tick-to-order latency at the simulator, with 100k active triggers and 10k ticks/s.

One run per backend. The database is filled with active triggers (SQLAlchemy
Core bulk insert), the simulator starts in its own process (bench/engine_sim.py),
and the runtime is built from `Settings` by `hmt.compose.build`, as
`hmt run` builds it, in this process. The simulator streams background ticks
that fire nothing and pushes one crossing price at a time; each sample runs
from the frame carrying that price leaving the simulator to the order request
reaching it. The claim alone is then timed on the same database, same load.

Upstox beside Kite (issue 15): the same load shape on `hmt sim --broker upstox`
(bench/engine_sim_upstox.py: the same instruments, prices, rates and ladder,
protobuf frames, Upstox's REST), the engine in paper mode on it; both brokers
on each backend in one run, on the default path. `python -m bench.bench_engine
--brokers [--quick]` prints that section alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn

from bench import engine_sim_upstox
from bench.engine_sim import CLOSE, TICK, rung, universe
from bench.report import percentiles, table
from hmt import logs, waits
from hmt.api.app import create_app
from hmt.compose import build
from hmt.config import Settings
from hmt.core.model import Fired, Trigger
from hmt.core.types import Leg, Side
from hmt.engine.executor import Outcome
from hmt.engine.runtime import Runtime
from hmt.engine.service import Engine, EngineState
from hmt.kite.tags import broker_tag
from hmt.store import migrate
from hmt.store.db import create_engine
from hmt.store.tables import gtt_orders
from hmt.upstox.instruments import instrument_id

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql://postgres@127.0.0.1:5432"
WARMUP = 3  # first samples dropped: they open the broker connection and warm caches
SPACING_S = 0.12  # under Kite's 10 orders/s, so the engine's throttle never holds one
PER_MINUTE = 190  # under Kite's 200 orders/min: then a pause until the minute has passed
MINUTE_S = 60.2
FAR_BAND = 1000  # far thresholds spread over this many ticks
INSERT_BATCH = 10_000
LEASE = timedelta(seconds=30)  # the claims measured here are the engine's own kind
SEGMENTS = (
    "frame -> claim starts",  # loopback, ws read, decode, book, task start
    "claim",  # conditional UPDATE + `claimed` event, committed (flushed only if sync)
    "claim -> request",  # throttle slot, the order built
    "request -> arrives",  # the HTTP client builds and writes it, the simulator reads it
)
IDLE_GAP_S = 0.02  # between fires in the 'after idle' evaluate measurement
# The paths measured side by side in one run, each a set of settings on a fresh
# database per backend: issue 12's (after: the order request on aiohttp, the claim
# not waiting for the disk, its statements compiled once and run on the driver's own
# connection: on SQLite on the loop's thread on a connection of its own, on PostgreSQL
# one statement), the same with SQLite's claim on aiosqlite's thread (`raw`), and the
# one before all of it (httpx, the claim flushed before the order, its statements built
# per claim, SQLite's writers racing in its busy handler; the intermediate paths,
# `cached` and `built` alone, are measured in docs/engine.md); `fire rehearsed` is `after` with the
# firing path rehearsed every millisecond (HMT_FIRE_REHEARSAL_US, off by default: issue
# 12's evaluate pass). A switch that keeps its old path selectable joins with one entry.
MODES: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "after",
        {"kite_http": "aiohttp", "claim_durability": "async", "claim_statements": "inline"},
    ),
    (
        "statements raw",
        {"kite_http": "aiohttp", "claim_durability": "async", "claim_statements": "raw"},
    ),
    (
        "fire rehearsed",
        {
            "kite_http": "aiohttp",
            "claim_durability": "async",
            "claim_statements": "inline",
            "fire_rehearsal_us": 1000,
        },
    ),
    (
        "before",
        {
            "kite_http": "httpx",
            "claim_durability": "sync",
            "claim_statements": "built",
            "sqlite_writers": "busy_wait",
        },
    ),
)
# How a setting's value reads in a row's name (`SQLite, after: aiohttp, claims async`).
LABEL_PREFIX = {
    "claim_durability": "claims ",
    "claim_statements": "statements ",
    "sqlite_writers": "SQLite writers ",
    "fire_rehearsal_us": "fire rehearsal us ",
}


@dataclass(frozen=True)
class Size:
    triggers: int
    instruments: int
    samples: int
    rate: float  # background ticks per second
    claims: int
    fires: int  # evaluate alone: fires per pattern


# Full: 377 samples + 3 warm-ups = two bursts of PER_MINUTE, about 83 s a backend.
FULL = Size(100_000, instruments=1000, samples=377, rate=10_000, claims=300, fires=300)
QUICK = Size(10_000, instruments=100, samples=30, rate=10_000, claims=30, fires=50)


@dataclass
class Result:
    backend: str
    fill_s: float
    start_s: float
    ready_s: float  # build() + start() until the engine is RUNNING (loads the book)
    sim: dict[str, Any]
    latencies_us: list[float]
    segments: dict[str, list[float]]  # each sample cut at the engine's moments
    claims_us: list[float]  # back-to-back claims of far triggers, after the samples
    engine: dict[str, Any]
    placed: int
    failed: int
    hot_us: list[float]  # evaluate alone, fires back to back
    idle_us: list[float]  # evaluate alone, each fire after an idle gap
    api: dict[str, Any] | None = None  # bench.api_load's report, when creates ran alongside


def schedule(samples: int) -> list[float]:
    """Offsets (s) of each push: 10/s bursts of PER_MINUTE, one burst a minute."""
    return [
        round((k // PER_MINUTE) * MINUTE_S + (k % PER_MINUTE) * SPACING_S, 3)
        for k in range(samples)
    ]


def _rupees(units: int) -> Decimal:
    return Decimal(units).scaleb(-2)


def _symbols(size: Size, broker: str) -> list[tuple[int, str]]:
    """Each bench instrument's id and symbol as the broker's master lists it."""
    if broker == "upstox":
        return [
            (int(instrument_id(engine_sim_upstox.key(i))), f"BENCH{i}")
            for i in range(size.instruments)
        ]
    return [(i.token, i.tradingsymbol) for i in universe(size.instruments)]


def _rows(size: Size, ladder: int, broker: str = "kite") -> list[dict[str, Any]]:
    """Far triggers on every instrument (BUY 50 % above, SELL 50 % below), then the ladder.

    The ladder is one BUY per sample on the target (BENCH0), one tick apart
    above its price, so each rung pushed fires exactly one trigger.
    """
    now = datetime.now(UTC)
    symbols = _symbols(size, broker)
    rows = []
    for n in range(size.triggers - ladder):
        token, symbol = symbols[n % len(symbols)]
        buy = n % 2 == 0
        offset = ((n // 2) % FAR_BAND) * TICK
        price = CLOSE * 3 // 2 + offset if buy else CLOSE // 2 - offset
        rows.append(_row(token, symbol, "BUY" if buy else "SELL", price, f"user{n % 100}", now))
    token, symbol = symbols[0]
    rows += [_row(token, symbol, "BUY", rung(k), "ladder", now) for k in range(ladder)]
    return rows


def _row(token: int, symbol: str, side: str, units: int, user: str, now: datetime) -> Any:
    return {
        "id": str(uuid.uuid4()),
        "user_id": user,
        "instrument_token": token,
        "exchange": "NSE",
        "tradingsymbol": symbol,
        "trigger_type": "single",
        "transaction_type": side,
        "trigger_price_1": _rupees(units),
        "quantity": 1,
        "product": "CNC",
        "order_type": "MARKET",
        "status": "active",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "price_divisor": 100,  # as hmt writes it (NSE: paise)
    }


async def _fill(url: str, rows: list[dict[str, Any]]) -> float:
    engine = create_engine(url, application_name="hmt-bench")
    try:
        await migrate.upgrade(engine)
        started = time.perf_counter_ns()
        async with engine.begin() as conn:
            for at in range(0, len(rows), INSERT_BATCH):
                await conn.execute(gtt_orders.insert(), rows[at : at + INSERT_BATCH])
        return (time.perf_counter_ns() - started) / 1e9
    finally:
        await engine.dispose()


async def _until(check: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench_engine: gave up waiting after {within:g} s")
        await asyncio.sleep(0.01)


async def _claims(runtime: Runtime, count: int, *, durable: bool = False) -> list[float]:
    """Sequential uncontended claims of far triggers through the engine's own store."""
    if not count:
        return []
    picked = [t for t in runtime.engine.book if t.user_id != "ladder"][:count]
    latencies = []
    for trigger in picked:
        started = time.perf_counter_ns()
        fired = Fired(trigger, Leg.FIRST, trigger.trigger_price_1)
        tag = broker_tag(trigger.id, Leg.FIRST)
        won = await runtime.triggers.claim(
            fired, tag, owner="bench", lease=LEASE, sending=True, durable=durable
        )
        latencies.append((time.perf_counter_ns() - started) / 1000)
        if not won:
            raise RuntimeError(f"claim of {trigger.id} lost with no competitor")
    return latencies


class Stamps:
    """Engine-side moments of each sample, on the clock the simulator's stamps use."""

    def __init__(self, runtime: Runtime) -> None:
        self.claims: list[tuple[int, int]] = []  # (start, end) of each claim the engine makes
        self.posts: list[int] = []  # each order request handed to the REST client
        self._runtime = runtime
        claim, request = runtime.triggers.claim, runtime.rest.request

        async def timed_claim(fired: Fired, *args: Any, **kwargs: Any) -> bool:
            started = time.perf_counter_ns()
            try:
                return await claim(fired, *args, **kwargs)
            finally:
                self.claims.append((started, time.perf_counter_ns()))

        async def timed_request(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            if method == "POST":
                self.posts.append(time.perf_counter_ns())
            return await request(method, path, *args, **kwargs)

        # Instance attributes over the methods the engine's ExecutionStore and
        # KiteOrders call on these same objects: a timer, nothing else changes.
        runtime.triggers.claim = timed_claim  # type: ignore[method-assign]
        runtime.rest.request = timed_request  # type: ignore[method-assign]

    def remove(self) -> None:
        del self._runtime.triggers.claim
        del self._runtime.rest.request

    def segments(self, sim: list[list[int]]) -> dict[str, list[float]]:
        """Each sample cut at the engine's moments (us); empty if a sample went missing."""
        if not len(sim) == len(self.claims) == len(self.posts):
            return {}
        parts: dict[str, list[float]] = {name: [] for name in SEGMENTS}
        for (sent, arrived), (claimed, committed), posted in zip(
            sim, self.claims, self.posts, strict=True
        ):
            moments = (sent, claimed, committed, posted, arrived)
            for name, start, end in zip(SEGMENTS, moments, moments[1:], strict=False):
                parts[name].append((end - start) / 1000)
        return {name: values[WARMUP:] for name, values in parts.items()}


class _Nowhere:
    """Neither feed nor broker: an engine of its own for the evaluate path alone."""

    def subscribe(self, tokens: object) -> None:
        pass

    def unsubscribe(self, tokens: object) -> None:
        pass

    async def execute(self, fired: Fired, *, on_send: Any = None) -> Outcome:
        return Outcome.FAILED


async def _evaluate_alone(book: list[Trigger], fires: int, gap: float | None) -> list[float]:
    """`Engine.on_ltp` for ticks that fire one trigger each, timed from outside ([] if 0).

    The same book as the run's, plus a ladder on its first instrument; `gap`
    None fires back to back (hot caches), else sleeps that long between fires
    (an idle loop, as between the run's samples).
    """
    if not fires:
        return []
    nowhere = _Nowhere()
    engine = Engine(source=None, feed=nowhere, executor=nowhere, clock=lambda: datetime.now(UTC))  # type: ignore[arg-type]
    token = book[0].instrument_token
    ladder = [
        dataclasses.replace(book[0], id=str(uuid.uuid4()), side=Side.BUY, trigger_price_1=rung(k))
        for k in range(fires)
    ]
    engine.book.add_many([*book, *ladder])
    engine._state = EngineState.RUNNING  # as if started: the bench times on_ltp alone
    # ... with the order book read: a new engine holds firing until then, and on_ltp
    # returned before the book (what this table showed until issue 12's evaluate pass).
    engine.holding = False
    latencies = []
    for k in range(fires):
        started = time.perf_counter_ns()
        engine.on_ltp(token, rung(k))
        latencies.append((time.perf_counter_ns() - started) / 1000)
        await asyncio.sleep(gap or 0)
    await engine.drain()
    if engine.stats.triggers_fired != fires:
        raise RuntimeError(f"bench_engine: {engine.stats.triggers_fired} of {fires} ticks fired")
    return latencies


async def _read(stream: asyncio.StreamReader | None, within: float) -> dict[str, Any]:
    assert stream is not None
    line = await waits.within(stream.readline(), within)
    if not line:
        raise RuntimeError("bench_engine: the simulator process exited early")
    result: dict[str, Any] = json.loads(line)
    return result


async def _measure(
    backend: str,
    url: str,
    size: Size,
    *,
    first_rung: int = 0,
    filled: bool = False,
    api_concurrency: int = 0,
    overrides: dict[str, Any] | None = None,
    broker: str = "kite",
) -> Result:
    """One run: fill (unless `filled`), start the runtime, take the samples.

    `filled` runs reuse a database filled beforehand with a ladder long enough
    for several runs; each starts at `first_rung`, above those already used, and
    skips the claims and evaluate-alone extras (`size.claims`, `size.fires` 0).
    `api_concurrency` > 0 serves the API from this process, as `hmt run` does,
    and creates triggers through it from a third process while the samples run.
    `overrides`: settings of the path measured (one of `MODES`); the defaults otherwise.
    The claims timed alone use the path's HMT_CLAIM_DURABILITY. `broker` "upstox": the
    Upstox simulator (bench.engine_sim_upstox) and the engine in paper mode on it.
    """
    ladder = size.samples + WARMUP
    fill_s = 0.0 if filled else await _fill(url, _rows(size, ladder, broker))
    plan = schedule(ladder)
    config = {
        "instruments": size.instruments,
        "rate": size.rate,
        "schedule": plan,
        "warmup_s": 1.0,  # background ticks flowing before the first push
        "first_rung": first_rung,
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.engine_sim_upstox" if broker == "upstox" else "bench.engine_sim",
        json.dumps(config),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    try:
        hello = await _read(child.stdout, 30)
        at_broker: dict[str, Any] = (
            {
                "paper_broker": "upstox",
                "upstox_api_url": hello["api_url"],
                "upstox_client_id": hello["client_id"],
                "upstox_access_token": hello["access_token"],
            }
            if broker == "upstox"
            else {
                "kite_api_url": hello["api_url"],
                "kite_ws_url": hello["ws_url"],
                "kite_api_key": hello["api_key"],
                "kite_access_token": hello["access_token"],
            }
        )
        settings = Settings(
            database_url=url,
            broker="paper",
            **at_broker,
            reconnect_delay_ms=100,
            rate_limit_writes_per_min=0,  # the API load measures throughput, not the limiter
            max_triggers_per_user=1_000_000,
            **(overrides or {}),
        )
        building = time.perf_counter_ns()
        runtime = await build(settings)
        stamps = Stamps(runtime)
        try:
            started = time.perf_counter_ns()
            await runtime.start()
            start_s = (time.perf_counter_ns() - started) / 1e9
            await _until(lambda: runtime.engine.state is EngineState.RUNNING, 120)
            ready_s = (time.perf_counter_ns() - building) / 1e9
            stats = runtime.engine.stats
            # Connected, and every subscription's snapshot tick has arrived.
            await _until(lambda: stats.ticks_processed >= size.instruments, 30)
            api = _ApiLoad(runtime, size, plan[-1] + 1.5) if api_concurrency else None
            if api is not None:
                await api.start(api_concurrency)
            child.stdin.write(b"go\n")
            sim = await _read(child.stdout, plan[-1] + 60)
            api_report = None if api is None else await api.finish()
            stamps.remove()  # the engine's own claims only
            claims_us = await _claims(
                runtime, size.claims, durable=settings.claim_durability == "sync"
            )  # background ticks still flowing
            engine = stats.latency()
            placed, failed = stats.triggered_orders, stats.failed_orders
            book = [t for t in runtime.engine.book if t.user_id != "ladder"] if size.fires else []
        finally:
            await runtime.close()
        child.stdin.write(b"stop\n")
        await waits.within(child.wait(), 30)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    return Result(
        backend,
        fill_s,
        start_s,
        ready_s,
        sim,
        sim["latencies_us"][WARMUP:],
        stamps.segments(sim["stamps"]),
        claims_us,
        engine,
        placed,
        failed,
        await _evaluate_alone(book, size.fires, None),
        await _evaluate_alone(book, size.fires, IDLE_GAP_S),
        api_report,
    )


class _ApiLoad:
    """The API served in this process and a creating client in another, for `seconds`."""

    def __init__(self, runtime: Runtime, size: Size, seconds: float) -> None:
        self.runtime, self.size, self.seconds = runtime, size, seconds
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(runtime), host="127.0.0.1", port=0, log_config=None)
        )
        self.serving: asyncio.Task[None] | None = None
        self.child: asyncio.subprocess.Process | None = None

    async def start(self, concurrency: int) -> None:
        user = await self.runtime.tokens.issue("api-load")
        self.serving = asyncio.create_task(self.server.serve())
        await _until(lambda: self.server.started, 10)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        others = list(universe(self.size.instruments))[1:]
        config = {
            "url": f"http://127.0.0.1:{port}",
            "token": user.token,
            "seconds": self.seconds,
            "concurrency": concurrency,
            "price": str(_rupees(CLOSE * 3 // 2)),
            # Every instrument but the target (BENCH0), whose ladder the samples climb.
            "instruments": [[i.token, i.tradingsymbol] for i in others],
        }
        self.child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.api_load", json.dumps(config),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def finish(self) -> dict[str, Any]:
        assert self.child is not None
        assert self.serving is not None
        report = await _read(self.child.stdout, self.seconds + 60)
        await self.child.wait()
        self.server.should_exit = True
        await self.serving
        return report


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _label(backend: str, mode: str, overrides: dict[str, Any]) -> str:
    """The row's name: backend, path, and the settings that make it (`SQLite, after: ...`)."""
    named = (f"{LABEL_PREFIX.get(k, '')}{v}" for k, v in overrides.items())
    return f"{backend}, {mode}: " + ", ".join(named)


async def _both(size: Size, modes: tuple[tuple[str, dict[str, Any]], ...] = MODES) -> list[Result]:
    """Each backend once per mode, on a fresh database each time, the modes in turn."""
    results = []
    for mode, overrides in modes:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            label = _label("SQLite", mode, overrides)
            results.append(await _measure(label, url, size, overrides=overrides))
        name = f"hmt_bench_{secrets.token_hex(4)}"
        await _admin(f'CREATE DATABASE "{name}"')
        try:
            label = _label("PostgreSQL", mode, overrides)
            results.append(await _measure(label, f"{PG}/{name}", size, overrides=overrides))
        finally:
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


async def _brokers(size: Size) -> list[tuple[str, Result]]:
    """Kite's simulator and Upstox's in turn on each backend, fresh databases, the default
    path (`MODES`' first; HMT_KITE_HTTP only on Kite, whose REST client it picks)."""
    results = []
    _, after = MODES[0]
    for backend in ("SQLite", "PostgreSQL"):
        for broker in ("kite", "upstox"):
            overrides = {k: v for k, v in after.items() if broker == "kite" or k != "kite_http"}
            label = f"{backend}, {'Kite' if broker == 'kite' else 'Upstox'}"
            if backend == "SQLite":
                with tempfile.TemporaryDirectory() as tmp:
                    url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                    measured = await _measure(label, url, size, overrides=overrides, broker=broker)
            else:
                name = f"hmt_bench_{secrets.token_hex(4)}"
                await _admin(f'CREATE DATABASE "{name}"')
                try:
                    measured = await _measure(
                        label, f"{PG}/{name}", size, overrides=overrides, broker=broker
                    )
                finally:
                    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            results.append((broker, measured))
    return results


def brokers_section(size: Size, results: list[tuple[str, Result]]) -> str:
    """Tick-to-order on Kite's simulator beside Upstox's: one table, rows in run order."""
    rows, split_rows = [], []
    for _, r in results:
        p50, p99, p999 = percentiles(r.latencies_us, [50, 99, 99.9])
        t2o, s = r.engine["tick_to_order_us"], r.sim
        rows.append(
            (
                r.backend,
                len(r.latencies_us),
                _ms(p50),
                _ms(p99),
                _ms(p999),
                _ms(max(r.latencies_us, default=None)),
                _ms(t2o["p50"]),
                _ms(t2o["p99"]),
                f"{s['ticks_sent'] / s['seconds']:,.0f}",
                f"{r.placed} placed, {r.failed} failed",
                f"{s['orders']} for {len(s['latencies_us']) + s['missed']} pushes "
                f"({s['missed']} missed)",
            )
        )
        split_rows.append(
            (
                r.backend,
                *(
                    f"{_p(r.segments.get(name, []), 50)} / {_p(r.segments.get(name, []), 99)}"
                    for name in SEGMENTS
                ),
            )
        )
    _, after = MODES[0]
    return "\n\n".join(
        [
            "## Engine: tick-to-order on Kite's simulator beside Upstox's",
            f"How measured: the load of the section above on each broker's simulator in turn, "
            f"in one run: {size.triggers:,} active single triggers over {size.instruments:,} "
            f"instruments, {size.rate:,.0f} background ticks/s that fire nothing, the ladder "
            f"pushed {SPACING_S:g} s apart ({PER_MINUTE} a minute, under both brokers' order "
            "limits), a fresh database each. Kite: bench/engine_sim.py (binary ticks over "
            "the Kite ticker protocol, Kite's REST). Upstox: bench/engine_sim_upstox.py, "
            "`hmt sim --broker upstox` with the same instruments (BENCH0.. at 1000.00, tick "
            "0.05, served as its master), LTPC protobuf frames (the background's moves due "
            "every 2 ms in one live_feed frame, as Kite's ticker packs what is due into one "
            "frame), POST /v3/order/place. A sample runs from the frame carrying the crossing "
            "price about to be written to the order request arriving at the simulator, "
            f"perf_counter_ns in its process; the first {WARMUP} dropped. The default path: "
            + ", ".join(f"HMT_{k.upper()}={v}" for k, v in after.items())
            + " (HMT_KITE_HTTP on Kite only). `tick_to_order` is the engine's own histogram "
            "(from the book look-up until the outcome is recorded).",
            table(
                [
                    "backend, broker",
                    "samples",
                    "p50 ms",
                    "p99 ms",
                    "p99.9 ms",
                    "max ms",
                    "engine tick_to_order p50 ms",
                    "engine tick_to_order p99 ms",
                    "background ticks/s",
                    "engine outcomes",
                    "orders at simulator",
                ],
                rows,
            ),
            "Where the time goes, p50 / p99 ms (cut as in the section above; on Upstox the "
            "order request is handed to `UpstoxRest.request`):",
            table(["backend, broker", *SEGMENTS], split_rows),
        ]
    )


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def _us(us: float | None) -> str:
    return "-" if us is None else f"{us:,.0f}"


def _target(value: float, limit: float) -> str:
    return "yes" if value <= limit else f"no: +{(value - limit) / 1000:.2f} ms"


def _target_us(value: float, limit: float) -> str:
    return "yes" if value <= limit else f"no: +{value - limit:,.0f} us"


def _p(values: list[float], point: float, unit: Any = _ms) -> str:
    return unit(percentiles(values, [point])[0]) if values else "-"


def run(quick: bool) -> str:
    size = QUICK if quick else FULL
    logs.configure(level="warning")  # the engine's start/stop lines are not figures
    results = asyncio.run(_both(size))
    side_by_side = brokers_section(size, asyncio.run(_brokers(size)))
    latency_rows, split_rows, engine_rows, alone_rows, load_rows = [], [], [], [], []
    for r in results:
        p50, p99, p999 = percentiles(r.latencies_us, [50, 99, 99.9])
        latency_rows.append(
            (
                r.backend,
                len(r.latencies_us),
                _ms(p50),
                _ms(p99),
                _ms(p999),
                _ms(max(r.latencies_us, default=None)),
                _target(p50, 1000),
                _target(p99, 3000),
            )
        )
        split_rows.append(
            (
                r.backend,
                *(
                    f"{_p(r.segments.get(name, []), 50)} / {_p(r.segments.get(name, []), 99)}"
                    for name in SEGMENTS
                ),
                f"{_p(r.claims_us, 50)} / {_p(r.claims_us, 99)}",
            )
        )
        ev, t2o = r.engine["evaluate_us"], r.engine["tick_to_order_us"]
        engine_rows.append(
            (
                r.backend,
                ev["count"],
                _us(ev["p50"]),
                _us(ev["p99"]),
                _us(ev["max"]),
                "-" if ev["p99"] is None else _target_us(ev["p99"], 50),
                _ms(t2o["p50"]),
                _ms(t2o["p99"]),
                _ms(t2o["max"]),
            )
        )
        alone_rows.append(
            (
                r.backend,
                _p(r.hot_us, 50, _us),
                _p(r.hot_us, 99, _us),
                _p(r.idle_us, 50, _us),
                _p(r.idle_us, 99, _us),
            )
        )
        s = r.sim
        load_rows.append(
            (
                r.backend,
                f"{size.triggers:,}",
                f"{r.fill_s:.1f}",
                f"{r.start_s:.2f}",
                f"{s['ticks_sent'] / s['seconds']:,.0f}",
                f"{s['dropped']:,}",
                f"{r.placed} placed, {r.failed} failed",
                f"{s['orders']} for {len(s['latencies_us']) + s['missed']} pushes "
                f"({s['missed']} missed)",
            )
        )
    return "\n\n".join(
        [
            "## Engine: tick-to-order latency under load",
            f"How measured: {size.triggers:,} active single triggers over {size.instruments:,} "
            "instruments (bulk-inserted with SQLAlchemy Core; all but the ladder 50 % away from "
            "the price), the runtime built from `Settings` by `hmt.compose.build` as "
            "`hmt run` builds it, the simulator as Kite in a second process over loopback (LTP "
            f"mode). The simulator streams {size.rate:,.0f} background ticks/s round-robin over "
            "every instrument but BENCH0, at prices that fire nothing, and pushes BENCH0 one "
            "tick higher at a time, each push firing exactly one BUY (the ladder), paced under "
            f"Kite's order limits ({SPACING_S:g} s apart, {PER_MINUTE} a minute) so the "
            "engine's throttle never holds an order. A sample runs from the simulator about to "
            "write the frame carrying the crossing price (`ticker.on_frame`) to the order "
            "request arriving at it (`on_request`), perf_counter_ns in the simulator's process; "
            f"the first {WARMUP} are dropped. SQLite file (WAL, synchronous=FULL); PostgreSQL "
            "on 127.0.0.1 in a private database. Each backend runs once per path, in turn "
            "and on a fresh database: "
            + "; ".join(
                f"'{mode}' with " + ", ".join(f"HMT_{k.upper()}={v}" for k, v in overrides.items())
                for mode, overrides in MODES
            )
            + ". Targets (issue 12): p50 <= 1 ms, p99 <= 3 ms; the in-process evaluate "
            "path p99 <= 50 us.",
            table(
                [
                    "backend",
                    "samples",
                    "p50 ms",
                    "p99 ms",
                    "p99.9 ms",
                    "max ms",
                    "p50 <= 1 ms",
                    "p99 <= 3 ms",
                ],
                latency_rows,
            ),
            "Where the time goes, same run, p50 / p99 ms: each sample cut at moments stamped "
            "in the engine's process (the claim's start and end around `TriggerStore.claim`, "
            "the order request handed to `KiteRest.request`) on the clock the simulator's "
            "stamps use (CLOCK_MONOTONIC, shared by every process). The claim is the engine's "
            "claim: conditional UPDATE + `claimed` event, committed; with claims `sync` the "
            "commit waits for the disk (an fsync), with `async` (HMT_CLAIM_DURABILITY, the "
            "default) it does not (docs/engine.md). With statements `inline` "
            "(HMT_CLAIM_STATEMENTS, the default) the claim's statements are compiled once and "
            "run on the driver's own connection: on SQLite the whole transaction on the event "
            "loop's thread, on a connection of its own (on aiosqlite's thread, in one call, "
            "while another writer holds the lock, and always with `raw`), on PostgreSQL the one "
            "statement on the asyncpg connection. `cached` runs them "
            "through SQLAlchemy: made and compiled "
            "once, and on PostgreSQL the claim is one statement (the UPDATE and its events' "
            "INSERT in one CTE, autocommitted: one round trip); `built` makes them afresh for "
            'each claim, in a transaction, as before (docs/engine.md, "The claim\'s CPU"). Claims '
            f"back to back: {size.claims} sequential claims of far triggers through the same "
            "store right after the samples, background still streaming. Each backend's "
            "rows before and after: the same stages, the path's settings in the row's name.",
            table(["backend", *SEGMENTS, "claims back to back"], split_rows),
            "The engine's own histograms (`EngineStats`, HDR), same run: `evaluate` is "
            "`on_ltp` from the book look-up to the order tasks spawned, for ticks that fire "
            "(decode not included); `tick_to_order` runs from the same start until the outcome "
            "is recorded, so it also holds the broker's answer and the `placed` write.",
            table(
                [
                    "backend",
                    "fired ticks",
                    "evaluate p50 us",
                    "evaluate p99 us",
                    "evaluate max us",
                    "p99 <= 50 us",
                    "tick_to_order p50 ms",
                    "tick_to_order p99 ms",
                    "tick_to_order max ms",
                ],
                engine_rows,
            ),
            f"The evaluate path alone, after the run: `Engine.on_ltp` on an engine of its own "
            f"(no feed, no broker) holding the same book plus a ladder, {size.fires} ticks that "
            "each fire one trigger, timed from outside: back to back, and with the loop idle "
            f"{IDLE_GAP_S * 1000:g} ms before each (as between the run's samples).",
            table(
                [
                    "backend (book from)",
                    "back to back p50 us",
                    "back to back p99 us",
                    "after idle p50 us",
                    "after idle p99 us",
                ],
                alone_rows,
            ),
            table(
                [
                    "backend",
                    "triggers",
                    "bulk insert s",
                    "engine start s",
                    "background ticks/s sent",
                    "ticks dropped",
                    "engine outcomes",
                    "orders at simulator",
                ],
                load_rows,
            ),
            side_by_side,
        ]
    )


def run_brokers(quick: bool) -> str:
    """The Kite-beside-Upstox section alone."""
    size = QUICK if quick else FULL
    logs.configure(level="warning")
    return brokers_section(size, asyncio.run(_brokers(size)))


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    print(run_brokers(quick) if "--brokers" in sys.argv else run(quick=quick))
