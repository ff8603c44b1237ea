"""RELIABILITY 6: a seeded chaos campaign against `hmt run`, the simulator and the database.

Schedules are played in chunks (one engine process per chunk, killed and
restarted by the schedules that ask for it), on a private PostgreSQL cluster
and, for every fifth chunk, SQLite. A quarter of the schedules also lose
commits (RELIABILITY 17's fault: the database rolled back to a snapshot). Each
schedule is judged on its own by the history checker
(`tests.support.chaos_oracle`); the campaign's report is printed at the end.

    make soak SCHEDULES=200                                  # a longer campaign
    HMT_CHAOS_SEED=<n> HMT_CHAOS_SCHEDULES=1 make soak          # replay one schedule
    HMT_CHAOS_BACKEND=sqlite ...                             # ... on the backend it ran on
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
CHUNKS = chunks(
    SEED, SCHEDULES, PER_CHUNK, [BACKEND] if BACKEND else ["postgresql"] * 4 + ["sqlite"]
)


@pytest.fixture(scope="module")
def campaign() -> Iterator[Campaign]:
    result = Campaign("RELIABILITY 6 chaos campaign", SEED)
    yield result
    print("\n" + result.report())


@pytest.mark.parametrize(
    ("backend", "seeds"), CHUNKS, ids=[f"chunk{i}" for i in range(len(CHUNKS))]
)
async def test_chaos_schedules_place_every_due_trigger_exactly_once(
    backend: str,
    seeds: list[int],
    campaign: Campaign,
    database_url: str,
    cluster: PgCluster | None,
    tmp_path: Path,
) -> None:
    """Every schedule ends valid: 0 duplicated, 0 lost, 0 unexpected, 0 oco-double."""
    await run_chunk(
        campaign,
        backend,
        seeds,
        database_url,
        cluster,
        tmp_path,
        rollback_share=ROLLBACK_SHARE,
        replay="make soak",
    )
