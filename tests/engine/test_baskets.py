"""RELIABILITY 18, in process: per-order exactly once for baskets, on both stores.

The executor runs against the real store (SQLite and PostgreSQL) and the
simulator over loopback (Kite's REST client, real sockets). A fault is armed
on the simulator just before a chosen order's first request (`FaultsAt`), so
each fault hits one order of the basket. The simulator's order book is the
judge: every tag at most once, every order placed or failed with a reason,
and the trigger's status by the basket rule (docs/engine.md, "Baskets").
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hmt.core.broker import OrderReport
from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.model import Fired, OrderIntent, Trigger
from hmt.core.rules import orders_for
from hmt.core.throttle import Limit, Throttle
from hmt.core.types import Leg
from hmt.engine.executor import GIVEN_UP, AuthExpired, Executor, Outcome, RetryPolicy
from hmt.kite.orders import KiteOrders
from hmt.kite.rest import KiteRest
from hmt.kite.tags import broker_tag
from hmt.sim.simulator import Simulator
from hmt.store.execution import ExecutionStore
from hmt.store.tables import ORDER_FAILED, ORDER_PLACED
from hmt.store.triggers import TriggerStore
from tests.store.conftest import clock, db, pg_url, store, url
from tests.support.baskets import make_basket, order_rows
from tests.support.factories import INFY

__all__ = ["clock", "db", "pg_url", "store", "url"]  # the stores' fixtures, both backends

SIZE = 20
REST_TIMEOUT_S = 0.5


class FaultsAt:
    """Kite's order port, arming a simulator fault just before the first request of
    chosen basket positions, and able to stop the process's work at a position
    (`crash_at`: raised before that order's first request, as a crash would)."""

    def __init__(
        self,
        kite: KiteOrders,
        sim: Simulator,
        faults: dict[int, dict[str, Any]] | None = None,
        *,
        crash_at: int | None = None,
        crash_after_send: bool = False,
    ) -> None:
        self.kite, self.sim = kite, sim
        self.faults = dict(faults or {})
        self.crash_at = crash_at
        self.crash_after_send = crash_after_send
        self.sent: Counter[int] = Counter()  # requests per position

    def tag(self, trigger_id: str, leg: Leg, position: int = 0) -> str:
        return self.kite.tag(trigger_id, leg, position)

    async def place(self, intent: OrderIntent) -> str:
        if intent.position == self.crash_at and not self.crash_after_send:
            raise Crash(intent.position)
        fault = self.faults.pop(intent.position, None)
        if fault is not None:
            self.sim.faults.add(endpoint="place_order", times=1, **fault)
        self.sent[intent.position] += 1
        order_id = await self.kite.place(intent)
        if intent.position == self.crash_at:
            raise Crash(intent.position)  # answered; the outcome never written
        return order_id

    async def find(self, tag: str) -> list[OrderReport]:
        return await self.kite.find(tag)

    async def orders(self) -> list[OrderReport]:
        return await self.kite.orders()


class Crash(BaseException):
    """The process dies here (nothing below catches a BaseException)."""


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    seed = random.randrange(1 << 32)
    print(f"simulator seed={seed}")
    async with Simulator(seed=seed) as running:
        running.push_price(INFY, "1600.00")
        yield running


@pytest.fixture
async def kite(sim: Simulator) -> AsyncIterator[KiteOrders]:
    rest = KiteRest(
        api_url=sim.api_url,
        api_key=sim.api_key,
        access_token=sim.access_token,
        timeout=REST_TIMEOUT_S,
    )
    yield KiteOrders(rest)
    await rest.aclose()


@pytest.fixture
def execution(store: TriggerStore) -> ExecutionStore:
    return ExecutionStore(store, owner="engine-a")


def executor(port: Any, execution: ExecutionStore) -> Executor:
    return Executor(
        port,
        execution,
        throttle=Throttle([Limit(10, 1.0)]),  # Kite's orders per second
        policy=RetryPolicy(max_retries=2, backoff=0.01, lookups=3),
        rng=random.Random(7),
    )


def tags(trigger: Trigger, size: int = SIZE) -> list[str]:
    return [broker_tag(trigger.id, Leg.FIRST, k) for k in range(size)]


def per_tag(sim: Simulator, trigger: Trigger, size: int = SIZE) -> list[int]:
    """Orders at the simulator carrying each position's tag."""
    book = Counter(str(order.get("tag")) for order in sim.orders())
    return [book[tag] for tag in tags(trigger, size)]


async def basket(store: TriggerStore, size: int = SIZE) -> Trigger:
    return (await store.create(make_basket(size))).trigger


def fired(trigger: Trigger) -> Fired:
    return Fired(trigger, Leg.FIRST, 101_000)


async def test_a_20_order_basket_is_placed_in_listed_order_each_with_its_own_tag(
    sim: Simulator, kite: KiteOrders, store: TriggerStore, execution: ExecutionStore
) -> None:
    """One claim, twenty orders in listed order with twenty distinct tags, each once;
    the trigger `placed` with the first order's id; each order's row placed with its id."""
    trigger = await basket(store)
    started = time.perf_counter()
    outcome = await executor(kite, execution).execute(fired(trigger))
    took = time.perf_counter() - started  # shown, not asserted: speed is for benches
    print(f"\n20-order basket [{store.db.engine.dialect.name}]: fire -> finished {took:.2f} s")
    assert outcome is Outcome.PLACED
    orders = sim.orders()
    assert [o["tag"] for o in orders] == tags(trigger)
    assert len(set(tags(trigger))) == SIZE
    assert [o["quantity"] for o in orders] == list(range(1, SIZE + 1))  # listed order
    record = await store.load(trigger.id)
    assert record is not None
    assert record.status is Status.PLACED
    assert record.order_id == orders[0]["order_id"]
    assert record.broker_tag == broker_tag(trigger.id, Leg.FIRST)
    assert record.attempts == SIZE
    rows = await order_rows(store, trigger.id)
    assert [(r.position, r.status, r.order_id, r.tag, r.attempts) for r in rows] == [
        (k, ORDER_PLACED, o["order_id"], o["tag"], 1) for k, o in enumerate(orders)
    ]
    history = await store.history("alice", trigger.id)
    kinds = Counter(e.kind for e in history)
    assert kinds[EventKind.CLAIMED] == 1
    assert kinds[EventKind.ORDER_SENT] == SIZE
    assert kinds[EventKind.PLACED] == SIZE + 1  # each order's, then the trigger's
    assert history[-1].kind is EventKind.PLACED
    assert "position" not in history[-1].payload
    sent = [e.payload["position"] for e in history if e.kind is EventKind.ORDER_SENT]
    assert sent == list(range(SIZE))


# One fault per order, on the orders of a 20-order basket (RELIABILITY 18).
FAULTS: dict[int, dict[str, Any]] = {
    2: {"kind": "never_answer"},  # a timeout with the order accepted
    5: {"kind": "error", "error_type": "NetworkException"},  # 5xx before accepting
    8: {"kind": "accept_then_error", "error_type": "GeneralException"},  # 5xx after accepting
    11: {"kind": "error", "error_type": "InputException", "message": "Quantity too large"},
    14: {"kind": "accept_then_close"},  # accepted, the connection cut
    17: {"kind": "error", "error_type": "NetworkException", "status": 429},
}
FINAL = 11


async def test_faults_on_single_orders_place_each_order_at_most_once(
    sim: Simulator, kite: KiteOrders, store: TriggerStore, execution: ExecutionStore
) -> None:
    """Timeouts, 5xx before and after acceptance, a connection cut, a 429 and one final
    refusal, each on its own order: every tag at most once at the simulator, the final
    refusal does not stop the rest, every order placed or failed with a reason, and the
    trigger `failed` naming the one failed position."""
    trigger = await basket(store)
    port = FaultsAt(kite, sim, FAULTS)
    outcome = await executor(port, execution).execute(fired(trigger))
    counts = per_tag(sim, trigger)
    rows = await order_rows(store, trigger.id)
    record = await store.load(trigger.id)
    assert record is not None
    by_tag = {str(o["tag"]): o for o in sim.orders()}
    never_sent = [k for k in range(SIZE) if counts[k] == 0 and k != FINAL]
    wrong = [
        r.position
        for r in rows
        if (r.status == ORDER_PLACED) != (r.position != FINAL)
        or (r.status == ORDER_PLACED and by_tag[r.tag]["order_id"] != r.order_id)
    ]
    print(
        f"\nRELIABILITY 18 [{store.db.engine.dialect.name}] faults at {sorted(FAULTS)}: "
        f"orders per tag at the sim {dict(Counter(counts))}, orders never sent {len(never_sent)}, "
        f"wrong statuses {len(wrong)}, requests per faulted order "
        f"{ {k: port.sent[k] for k in sorted(FAULTS)} }, trigger {record.status.value}"
    )
    assert max(counts) == 1
    assert counts[FINAL] == 0
    assert never_sent == []
    assert wrong == []
    assert len(rows) == SIZE
    assert outcome is Outcome.FAILED
    assert record.status is Status.FAILED
    assert record.error_message == "1 of 20 orders failed: position 11: Quantity too large"
    assert record.order_id == by_tag[tags(trigger)[0]]["order_id"]
    failed = rows[FINAL]
    assert (failed.status, failed.error_message) == (ORDER_FAILED, "Quantity too large")
    # Ambiguous answers were looked up, never simply resent; a 5xx before acceptance and a
    # 429 were sent again (nothing had been accepted).
    assert [port.sent[k] for k in (2, 8, 14)] == [1, 1, 1]
    assert [port.sent[k] for k in (5, 17)] == [2, 2]
    history = await store.history("alice", trigger.id)
    assert sum(e.kind is EventKind.ORDER_SENT for e in history) == record.attempts
    assert record.attempts == sum(r.attempts for r in rows) == SIZE + 2


async def test_a_basket_without_a_final_refusal_is_placed_despite_ambiguous_faults(
    sim: Simulator, kite: KiteOrders, store: TriggerStore, execution: ExecutionStore
) -> None:
    """The same faults but the final one: every order placed once, the trigger placed."""
    trigger = await basket(store)
    faults = {k: v for k, v in FAULTS.items() if k != FINAL}
    outcome = await executor(FaultsAt(kite, sim, faults), execution).execute(fired(trigger))
    assert outcome is Outcome.PLACED
    assert per_tag(sim, trigger) == [1] * SIZE
    record = await store.load(trigger.id)
    assert record is not None
    assert (record.status, record.error_message) == (Status.PLACED, None)


async def test_an_expired_session_on_the_first_order_releases_the_basket(
    sim: Simulator, kite: KiteOrders, store: TriggerStore, execution: ExecutionStore
) -> None:
    """TokenException before anything of the basket was placed: released as today, the
    trigger armed again and its order rows cleared; nothing at the broker."""
    trigger = await basket(store, 3)
    port = FaultsAt(kite, sim, {0: {"kind": "error", "error_type": "TokenException"}})
    with pytest.raises(AuthExpired):
        await executor(port, execution).execute(fired(trigger))
    record = await store.load(trigger.id)
    assert record is not None
    assert record.status is Status.ACTIVE
    assert sim.orders() == []
    assert await order_rows(store, trigger.id) == []
    # Armed again: its next fire starts the basket afresh and places all three.
    assert await executor(kite, execution).execute(fired(trigger)) is Outcome.PLACED
    assert per_tag(sim, trigger, 3) == [1, 1, 1]


async def test_an_expired_session_after_an_order_was_placed_keeps_the_claim_for_recovery(
    sim: Simulator, kite: KiteOrders, store: TriggerStore, execution: ExecutionStore
) -> None:
    """TokenException on the third order: two are placed, so the trigger stays
    `triggered`; with a session again, recovery sends only the rest."""
    trigger = await basket(store, 5)
    port = FaultsAt(kite, sim, {2: {"kind": "error", "error_type": "TokenException"}})
    with pytest.raises(AuthExpired):
        await executor(port, execution).execute(fired(trigger))
    record = await store.load(trigger.id)
    assert record is not None
    assert record.status is Status.TRIGGERED
    assert per_tag(sim, trigger, 5) == [1, 1, 0, 0, 0]
    (left,) = await execution.adopt(own=True, tag_of=kite.tag)
    assert [i.position for i in left.basket] == [2, 3, 4]
    assert left.intent == left.basket[0]
    outcome = await executor(kite, execution).settle_basket(left.basket, ambiguous=True)
    assert outcome is Outcome.PLACED
    assert per_tag(sim, trigger, 5) == [1] * 5


@pytest.mark.parametrize("after_send", [False, True], ids=["before_send", "after_answer"])
async def test_recovery_after_a_crash_mid_basket_never_resends_a_placed_order(
    sim: Simulator,
    kite: KiteOrders,
    store: TriggerStore,
    execution: ExecutionStore,
    after_send: bool,
) -> None:
    """The process dies at the sixth order (before its request, or after its answer with
    the outcome unwritten): adoption returns only the unsettled orders, each is looked up
    by tag first, and every tag ends at the simulator exactly once."""
    trigger = await basket(store)
    crashing = FaultsAt(kite, sim, crash_at=5, crash_after_send=after_send)
    with pytest.raises(Crash):
        await executor(crashing, execution).execute(fired(trigger))
    rows = await order_rows(store, trigger.id)
    assert [r.status for r in rows[:5]] == [ORDER_PLACED] * 5
    (left,) = await execution.adopt(own=True, tag_of=kite.tag)
    assert [i.position for i in left.basket] == list(range(5, SIZE))
    assert [i.tag for i in left.basket] == tags(trigger)[5:]
    restarted = FaultsAt(kite, sim)
    outcome = await executor(restarted, execution).settle_basket(left.basket, ambiguous=True)
    assert outcome is Outcome.PLACED
    assert per_tag(sim, trigger) == [1] * SIZE
    assert restarted.sent[5] == (0 if after_send else 1)  # found by its tag, not resent
    assert all(restarted.sent[k] == 0 for k in range(5))
    record = await store.load(trigger.id)
    assert record is not None
    assert record.status is Status.PLACED


async def test_an_old_basket_claim_places_what_the_broker_has_and_sends_nothing(
    sim: Simulator, kite: KiteOrders, store: TriggerStore, execution: ExecutionStore
) -> None:
    """A claim past the resend window: orders the broker has are placed, the others
    failed as not sent again; the trigger failed naming them."""
    trigger = await basket(store, 4)
    with pytest.raises(Crash):
        await executor(FaultsAt(kite, sim, crash_at=2), execution).execute(fired(trigger))
    (left,) = await execution.adopt(own=True, tag_of=kite.tag)
    before = len(sim.orders())
    outcome = await executor(kite, execution).settle_basket(
        left.basket, ambiguous=True, resend=False
    )
    assert outcome is Outcome.FAILED
    assert len(sim.orders()) == before == 2
    record = await store.load(trigger.id)
    assert record is not None
    assert record.status is Status.FAILED
    assert record.error_message == (
        f"2 of 4 orders failed: position 2: {GIVEN_UP}; position 3: {GIVEN_UP}"
    )


async def test_a_lost_basket_claim_is_reconciled_and_recovery_sends_the_rest(
    sim: Simulator, kite: KiteOrders, store: TriggerStore, execution: ExecutionStore
) -> None:
    """A basket's claim lost with the database (the row `active`, no order rows) while
    five of its orders reached the broker: reconciliation claims it under this engine and
    records those five; recovery sends only the other fifteen."""
    trigger = await basket(store)
    intents = make_intents(trigger)
    placed = [await kite.place(intent) for intent in intents[:5]]
    settled = await execution.reconcile(await kite.orders(), kite.tag)
    assert [(s.trigger_id, s.order_id, s.was) for s in settled] == [
        (trigger.id, placed[0], Status.ACTIVE)
    ]
    record = await store.load(trigger.id)
    assert record is not None
    assert (record.status, record.claimed_by) == (Status.TRIGGERED, "engine-a")
    assert record.broker_tag == tags(trigger)[0]
    rows = await order_rows(store, trigger.id)
    assert [(r.position, r.status, r.order_id) for r in rows] == [
        (k, ORDER_PLACED, placed[k]) for k in range(5)
    ]
    (left,) = await execution.adopt(own=True, tag_of=kite.tag)
    assert [i.position for i in left.basket] == list(range(5, SIZE))
    port = FaultsAt(kite, sim)
    assert await executor(port, execution).settle_basket(left.basket, ambiguous=True) is (
        Outcome.PLACED
    )
    assert per_tag(sim, trigger) == [1] * SIZE
    assert sorted(port.sent) == list(range(5, SIZE))  # (a 429 from Kite's 10/s is resent)
    # Read again, the book changes nothing: every order is already on its row.
    assert await execution.reconcile(await kite.orders(), kite.tag) == []


async def test_reconciliation_records_an_order_of_a_triggered_basket_and_finishes_it(
    sim: Simulator, kite: KiteOrders, store: TriggerStore, execution: ExecutionStore
) -> None:
    """The last order was answered but its outcome never written (a crash): the book read
    at start-up records it on its row, and the basket, now all settled, is placed."""
    trigger = await basket(store, 3)
    with pytest.raises(Crash):
        await executor(FaultsAt(kite, sim, crash_at=2, crash_after_send=True), execution).execute(
            fired(trigger)
        )
    settled = await execution.reconcile(await kite.orders(), kite.tag)
    assert [s.was for s in settled] == [Status.TRIGGERED]
    record = await store.load(trigger.id)
    assert record is not None
    assert record.status is Status.PLACED
    assert await execution.adopt(own=True, tag_of=kite.tag) == []
    assert per_tag(sim, trigger, 3) == [1, 1, 1]


def make_intents(trigger: Trigger) -> tuple[OrderIntent, ...]:
    return orders_for(trigger, Leg.FIRST, tags(trigger))


async def test_baskets_of_two_triggers_fired_together_each_place_once(
    sim: Simulator, kite: KiteOrders, store: TriggerStore, execution: ExecutionStore
) -> None:
    """Two 10-order baskets fired on one tick share the throttle: 20 orders, each once."""
    first, second = await basket(store, 10), await basket(store, 10)
    run = executor(kite, execution)
    outcomes = await asyncio.gather(run.execute(fired(first)), run.execute(fired(second)))
    assert outcomes == [Outcome.PLACED, Outcome.PLACED]
    assert per_tag(sim, first, 10) == per_tag(sim, second, 10) == [1] * 10
