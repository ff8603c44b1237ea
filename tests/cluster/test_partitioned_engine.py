"""A cluster node's engine on PostgreSQL: its partitions only, and its claims fenced.

Real PostgreSQL; the broker and the feed are the in-memory ports (what is tested
here is what the engine loads, drops and claims). `tests/cluster/test_cluster_run.py`
runs three real `hmt run --cluster` processes against the simulator.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Collection, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from hmt.core.lifecycle import Status
from hmt.core.model import Fired, Trigger
from hmt.core.partitions import partition_of
from hmt.core.throttle import Limit, Throttle
from hmt.core.types import InstrumentToken, Leg, OnGap, TriggerId
from hmt.engine.executor import Executor, RetryPolicy
from hmt.engine.service import Engine, EngineState
from hmt.store import fences
from hmt.store.db import Database
from hmt.store.execution import ExecutionStore
from hmt.store.fences import Fence
from hmt.store.tables import gtt_orders as g
from hmt.store.tables import trigger_events as e
from hmt.store.triggers import TriggerStore
from tests.support.eventually import eventually
from tests.support.factories import make_trigger
from tests.support.ports import Broker, Feed
from tests.support.postgres import migrated_database

pytestmark = pytest.mark.pg

P = 8


def tokens_in(partition: int, count: int) -> list[InstrumentToken]:
    """`count` instrument ids whose partition (of P) is `partition`."""
    found = [n for n in range(100_000, 200_000) if partition_of(n, P) == partition][:count]
    return [InstrumentToken(n) for n in found]


A, B = tokens_in(1, 3), tokens_in(5, 3)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with migrated_database("hmt_partitioned") as url:
        yield url


async def stored_partition(db: Database, trigger_id: str) -> int | None:
    async def work(conn):  # type: ignore[no-untyped-def]
        return (await conn.execute(select(g.c.partition).where(g.c.id == trigger_id))).scalar()

    value: int | None = await db.transaction(work, write=False)
    return value


async def status_of(db: Database, trigger_id: str) -> tuple[str, str | None, int]:
    async def work(conn):  # type: ignore[no-untyped-def]
        row = (
            await conn.execute(select(g.c.status, g.c.claimed_by).where(g.c.id == trigger_id))
        ).one()
        count = (await conn.execute(select(e.c.id).where(e.c.trigger_id == trigger_id))).all()
        return row.status, row.claimed_by, len(count)

    result: tuple[str, str | None, int] = await db.transaction(work, write=False)
    return result


# --- the stored partition (revision 0010) ----------------------------------------------


async def test_each_row_stores_its_watched_instruments_partition(db: Database) -> None:
    store = TriggerStore(db, partitions=P)
    plain = (await store.create(make_trigger(instrument_token=A[0]))).trigger
    assert await stored_partition(db, plain.id) == 1
    # An edit to another instrument moves the row to that instrument's partition.
    await store.update(plain.user_id, plain.id, {"instrument_token": B[0]})
    assert await stored_partition(db, plain.id) == 5
    # A row another tool wrote without one, and one computed for another count.
    other = (await store.create(make_trigger(instrument_token=A[1]))).trigger
    stale = (await store.create(make_trigger(instrument_token=B[1]))).trigger
    await db.transaction(
        lambda conn: conn.execute(update(g).where(g.c.id == other.id).values(partition=None))
    )
    await db.transaction(
        lambda conn: conn.execute(update(g).where(g.c.id == stale.id).values(partition=0))
    )
    assert await store.repartition() == 2
    assert await stored_partition(db, other.id) == 1
    assert await stored_partition(db, stale.id) == 5
    assert await store.repartition() == 0


async def test_a_partitions_load_reads_its_rows_and_those_stored_without_one(db: Database) -> None:
    store = TriggerStore(db, partitions=P)
    ours = [(await store.create(make_trigger(instrument_token=t))).trigger for t in A]
    theirs = [(await store.create(make_trigger(instrument_token=t))).trigger for t in B]
    await db.transaction(
        lambda conn: conn.execute(update(g).where(g.c.id == theirs[0].id).values(partition=None))
    )
    loaded = [t.id async for batch in store.stream_active(partitions={1}) for t in batch]
    # The row with no partition comes with any load (the engine keeps its own).
    assert sorted(loaded) == sorted([t.id for t in ours] + [theirs[0].id])
    everything = [t.id async for batch in store.stream_active() for t in batch]
    assert len(everything) == 6


# --- the fenced claim ------------------------------------------------------------------


@pytest.mark.parametrize("claims", ["raw", "cached", "built"])
@pytest.mark.parametrize("v1", [True, False], ids=["one-statement", "transaction"])
async def test_a_claim_succeeds_only_with_the_current_fence(
    db: Database, claims: str, v1: bool
) -> None:
    store = TriggerStore(db, partitions=P, claims=claims)
    shape = {} if v1 else {"on_gap": OnGap.SKIP}  # a v2 field: the transaction's path
    first = (await store.create(make_trigger(instrument_token=A[0], **shape))).trigger
    second = (await store.create(make_trigger(instrument_token=A[1], **shape))).trigger
    lease = timedelta(seconds=30)
    # node-b took the partition over with token 20 and fenced it.
    assert await fences.fence(db, 1, 20, "node-b")
    stale = Fence(1, 10, "node-a")
    fired = Fired(first, Leg.FIRST, 160_000)
    assert not await store.claim(fired, "t1", owner="node-a", lease=lease, fence=stale)
    assert await status_of(db, first.id) == ("active", None, 1)  # only `created`
    assert await fences.fenced(db, 1) == 20
    # The holder's own token is admitted, again and again.
    current = Fence(1, 20, "node-b")
    assert await store.claim(fired, "t1", owner="node-b", lease=lease, fence=current)
    status, owner, _ = await status_of(db, first.id)
    assert (status, owner) == ("triggered", "node-b")
    other = Fired(second, Leg.FIRST, 160_000)
    assert await store.claim(other, "t2", owner="node-b", lease=lease, fence=current)
    # A later holder's greater token raises the fence in the claim itself.
    third = (await store.create(make_trigger(instrument_token=A[2], **shape))).trigger
    later = Fence(1, 30, "node-c")
    assert await store.claim(
        Fired(third, Leg.FIRST, 160_000), "t3", owner="node-c", lease=lease, fence=later
    )
    assert await fences.fenced(db, 1) == 30


async def test_a_node_claims_nothing_in_a_partition_it_does_not_hold(db: Database) -> None:
    store = TriggerStore(db, partitions=P)
    execution = ExecutionStore(store, owner="node-a")
    held: dict[int, int] = {1: 7}
    execution.fencing = held.get
    ours = (await store.create(make_trigger(instrument_token=A[0]))).trigger
    theirs = (await store.create(make_trigger(instrument_token=B[0]))).trigger
    assert not await execution.claim(Fired(theirs, Leg.FIRST, 160_000), "t2")
    assert await status_of(db, theirs.id) == ("active", None, 1)
    assert await execution.claim(Fired(ours, Leg.FIRST, 160_000), "t1")
    assert await fences.fenced(db, 1) == 7
    held.clear()  # the lease lapsed: the very next claim is refused, before the database
    again = (await store.create(make_trigger(instrument_token=A[1]))).trigger
    assert not await execution.claim(Fired(again, Leg.FIRST, 160_000), "t3")


# --- the engine: load on gain, drop on loss, evaluate at once ---------------------------


def node_engine(execution: ExecutionStore, broker: Broker, feed: Feed) -> Engine:
    executor = Executor(
        broker,
        execution,
        throttle=Throttle([Limit(100, 1.0)]),
        policy=RetryPolicy(max_retries=1, backoff=0.001, lookups=2),
        rng=random.Random(1),
    )
    return Engine(
        source=execution,
        feed=feed,
        executor=executor,
        clock=lambda: datetime.now(UTC),
        partitions=P,
    )


async def test_a_node_holds_only_the_partitions_it_gained(db: Database) -> None:
    store = TriggerStore(db, partitions=P)
    execution = ExecutionStore(store, owner="node-a")
    held: dict[int, int] = {}
    execution.fencing = held.get
    broker, feed = Broker(), Feed()
    ours = [(await store.create(make_trigger(instrument_token=t))).trigger for t in A]
    theirs = [(await store.create(make_trigger(instrument_token=t))).trigger for t in B]
    engine = node_engine(execution, broker, feed)
    await engine.start()
    try:
        assert engine.state is EngineState.RUNNING
        assert len(engine.book) == 0
        assert feed.tokens == set()
        held[1] = 3
        engine.partition_gained(1, 3)
        await eventually(lambda: len(engine.book) == 3)
        assert {t.id for t in engine.book} == {t.id for t in ours}
        assert feed.tokens == set(A)
        # A change to another partition's trigger never enters this book.
        await engine.refresh(theirs[0].id)
        assert theirs[0].id not in engine.book
        # A tick crossing one of ours fires it, fenced with this node's token.
        engine.on_ltp(A[0], 170_000)
        await eventually(lambda: sum(map(len, broker.book.values())) == 1)
        assert await fences.fenced(db, 1) == 3
        # Lost: dropped at once, unsubscribed, and the claim is refused.
        del held[1]
        engine.partition_lost(1, 3)
        assert len(engine.book) == 0
        assert feed.tokens == set()
        engine.on_ltp(A[1], 170_000)
        await engine.drain()
        assert sum(map(len, broker.book.values())) == 1
        assert (await status_of(db, ours[1].id))[0] == "active"
    finally:
        await engine.stop()


async def test_a_gained_partition_is_evaluated_at_the_last_price_at_once(db: Database) -> None:
    """The price crossed while nobody held the partition: the gain fires it, no tick needed."""
    store = TriggerStore(db, partitions=P)
    execution = ExecutionStore(store, owner="node-a")
    held: dict[int, int] = {}
    execution.fencing = held.get
    broker, feed = Broker(), Feed()
    crossed = (await store.create(make_trigger(instrument_token=A[0]))).trigger  # BUY >= 1600
    waiting = (await store.create(make_trigger(instrument_token=A[1]))).trigger
    engine = node_engine(execution, broker, feed)
    await engine.start()
    try:
        engine.on_ltp(A[0], 170_000)  # a price seen before the partition was held
        engine.on_ltp(A[1], 150_000)
        held[1] = 4
        engine.partition_gained(1, 4)
        await eventually(lambda: sum(map(len, broker.book.values())) == 1)
        await engine.drain()
        assert (await status_of(db, crossed.id))[0] == "placed"
        assert (await status_of(db, waiting.id))[0] == "active"
        assert waiting.id in engine.book
        assert crossed.id not in engine.book
    finally:
        await engine.stop()


async def test_a_trigger_cancelled_as_its_partition_is_gained_stays_out(db: Database) -> None:
    store = TriggerStore(db, partitions=P)
    execution = ExecutionStore(store, owner="node-a")
    held = {1: 5}
    execution.fencing = held.get
    engine = node_engine(execution, Broker(), Feed())
    trigger = (await store.create(make_trigger(instrument_token=A[0]))).trigger
    await engine.start()
    try:
        engine.partition_gained(1, 5)
        # Cancelled while the load may be under way; the change feed's refresh follows.
        await store.cancel(trigger.user_id, trigger.id)
        await engine.refresh(TriggerId(trigger.id))
        await engine.drain()
        assert trigger.id not in engine.book
        assert engine.partitions_held == frozenset({1})
    finally:
        await engine.stop()
    assert (await status_of(db, trigger.id))[0] == Status.CANCELLED.value


class HeldLoads(ExecutionStore):
    """The store, each partition's load held until the test lets it go."""

    def __init__(self, store: TriggerStore) -> None:
        super().__init__(store, owner="node-a")
        self.gates: dict[int, asyncio.Event] = {}

    async def active_batches(  # type: ignore[override]
        self, partitions: Collection[int] | None = None
    ) -> AsyncIterator[list[Trigger]]:
        for partition in partitions or ():
            await self.gates.setdefault(partition, asyncio.Event()).wait()
        async for batch in super().active_batches(partitions):
            yield batch


async def test_overlapping_loads_each_keep_their_own_refreshed_ids(db: Database) -> None:
    """Two loads under way, edits refreshed meanwhile, the second load done first: each
    load still applies the ids refreshed during it (the sets are told apart by identity,
    not by equality), and both partitions are armed."""
    store = TriggerStore(db, partitions=P)
    execution = HeldLoads(store)
    held = {1: 8, 5: 9}
    execution.fencing = held.get
    created = [(await store.create(make_trigger(instrument_token=t))).trigger for t in [*A, *B]]
    engine = node_engine(execution, Broker(), Feed())
    await engine.start()
    try:
        engine.partition_gained(1, 8)
        engine.partition_gained(5, 9)
        await eventually(lambda: len(execution.gates) == 2)
        await engine.refresh(TriggerId(created[0].id))  # both loads note it
        execution.gates[5].set()
        await eventually(lambda: all(t.id in engine.book for t in created[3:]))
        await engine.refresh(TriggerId(created[1].id))  # only the load of 1 notes it
        execution.gates[1].set()
        await engine.drain()
        assert {t.id for t in engine.book} == {t.id for t in created}
    finally:
        await engine.stop()


async def _rebuild_started(engine: Engine, execution: HeldLoads) -> asyncio.Task[None]:
    """A rebuild of the book (the change feed's resync) whose read waits at the gates."""
    execution.gates.clear()
    rebuild = asyncio.get_running_loop().create_task(engine.resync())
    await eventually(lambda: len(execution.gates) > 0)
    return rebuild


async def test_a_partition_lost_while_the_book_is_rebuilt_stays_out_of_it(db: Database) -> None:
    """The rebuild read both partitions; one was lost (its new owner loads it) before the
    new book was swapped in: its triggers are not in it, so none sits here for ever."""
    store = TriggerStore(db, partitions=P)
    execution = HeldLoads(store)
    held = {1: 10, 5: 11}
    execution.fencing = held.get
    ours = [(await store.create(make_trigger(instrument_token=t))).trigger for t in A]
    for token in B:
        await store.create(make_trigger(instrument_token=token))
    engine = node_engine(execution, Broker(), Feed())
    await engine.start()
    try:
        for partition in (1, 5):
            execution.gates.setdefault(partition, asyncio.Event()).set()
            engine.partition_gained(partition, held[partition])
        await eventually(lambda: len(engine.book) == 6)
        rebuild = await _rebuild_started(engine, execution)
        del held[5]
        engine.partition_lost(5, 11)
        for partition in (1, 5):  # the read goes on, partition by partition
            execution.gates.setdefault(partition, asyncio.Event()).set()
        await rebuild
        assert {t.id for t in engine.book} == {t.id for t in ours}
    finally:
        await engine.stop()


async def test_a_partition_gained_while_the_book_is_rebuilt_stays_in_it(db: Database) -> None:
    """The rebuild read partition 1 only; 5 was gained and armed meanwhile in the book the
    rebuild then replaced: its triggers are in the new book (else no node holds them)."""
    store = TriggerStore(db, partitions=P)
    execution = HeldLoads(store)
    held = {1: 12}
    execution.fencing = held.get
    created = [(await store.create(make_trigger(instrument_token=t))).trigger for t in [*A, *B]]
    engine = node_engine(execution, Broker(), Feed())
    await engine.start()
    try:
        execution.gates.setdefault(1, asyncio.Event()).set()
        engine.partition_gained(1, 12)
        await eventually(lambda: len(engine.book) == 3)
        rebuild = await _rebuild_started(engine, execution)
        held[5] = 13
        engine.partition_gained(5, 13)
        await eventually(lambda: 5 in execution.gates)
        execution.gates[5].set()
        await eventually(lambda: all(t.id in engine.book for t in created[3:]))
        execution.gates[1].set()
        await rebuild
        assert {t.id for t in engine.book} == {t.id for t in created}
    finally:
        await engine.stop()
