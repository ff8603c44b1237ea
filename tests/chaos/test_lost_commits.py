"""RELIABILITY 17: lost commits, inside chaos schedules, on both stores.

Every schedule here snapshots the database mid-run (PostgreSQL: `pg_basebackup`
of a private cluster; SQLite: the backup API), lets claims and orders happen,
then SIGKILLs the engine, restores the snapshot (the cluster stopped with
`-m immediate`; the SQLite file copied back) and restarts the engine: the
claims, outcomes, creates and edits since the snapshot are gone while the
broker (the simulator) keeps every order. The engine must settle the rows that
are armed again from the broker's order book rather than order twice; the
other faults of the campaign still come and go around it.

Over both brokers (`tests.support.chaos_market`): `make test` runs a few on
each store on Kite and a few on SQLite on Upstox; `make soak SCHEDULES=N` runs
N on each store on both.

    make soak SCHEDULES=60                       # 60 schedules on each store
    HMT_CHAOS_SEED=<n> HMT_LOST_COMMITS_SCHEDULES=1 HMT_CHAOS_BACKEND=sqlite \\
        .venv/bin/python -m pytest tests/chaos/test_lost_commits.py -s    # replay one
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.brokers import BROKERS
from tests.support.chaos_campaign import Campaign, chunks, failure, run_chunk, runner_for
from tests.support.chaos_schedule import BASE, HIGH, LOW, TICK, Schedule, Step
from tests.support.pg_cluster import PgCluster

# Schedules per store (`make test` runs a few; `make soak SCHEDULES=N` runs N on each).
PER_STORE = int(
    os.environ.get("HMT_LOST_COMMITS_SCHEDULES") or os.environ.get("HMT_CHAOS_SCHEDULES") or "2"
)
SEED = int(os.environ.get("HMT_CHAOS_SEED") or random.randrange(1 << 31))
PER_CHUNK = 4  # schedules per engine process and pytest test, within its timeout
BACKEND = os.environ.get("HMT_CHAOS_BACKEND", "")
STORES = [BACKEND] if BACKEND else ["postgresql", "sqlite"]
# Upstox's share: the full budget on both stores when one is given (`make soak`), else
# a couple of schedules on SQLite (the cheaper store) beside Kite's.
UPSTOX_BUDGET = (
    os.environ.get("HMT_UPSTOX_LOST_COMMITS_SCHEDULES")
    or os.environ.get("HMT_LOST_COMMITS_SCHEDULES")
    or os.environ.get("HMT_CHAOS_SCHEDULES")
)
UPSTOX_PER_STORE = int(UPSTOX_BUDGET or "2")
UPSTOX_STORES = STORES if UPSTOX_BUDGET or BACKEND else ["sqlite"]
BROKER = os.environ.get("HMT_CHAOS_BROKER", "")  # force one broker (replaying a seed)


def _chunks(per_store_count: int, stores: list[str]) -> list[tuple[str, list[int]]]:
    """`per_store_count` schedules on each store, chunks alternating between them; seeds
    SEED + i."""
    per_store = [
        chunks(SEED + n * per_store_count, per_store_count, PER_CHUNK, [store])
        for n, store in enumerate(stores)
    ]
    return [chunk for group in zip(*per_store, strict=True) for chunk in group]


CHUNKS = [
    (broker, backend, seeds)
    for broker, count, stores in (
        ("kite", PER_STORE, STORES),
        ("upstox", UPSTOX_PER_STORE, UPSTOX_STORES),
    )
    if BROKER in ("", broker)
    for backend, seeds in _chunks(count, stores)
]


@pytest.fixture(scope="module")
def campaigns() -> Iterator[dict[str, Campaign]]:
    """One campaign (and report) per broker."""
    found = {b: Campaign(f"RELIABILITY 17 lost commits on {b}", SEED) for b in BROKERS}
    yield found
    for result in found.values():
        if result.outcomes:
            print("\n" + result.report())


@pytest.mark.parametrize(
    ("broker", "backend", "seeds"),
    CHUNKS,
    ids=[f"{broker}-{backend}{i}" for i, (broker, backend, _) in enumerate(CHUNKS)],
)
async def test_a_rolled_back_database_neither_duplicates_nor_loses_an_order(
    broker: str,
    backend: str,
    seeds: list[int],
    campaigns: dict[str, Campaign],
    database_url: str,
    cluster: PgCluster | None,
    tmp_path: Path,
) -> None:
    """Every schedule, each with one rollback, ends valid: 0 duplicated, 0 lost, 0 oco-double."""
    await run_chunk(
        campaigns[broker],
        backend,
        seeds,
        database_url,
        cluster,
        tmp_path,
        rollback_share=1.0,
        replay=f"HMT_CHAOS_BROKER={broker} make soak",
        broker=broker,
    )


@pytest.mark.parametrize("broker", BROKERS)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_paused_row_whose_order_a_rollback_forgot_is_not_ordered_again(
    broker: str, backend: str, database_url: str, cluster: PgCluster | None, tmp_path: Path
) -> None:
    """Paused at the snapshot, resumed and placed after it: restored `paused`, then resumed,
    the trigger must be settled from the order book, not sent a second order."""
    steps = (
        Step("tick", {"price": BASE}, 0.05),
        Step("create", {"side": "SELL", "price": BASE - 50 * TICK, "limit": False}, 0.05),
        Step("pause", {"target": 0}, 0.1),
        Step("snapshot", {}, 0.05),
        Step("resume", {"target": 0}, 0.3),
        Step("tick", {"price": HIGH}, 0.5),
        Step("tick", {"price": LOW}, 1.0),
        Step("rollback", {}, 0.1),
    )
    async with runner_for(database_url, cluster, tmp_path, 1, broker) as runner:
        outcome = await runner.run(Schedule(0, backend, steps))
        log = runner.slot.output()
    assert len(outcome.lost_claims) == 1, "the rollback did not take the claim back"
    assert outcome.verdict.valid, failure(outcome, log, "pytest -k paused")
    assert outcome.verdict.counts["rollback-resolved"] == 1


@pytest.mark.parametrize("broker", BROKERS)
async def test_a_cancel_while_the_order_book_is_unreadable_leaves_no_order_behind(
    broker: str, tmp_path: Path
) -> None:
    """After a rollback, with the start-up read of the order book failing, a cancel of a row
    whose order the broker already has must not leave a `cancelled` row with a live order."""
    fault = {"kind": "error", "endpoint": "orders", "error_type": "NetworkException", "times": 3}
    steps = (
        Step("tick", {"price": BASE}, 0.05),
        Step("create", {"side": "SELL", "price": BASE - 50 * TICK, "limit": False}, 0.05),
        Step("snapshot", {}, 0.05),
        Step("tick", {"price": HIGH}, 0.5),
        # Long enough for the order to reach the broker before the rollback on a busy run
        # (the claim the rollback must take back is the one whose order the broker has).
        Step("tick", {"price": LOW}, 3.0),
        Step("rest_fault", fault, 0.0),
        Step("rollback", {}, 0.05),
        Step("cancel", {"target": 0}, 0.5),
    )
    database = f"sqlite:///{tmp_path / 'hmt.db'}"
    async with runner_for(database, None, tmp_path, 1, broker) as runner:
        outcome = await runner.run(Schedule(0, "sqlite", steps))
        log = runner.slot.output()
    assert len(outcome.lost_claims) == 1, "the rollback did not take the claim back"
    # Until the book is read the API refuses to change existing triggers (503 + Retry-After).
    assert outcome.api["DELETE 503"] == 1, f"the cancel was not refused: {outcome.api}"
    assert outcome.api["DELETE 200"] == 0
    assert outcome.verdict.valid, failure(outcome, log, "pytest -k unreadable")
