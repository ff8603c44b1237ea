"""The API under load while ticks flow: what it costs the tick path, and what it sustains.

Each run is bench_engine's (`_measure`: the simulator in its own process,
the runtime built by `hmt.compose.build`, 10k background ticks/s, one burst of
samples on a ladder), with a client in a third process (`bench.api_load`)
asking for `POST /triggers` at a fixed rate (open loop: requests start on
schedule whether or not earlier ones were answered) for the whole burst. Per
store, on one database filled once, in this order: no API load (quiet); then
200 creates/s and the create-throughput target's rate (1,000/s PostgreSQL,
500/s SQLite), each with the API on the engine's event loop (HMT_API_LOOP=engine,
as before issue 12, without a bound on requests in flight) and on its own
thread (HMT_API_LOOP=thread, the default, with HMT_API_MAX_IN_FLIGHT's default
bound); and the thread at the GIL's default switch interval (5 ms) instead of
`hmt.api.serving.SWITCH_INTERVAL_S`, the measurement behind that choice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

import bench.bench_engine as bench_engine
from bench.bench_engine import (
    CLOSE,
    PG,
    ROOT,
    WARMUP,
    Result,
    Size,
    _admin,
    _fill,
    _measure,
    _ms,
    _read,
    _rows,
    _rupees,
    _until,
    universe,
)
from bench.report import percentiles, table
from hmt import logs
from hmt.api.app import create_app
from hmt.api.serving import ApiThread
from hmt.compose import bridge
from hmt.engine.bridge import EngineLoop
from hmt.engine.runtime import Runtime


@dataclass(frozen=True)
class Load:
    name: str  # what the row is called
    mode: str  # "engine" (the API on the engine's loop) or "thread"
    rate: float  # creates asked per second
    switch_interval: float | None = None  # the thread's GIL switch interval; None: hmt's
    overrides: dict[str, Any] | None = None  # settings of the run, beside the defaults


SAMPLES_FULL, SAMPLES_QUICK = 187, 10  # one burst under Kite's 200 orders/min
BOOK_FULL = Size(100_000, instruments=1000, samples=SAMPLES_FULL, rate=10_000, claims=0, fires=0)
BOOK_QUICK = Size(5_000, instruments=50, samples=SAMPLES_QUICK, rate=5_000, claims=0, fires=0)
TARGET_RATE = {"PostgreSQL": 1000.0, "SQLite": 500.0}  # the create-throughput targets
ASKED = 200.0  # the tick-path target's API load
CREATE_P99_MS = 50.0
TICK_P99_RATIO = 1.5
DEFAULT_SWITCH_S = 0.005  # CPython's
# HMT_SQLITE_WRITERS as before the gate: SQLite's busy handler alone.
BUSY_WAIT = {"sqlite_writers": "busy_wait"}
USERS = 100  # the client's users, round-robin
MIN_WINDOW_S = 8.0  # the shortest load window
REPORT_LIMIT = 64 * 1024 * 1024  # the client's one-line report: every create's latency


def loads(backend: str) -> list[Load | None]:
    target = TARGET_RATE[backend]
    return [
        None,  # quiet
        Load("200/s, API on the engine's loop", "engine", ASKED),
        Load("200/s, API on its own thread", "thread", ASKED),
        Load("200/s, own thread, GIL switch 5 ms", "thread", ASKED, DEFAULT_SWITCH_S),
        *(
            [Load("200/s, own thread, writers busy-wait", "thread", ASKED, None, BUSY_WAIT)]
            if backend == "SQLite"
            else []
        ),
        Load(f"{target:,.0f}/s, API on the engine's loop", "engine", target),
        Load(f"{target:,.0f}/s, API on its own thread", "thread", target),
        *(
            [Load(f"{target:,.0f}/s, own thread, busy-wait", "thread", target, None, BUSY_WAIT)]
            if backend == "SQLite"
            else []
        ),
    ]


class ApiLoad:
    """Stands in for bench_engine's `_ApiLoad`: the API served as `load` says, and the
    client asking for `load.rate` creates a second for `seconds`."""

    def __init__(self, runtime: Runtime, size: Size, seconds: float, *, load: Load) -> None:
        # At least MIN_WINDOW_S: a quick run's burst (3 s) is mostly the client's warm-up.
        self.seconds = max(seconds, MIN_WINDOW_S)
        self.runtime, self.size, self.load = runtime, size, load
        self.server: uvicorn.Server | None = None
        self.serving: asyncio.Task[None] | None = None
        self.thread: ApiThread | None = None
        self.child: asyncio.subprocess.Process | None = None

    async def start(self, _concurrency: int) -> None:
        # Many users, as an app's traders are: one user's creates would count ever more
        # live triggers against its cap (a per-user count per create).
        users = [await self.runtime.tokens.issue(f"api-load-{n}") for n in range(USERS)]
        if self.load.mode == "engine":
            # As before issue 12: on this loop, and no bound on requests in flight.
            unbounded = self.runtime.settings.model_copy(update={"api_max_in_flight": 100_000})
            app = create_app(dataclasses.replace(self.runtime, settings=unbounded),
                             manage_runtime=False)  # fmt: skip
            self.server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None)
            )
            self.serving = asyncio.create_task(self.server.serve())
            await _until(lambda: self.server is not None and self.server.started, 10)
            port = self.server.servers[0].sockets[0].getsockname()[1]
        else:
            engine_loop = EngineLoop(asyncio.get_running_loop())
            runtime = self.runtime
            self.thread = ApiThread(lambda: bridge(runtime, engine_loop), host="127.0.0.1", port=0)
            if self.load.switch_interval is not None:
                self.thread.switch_interval = self.load.switch_interval
            await self.thread.start()
            port = self.thread.port or 0
        others = list(universe(self.size.instruments))[1:]
        config = {
            "url": f"http://127.0.0.1:{port}",
            "tokens": [user.token for user in users],
            "seconds": self.seconds,
            "rate": self.load.rate,
            "price": str(_rupees(CLOSE * 3 // 2)),
            # Every instrument but the target (BENCH0), whose ladder the samples climb.
            "instruments": [[i.token, i.tradingsymbol] for i in others],
        }
        self.child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.api_load", json.dumps(config),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, limit=REPORT_LIMIT,
        )  # fmt: skip

    async def finish(self) -> dict[str, Any]:
        assert self.child is not None
        report = await _read(self.child.stdout, self.seconds + 90)
        await self.child.wait()
        if self.server is not None and self.serving is not None:
            self.server.should_exit = True
            await self.serving
        if self.thread is not None:
            await self.thread.stop()
        return report


@contextlib.contextmanager
def _serving(load: Load) -> Iterator[None]:
    """bench_engine's run with this API load in place of its own."""
    original = bench_engine._ApiLoad
    bench_engine._ApiLoad = lambda runtime, size, seconds: ApiLoad(  # type: ignore[assignment,misc]
        runtime, size, seconds, load=load
    )
    try:
        yield
    finally:
        bench_engine._ApiLoad = original  # type: ignore[misc]


async def _store(backend: str, url: str, size: Size) -> list[tuple[Load | None, Result]]:
    runs = loads(backend)
    per_run = size.samples + WARMUP
    await _fill(url, _rows(size, per_run * len(runs)))
    results: list[tuple[Load | None, Result]] = []
    for index, load in enumerate(runs):
        with _serving(load) if load is not None else contextlib.nullcontext():
            result = await _measure(
                backend,
                url,
                size,
                first_rung=index * per_run,
                filled=True,
                api_concurrency=0 if load is None else 1,
                overrides=None if load is None else load.overrides,
            )
        results.append((load, result))
    return results


async def _both(size: Size) -> dict[str, list[tuple[Load | None, Result]]]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["SQLite"] = await _store("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", size)
    name = f"hmt_bench_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        out["PostgreSQL"] = await _store("PostgreSQL", f"{PG}/{name}", size)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return out


def run(quick: bool) -> str:
    size = BOOK_QUICK if quick else BOOK_FULL
    logs.configure(level="warning")
    started = time.perf_counter()
    results = asyncio.run(_both(size))
    total_s = time.perf_counter() - started
    rows = []
    for backend, runs in results.items():
        quiet = runs[0][1]
        q50, q99 = percentiles(quiet.latencies_us, [50, 99])
        rows.append((backend, "quiet (no API load)", "", "", "", "", "", "",
                     _ms(q50), _ms(q99), "", ""))  # fmt: skip
        for load, r in runs[1:]:
            assert load is not None
            assert r.api is not None
            rows.append(_row(backend, load, r, q99))
    return "\n\n".join(
        [
            "## API under load: the tick path's cost, shedding, create throughput",
            f"How measured: {__doc__.split(chr(10) + chr(10), 1)[1].strip()} "
            f"{size.triggers:,} active triggers, {size.instruments:,} instruments, "
            f"{size.rate:,.0f} background ticks/s, {size.samples} samples per run (plus "
            f"{WARMUP} dropped). 'sent/s' is what the client started (its own process: past "
            "its ceiling the asked rate is not reached, and `behind` says by how many); "
            "'created/s' the 201s answered within the load's window; 'other errors' "
            "anything else, timeouts (10 s) included; "
            "'shed' the 503s (over HMT_API_MAX_IN_FLIGHT, with "
            "Retry-After) and 'shed p99' how long a refusal took as the client saw it (its "
            "wait for one of its 64 connections included: under overload that wait, not the "
            "server, dominates). Tick ratio: p99 with the "
            f"load over the quiet run's (target <= {TICK_P99_RATIO}x at 200/s). Create "
            f"target: >= {TARGET_RATE['PostgreSQL']:,.0f}/s on PostgreSQL, "
            f">= {TARGET_RATE['SQLite']:,.0f}/s on SQLite, p99 <= {CREATE_P99_MS:.0f} ms. "
            f"Module total {total_s:.0f} s.",
            table(
                [
                    "store",
                    "API load",
                    "sent/s (behind)",
                    "created/s",
                    "create p50 ms",
                    "create p99 ms",
                    "shed (p99 ms)",
                    "other errors",
                    "tick-to-order p50 ms",
                    "tick-to-order p99 ms",
                    "tick p99 vs quiet",
                    "target",
                ],
                rows,
            ),
        ]
    )


def _row(backend: str, load: Load, r: Result, quiet_p99: float) -> tuple[str, ...]:
    api = r.api
    assert api is not None
    seconds = api["window_s"]  # the load's window; answers after it are not throughput
    created = api["created"]
    c50, c99 = percentiles(api["latencies_us"], [50, 99]) if created else (None, None)
    (s99,) = percentiles(api["shed_us"], [99]) if api["shed"] else (None,)
    p50, p99 = percentiles(r.latencies_us, [50, 99])
    ratio = p99 / quiet_p99
    if load.rate == ASKED:
        ok = ratio <= TICK_P99_RATIO
        target, miss = f"tick p99 <= {TICK_P99_RATIO}x", f"{ratio:.2f}x"
    else:
        rate, wanted = api["in_window"] / seconds, TARGET_RATE[backend]
        ok = rate >= wanted and c99 is not None and c99 <= CREATE_P99_MS * 1000
        target = f">= {wanted:,.0f}/s, p99 <= {CREATE_P99_MS:.0f} ms"
        miss = f"{rate:,.0f}/s, p99 {_ms(c99)} ms"
    if load.mode == "thread" and load.switch_interval is None and not load.overrides:  # ships
        verdict = f"{target}: " + ("yes" if ok else f"no: {miss}")
    else:  # the old path, or a candidate not chosen: for comparison, not a verdict
        verdict = f"{target}: " + ("would meet" if ok else f"would miss ({miss})")
    return (
        backend,
        load.name,
        f"{api['sent'] / seconds:,.0f} ({api['behind']})",
        f"{api['in_window'] / seconds:,.0f}",
        _ms(c50),
        _ms(c99),
        f"{api['shed']} ({_ms(s99)})",
        str(sum(api["errors"].values()) + api["unanswered"]),
        _ms(p50),
        _ms(p99),
        f"{ratio:.2f}x",
        verdict,
    )


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
