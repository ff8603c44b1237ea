"""RELIABILITY 6: a seeded chaos campaign against `hmt run`, the simulator and the database.

Over both brokers: the same seeds play against Kite's simulator and Upstox's
(`tests.support.chaos_market`), with the same fault kinds and the same oracle.
`make test` runs HMT_CHAOS_SCHEDULES (30) on Kite and a smaller share on Upstox
(HMT_UPSTOX_CHAOS_SCHEDULES, 4: one chunk, on PostgreSQL); under `make soak`
(HMT_CHAOS_SCHEDULES set) Upstox plays the full budget too, on both stores.

Schedules are played in chunks (one engine process per chunk, killed and
restarted by the schedules that ask for it), on a private PostgreSQL cluster
and, for every fifth chunk, SQLite. A quarter of the schedules also lose
commits (RELIABILITY 17's fault: the database rolled back to a snapshot). Each
schedule is judged on its own by the history checker
(`tests.support.chaos_oracle`); the campaign's report is printed at the end.

    make soak SCHEDULES=200                                  # a longer campaign
    HMT_CHAOS_SEED=<n> HMT_CHAOS_SCHEDULES=1 make soak          # replay one schedule
    HMT_CHAOS_BACKEND=sqlite ...                             # ... on the backend it ran on
    HMT_CHAOS_BROKER=upstox ...                              # ... on one broker
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.chaos_campaign import Campaign, chunks, run_chunk
from tests.support.chaos_schedule import ROLLBACK_SHARE
from tests.support.pg_cluster import PgCluster

SCHEDULES = int(os.environ.get("HMT_CHAOS_SCHEDULES", "30"))
SEED = int(os.environ.get("HMT_CHAOS_SEED") or random.randrange(1 << 31))
PER_CHUNK = 6  # schedules per engine process (and per pytest test, within its timeout)
BACKEND = os.environ.get("HMT_CHAOS_BACKEND", "")  # force one backend (replaying a seed)
BACKENDS = [BACKEND] if BACKEND else ["postgresql"] * 4 + ["sqlite"]
# Upstox's share: the full budget when one is given (`make soak`), else a chunk's worth.
UPSTOX_SCHEDULES = int(
    os.environ.get("HMT_UPSTOX_CHAOS_SCHEDULES") or os.environ.get("HMT_CHAOS_SCHEDULES") or "4"
)
BROKER = os.environ.get("HMT_CHAOS_BROKER", "")  # force one broker (replaying a seed)
CHUNKS = [
    (broker, backend, seeds)
    for broker, count in (("kite", SCHEDULES), ("upstox", UPSTOX_SCHEDULES))
    if BROKER in ("", broker)
    for backend, seeds in chunks(SEED, count, PER_CHUNK, BACKENDS)
]


@pytest.fixture(scope="module")
def campaigns() -> Iterator[dict[str, Campaign]]:
    """One campaign (and report) per broker."""
    found = {b: Campaign(f"RELIABILITY 6 chaos campaign on {b}", SEED) for b in ("kite", "upstox")}
    yield found
    for result in found.values():
        if result.outcomes:
            print("\n" + result.report())


@pytest.mark.parametrize(
    ("broker", "backend", "seeds"),
    CHUNKS,
    ids=[f"{broker}-chunk{i}" for i, (broker, _, _) in enumerate(CHUNKS)],
)
async def test_chaos_schedules_place_every_due_trigger_exactly_once(
    broker: str,
    backend: str,
    seeds: list[int],
    campaigns: dict[str, Campaign],
    database_url: str,
    cluster: PgCluster | None,
    tmp_path: Path,
) -> None:
    """Every schedule ends valid: 0 duplicated, 0 lost, 0 unexpected, 0 oco-double."""
    await run_chunk(
        campaigns[broker],
        backend,
        seeds,
        database_url,
        cluster,
        tmp_path,
        rollback_share=ROLLBACK_SHARE,
        replay=f"HMT_CHAOS_BROKER={broker} make soak",
        broker=broker,
    )
