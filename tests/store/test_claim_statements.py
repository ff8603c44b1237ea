"""The claim's statements made once and reused (issue 12) decide exactly as those built
per claim: the same row, the same history, and the same losses to an edit, a pause, a
cancel, expiry or another engine. Each test runs on both stores and both paths."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from hmt.core.lifecycle import Status
from hmt.core.model import LegSpec
from hmt.core.types import Direction, Leg, Side
from hmt.kite.segments import divisor_for
from hmt.store.db import Database, create_engine
from hmt.store.triggers import TriggerStore
from tests.store import test_triggers, test_triggers_v2
from tests.store.conftest import Clock
from tests.support.claimer import claim
from tests.support.factories import make_oco, make_trigger


@pytest.fixture
async def pooled(url: str, clock: Clock) -> AsyncIterator[Database]:
    """A database with the claims' own pool, as the composition makes it (claims `async`):
    on PostgreSQL the claim is then one autocommitted statement."""
    database = Database(
        create_engine(url, application_name="hmt-test"),
        retries=2,
        backoff_ms=10,
        clock=clock,
        deferred=create_engine(url, application_name="hmt-test-claims", deferred_flush=True),
    )
    yield database
    await database.dispose()


# Each path on a database without the claims' pool (a claim is then a transaction on
# PostgreSQL) and with it (one statement, autocommitted: the composition's).
@pytest.fixture(
    params=[
        "inline",
        "raw",
        "cached",
        "built",
        "inline, claims pool",
        "raw, claims pool",
        "cached, claims pool",
    ]
)
def paths(request: pytest.FixtureRequest, db: Database, clock: Clock) -> TriggerStore:
    claims, _, pool = str(request.param).partition(", ")
    on = request.getfixturevalue("pooled") if pool else db
    return TriggerStore(on, clock=clock, divisor_of=divisor_for, claims=claims)


async def test_a_claim_wins_once_and_records_the_same(paths: TriggerStore, db: Database) -> None:
    await test_triggers.test_claim_wins_once_and_records_the_leg(paths, db)


async def test_a_claim_without_sending_counts_no_attempt(paths: TriggerStore) -> None:
    await test_triggers.test_claim_without_sending_counts_no_attempt(paths)


async def test_a_claim_loses_to_edit_pause_cancel_and_expiry(
    paths: TriggerStore, clock: Clock
) -> None:
    await test_triggers.test_claim_loses_to_edit_pause_cancel_and_expiry(paths, clock)


async def test_a_watched_instrument_claims_in_its_own_units(
    paths: TriggerStore, db: Database
) -> None:
    await test_triggers_v2.test_a_watched_instrument_in_other_units_keeps_its_own(paths, db)


async def test_a_null_compared_column_must_still_be_null(paths: TriggerStore) -> None:
    """`watch_token` NULL in the engine's copy is compared as IS NULL: a row that watches
    an instrument since is not claimed, and a row watching one is not claimed by a copy
    that watches none or another (each a different shape of the cached statement)."""
    traded = make_trigger()
    watched = make_trigger(
        watch_token=test_triggers_v2.USDINR.id,
        trigger_price_1=835_000_000,
        leg_specs=(LegSpec(direction=Direction.AT_OR_ABOVE),),
    )
    await paths.create(traded)
    await paths.create(watched, watch=test_triggers_v2.USDINR)
    as_watched = dataclasses.replace(traded, watch_token=test_triggers_v2.USDINR.id)
    assert not await claim(paths, as_watched, Leg.FIRST, 160_000)
    assert not await claim(paths, dataclasses.replace(watched, watch_token=None))
    assert (await paths.get("alice", watched.id)).status is Status.ACTIVE
    assert await claim(paths, traded, Leg.FIRST, 160_000)
    assert await claim(paths, watched, Leg.FIRST, 835_025_000)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("cached", "built"),
        ("raw", "cached"),
        ("raw", "built"),
        ("built", "raw"),
        ("inline", "raw"),
        ("raw", "inline"),
        ("inline", "cached"),
    ],
)
async def test_the_second_engine_loses_on_either_path(
    pooled: Database, clock: Clock, one: str, other: str
) -> None:
    """One engine on each path, one trigger: exactly one claim wins."""
    cached = TriggerStore(pooled, clock=clock, divisor_of=divisor_for, claims=one)
    built = TriggerStore(pooled, clock=clock, divisor_of=divisor_for, claims=other)
    first, second = make_oco(Side.SELL, 240_000, 280_000), make_trigger()
    await cached.create(first)
    await cached.create(second)
    assert await claim(cached, first, Leg.SECOND, 280_005)
    assert not await claim(built, first, Leg.FIRST, 239_995, owner="engine-b")
    assert await claim(built, second, owner="engine-b")
    assert not await claim(cached, second)
