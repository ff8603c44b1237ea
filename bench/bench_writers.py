"""SQLite: the engine's claims beside a stream of creates from the API's thread.

One SQLite file (WAL), migrated. An "API" thread runs its own event loop and its own
`Database` (as `hmt run` serves the API, `hmt.compose.bridge`) with N tasks each
creating triggers through `TriggerStore.create` back to back (durable: FULL). The
engine's loop claims one stored trigger every 5 ms through `TriggerStore.claim`
(not flushed, on the claims' own pool: the engine's path), timed from the call to its
return. Each row runs for a fixed window; the two `HMT_SQLITE_WRITERS` settings
alternate, twice, at each N: `queued` (this process's writers take turns at one gate,
claims first) and `busy_wait` (SQLite's busy handler alone, before issue 12).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from bench.bench_book import make_triggers
from bench.report import percentiles, table
from hmt.core.model import Fired
from hmt.core.types import Leg
from hmt.kite.tags import broker_tag
from hmt.store import migrate
from hmt.store.db import Database, create_engine
from hmt.store.triggers import TriggerStore

WINDOW_S, WINDOW_QUICK_S = 6.0, 2.0
WRITERS = (1, 8, 16)
CLAIM_EVERY_S = 0.005
LEASE = timedelta(seconds=30)
SEED = 20261202


def _database(url: str, *, queued: bool, claims: bool = False) -> Database:
    return Database(
        create_engine(url, application_name="hmt-bench"),
        queued_writers=queued,
        deferred=create_engine(url, deferred_flush=True) if claims else None,
    )


def _api(url: str, queued: bool, writers: int, stop: threading.Event, out: list[int]) -> None:
    """The API's thread: `writers` tasks creating triggers until `stop`."""

    async def main() -> None:
        store = TriggerStore(_database(url, queued=queued))
        rng = random.Random(SEED + writers)

        async def write() -> None:
            while not stop.is_set():
                (trigger,) = make_triggers(1, rng)
                await store.create(trigger)
                out[0] += 1

        try:
            await asyncio.gather(*(write() for _ in range(writers)))
        finally:
            await store.db.dispose()

    asyncio.run(main())


async def _row(url: str, *, queued: bool, writers: int, window: float) -> tuple[float, list[float]]:
    store = TriggerStore(_database(url, queued=queued, claims=True))
    rng = random.Random(SEED)
    try:
        ready = [await store.create(t) for t in make_triggers(int(window / CLAIM_EVERY_S), rng)]
        stop, created = threading.Event(), [0]
        api = threading.Thread(target=_api, args=(url, queued, writers, stop, created))
        api.start()
        await asyncio.sleep(0.5)  # the writers under way
        start, latencies = time.perf_counter(), []
        for record in ready:
            if time.perf_counter() - start >= window:
                break
            trigger = record.trigger
            began = time.perf_counter_ns()
            won = await store.claim(
                Fired(trigger, Leg.FIRST, trigger.trigger_price_1),
                broker_tag(trigger.id, Leg.FIRST),
                owner="bench",
                lease=LEASE,
                sending=True,
                durable=False,
            )
            latencies.append((time.perf_counter_ns() - began) / 1e6)
            if not won:
                raise RuntimeError(f"claim of {trigger.id} lost with no competitor")
            await asyncio.sleep(CLAIM_EVERY_S)
        elapsed = time.perf_counter() - start
        created_then = created[0]
        stop.set()
        await asyncio.to_thread(api.join)
        return created_then / (elapsed + 0.5), latencies
    finally:
        await store.db.dispose()


async def _all(window: float) -> list[tuple[int, str, float, list[float]]]:
    rows = []
    for writers in WRITERS:
        for round_ in range(2):
            for queued in (True, False):
                with tempfile.TemporaryDirectory() as tmp:
                    url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                    engine = create_engine(url)
                    await migrate.upgrade(engine)
                    await engine.dispose()
                    rate, latencies = await _row(url, queued=queued, writers=writers, window=window)
                name = "queued" if queued else "busy_wait (before)"
                rows.append((writers, f"{name}, round {round_ + 1}", rate, latencies))
    return rows


def run(quick: bool) -> str:
    window = WINDOW_QUICK_S if quick else WINDOW_S
    started = time.perf_counter()
    results = asyncio.run(_all(window))
    total = time.perf_counter() - started
    rows = []
    for writers, name, rate, latencies in results:
        p50, p99 = percentiles(latencies, [50, 99])
        rows.append(
            (
                str(writers),
                name,
                f"{rate:,.0f}",
                str(len(latencies)),
                f"{p50:.2f}",
                f"{p99:.2f}",
                f"{max(latencies):.2f}",
            )
        )
    return "\n\n".join(
        [
            "## SQLite: claims beside the API's writes (HMT_SQLITE_WRITERS)",
            f"How measured: {__doc__.split(chr(10) + chr(10), 1)[1].strip()} Window "
            f"{window:.0f} s a row; module total {total:.0f} s.",
            table(
                [
                    "API writers",
                    "writers",
                    "creates/s",
                    "claims",
                    "claim p50 ms",
                    "claim p99 ms",
                    "claim max ms",
                ],
                rows,
            ),
        ]
    )


if __name__ == "__main__":
    print(run(quick=False))
