"""The engine's reconciliation with the broker's order book: when it runs, what firing waits for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import pytest

from hmt.core.model import OrderIntent, Trigger
from hmt.core.types import Leg
from hmt.engine import service as service_module
from hmt.engine.accounts import AccountExecutors
from hmt.engine.executor import Executor
from hmt.engine.health import Verdict
from hmt.engine.service import Engine
from hmt.engine.session import BrokerSession
from hmt.kite.tags import broker_tag
from tests.engine.test_service import NOW, engine
from tests.support.eventually import eventually
from tests.support.factories import INFY, make_trigger
from tests.support.ports import Broker, ClaimLedger, Feed, Source


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "RECONCILE_RETRY_S", 0.01)


async def test_a_trigger_whose_order_the_book_shows_is_placed_at_start_and_never_sent() -> None:
    """A lost claim (the row active, its order at the broker): start-up settles it from the
    book before the load, so it is not in the book and a crossing tick sends nothing."""
    lost, armed = make_trigger(trigger_price_1=100), make_trigger(trigger_price_1=100)
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [lost, armed]), Broker(), Feed()
    broker.book[broker_tag(lost.id, Leg.FIRST)] = ["900"]
    service = engine(source, broker, feed)
    await service.start()
    assert not service.holding
    assert broker.books == 1
    assert ledger.status[lost.id] == "placed"
    assert lost.id not in service.book
    assert service.stats.reconciled == 1
    service.on_ltp(INFY, 101)
    await service.drain()
    assert len(broker.sends) == 1  # the armed one only
    assert ledger.status[armed.id] == "placed"
    assert broker.book[broker_tag(lost.id, Leg.FIRST)] == ["900"]


async def test_an_unreadable_book_holds_firing_until_it_is_read() -> None:
    """The book cannot be read at start: the engine runs, counts ticks and keeps prices,
    fires nothing, and says why in /health; once read, the next crossing tick fires."""
    trigger = make_trigger(trigger_price_1=100)
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [trigger]), Broker(book_errors=3), Feed()
    service = engine(source, broker, feed)
    await service.start()
    assert service.holding
    service.on_ltp(INFY, 101)
    await service.drain()
    assert broker.sends == []
    assert service.last_ltp[INFY] == 101
    assert service.stats.ticks_processed == 1
    assert trigger.id in service.book
    await eventually(lambda: not service.holding)
    assert broker.books == 4
    service.on_ltp(INFY, 101)
    await service.drain()
    assert ledger.status[trigger.id] == "placed"
    await service.stop()


async def test_health_is_down_while_firing_is_held() -> None:
    """Holding firing is an outage an operator must see: /health's verdict says why."""
    from hmt.engine.health import Observations, judge

    seen = Observations(
        enabled=True,
        running=True,
        ticker_connected=True,
        last_tick_age=1.0,
        database_reachable=True,
        broker_session_valid=True,
        active_triggers=1,
        reconciling=True,
    )
    health = judge(seen)
    assert health.verdict is Verdict.DOWN
    assert "order book" in health.reasons[0]


async def test_a_database_reconnection_holds_firing_and_settles_rolled_back_claims() -> None:
    """After a reconnection a row whose claim was lost reads active again while the broker
    has its order: it is settled as placed, not put back in the book, and nothing is resent;
    a row rolled back without an order is armed again."""
    ordered, unordered = make_trigger(trigger_price_1=100), make_trigger(trigger_price_1=100)
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [ordered, unordered]), Broker(), Feed()
    service = engine(source, broker, feed)
    await service.start()
    service.on_ltp(INFY, 101)
    await service.drain()
    assert len(broker.sends) == 2
    # The server lost both claims and their outcomes; one order had reached the broker.
    del broker.book[broker_tag(unordered.id, Leg.FIRST)]
    ledger.status[ordered.id] = ledger.status[unordered.id] = "active"
    service.database_reconnected()
    assert service.holding  # at once, before any other task runs
    service.on_ltp(INFY, 101)
    assert len(broker.sends) == 2
    await eventually(lambda: not service.holding)
    assert ledger.status[ordered.id] == "placed"
    assert ordered.id not in service.book
    assert unordered.id in service.book
    service.on_ltp(INFY, 101)
    await service.drain()
    assert len(broker.sends) == 3
    assert len(broker.book[broker_tag(ordered.id, Leg.FIRST)]) == 1
    await service.stop()


async def test_a_resync_leaves_out_triggers_whose_order_task_is_running() -> None:
    """A rebuild of the book while an order is in flight keeps that trigger out even if its
    row reads active (its claim lost): its own task settles it."""
    trigger = make_trigger(trigger_price_1=100)
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [trigger]), Broker(), Feed()
    service = engine(source, broker, feed)
    await service.start()
    service._in_flight.add(trigger.id)  # as while its task runs
    await service.resync()
    assert trigger.id not in service.book
    service._in_flight.discard(trigger.id)
    await service.resync()
    assert trigger.id in service.book


async def test_an_order_whose_claim_is_rolled_back_in_flight_is_settled_not_resent() -> None:
    """The database loses the claim while the order is on its way: the outcome cannot be
    written (the row reads active), so the engine reconciles at once: placed, never resent."""
    trigger = make_trigger(trigger_price_1=100)
    ledger = ClaimLedger()
    source = Source(ledger, [trigger])

    def rolled_back(broker: Broker, intent: OrderIntent) -> str:
        order_id = broker.accept(intent)
        ledger.status[intent.trigger_id] = "active"  # the server restarted without the claim
        return order_id

    broker, feed = Broker(rolled_back), Feed()
    service = engine(source, broker, feed)
    await service.start()
    service.on_ltp(INFY, 101)
    await service.drain()
    await eventually(lambda: not service.holding)
    assert ledger.status[trigger.id] == "placed"
    assert trigger.id not in service.book
    service.on_ltp(INFY, 101)
    await service.drain()
    assert len(broker.sends) == 1
    await service.stop()


async def test_a_trigger_armed_while_firing_is_held_fires_only_once_the_book_is_read() -> None:
    """A create armed while the broker's order book cannot be read joins the book but
    fires nothing; once the book is read, a crossing tick places it."""
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger), Broker(book_errors=2), Feed()
    service = engine(source, broker, feed)
    await service.start()
    assert service.holding
    created = make_trigger(trigger_price_1=100)
    source.rows[created.id] = created
    await service.arm(created)
    assert created.id in service.book
    assert INFY in feed.tokens
    service.on_ltp(INFY, 101)
    await service.drain()
    assert broker.sends == []
    await eventually(lambda: not service.holding)
    service.on_ltp(INFY, 101)
    await service.drain()
    assert ledger.status[created.id] == "placed"
    await service.stop()


async def test_arm_never_puts_back_a_trigger_whose_order_task_is_running() -> None:
    """`arm` leaves out a trigger whose order is on its way (as a rebuild does)."""
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger), Broker(), Feed()
    service = engine(source, broker, feed)
    await service.start()
    trigger = make_trigger(trigger_price_1=100)
    source.rows[trigger.id] = trigger
    service._in_flight.add(trigger.id)  # as while its task runs
    await service.arm(trigger)
    assert trigger.id not in service.book
    service._in_flight.discard(trigger.id)
    await service.arm(trigger)
    assert trigger.id in service.book


async def test_a_trigger_armed_while_the_book_is_rebuilt_is_in_the_new_book() -> None:
    """A create committed and armed while a rebuild reads the store (after the read passed
    it) is not lost when the rebuilt book replaces the old one."""
    ledger = ClaimLedger()
    old = make_trigger(trigger_price_1=100)
    source, broker, feed = Source(ledger, [old]), Broker(), Feed()
    service = engine(source, broker, feed)
    await service.start()
    created = make_trigger(trigger_price_1=100)
    reading = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_batches() -> AsyncIterator[list[Trigger]]:
        batch = [source.rows[i] for i in sorted(source.active_ids())]  # read before the create
        reading.set()
        await go_on.wait()
        yield batch

    source.active_batches = slow_batches  # type: ignore[method-assign]
    rebuild = asyncio.create_task(service.resync())
    await reading.wait()
    source.rows[created.id] = created  # committed, then armed, mid-read
    await service.arm(created)
    go_on.set()
    await rebuild
    assert old.id in service.book
    assert created.id in service.book
    assert INFY in feed.tokens
    await service.stop()


async def test_beside_a_linked_account_the_default_ones_missing_login_parks_only_its_own() -> None:
    """No default session yet, a linked account valid: the linked account's book is read
    and its trigger fires; the default account's triggers fire into the park (nothing
    sent). Its login then reads its book first: a lost claim's order there is settled as
    placed, never sent again, and the other parked trigger fires on the next tick."""
    lost = make_trigger(trigger_price_1=100)
    waiting = make_trigger(trigger_price_1=100)
    theirs = make_trigger(trigger_price_1=100, account="second")
    ledger = ClaimLedger()
    source, default_broker, feed = Source(ledger, [lost, waiting, theirs]), Broker(), Feed()
    default_broker.book[broker_tag(lost.id, Leg.FIRST)] = ["900"]
    second_broker = Broker()
    session = BrokerSession(awaiting_login=True)
    service = engine(source, default_broker, feed, session)
    executors = AccountExecutors(cast(Executor, service._executor))
    second = engine(source, second_broker, feed)._executor
    executors.add("second", cast(Executor, second), BrokerSession())
    service = Engine(
        source=source, feed=feed, executor=executors, clock=lambda: NOW, session=session
    )
    await service.start()
    assert not service.holding  # the linked account's book was read
    assert (default_broker.books, second_broker.books) == (0, 1)
    service.on_ltp(INFY, 101)
    await service.drain()
    assert ledger.status[theirs.id] == "placed"
    assert len(second_broker.sends) == 1
    assert default_broker.sends == []
    assert service.paused_triggers("default") == {lost.id, waiting.id}
    assert lost.id not in ledger.status  # never claimed
    assert waiting.id not in ledger.status

    session.renew("a-token")
    await eventually(lambda: service.paused_triggers("default") == frozenset())
    assert default_broker.books == 1
    assert ledger.status[lost.id] == "placed"  # from its book: not sent
    service.on_ltp(INFY, 102)
    await service.drain()
    assert ledger.status[waiting.id] == "placed"
    assert len(default_broker.sends) == 1
    assert default_broker.book[broker_tag(lost.id, Leg.FIRST)] == ["900"]
    await service.stop()


async def test_the_last_linked_account_unlinked_puts_the_defaults_parked_triggers_back() -> None:
    """The default account's triggers parked beside a linked account are not lost when that
    account is unlinked: back in the book, held as a lone default account's are (nothing
    fires without its session), its book read at its login before they fire."""
    lost, waiting = make_trigger(trigger_price_1=100), make_trigger(trigger_price_1=100)
    ledger = ClaimLedger()
    source, default_broker, feed = Source(ledger, [lost, waiting]), Broker(), Feed()
    default_broker.book[broker_tag(lost.id, Leg.FIRST)] = ["900"]
    session = BrokerSession(awaiting_login=True)
    executors = AccountExecutors(cast(Executor, engine(source, default_broker, feed)._executor))
    executors.add(
        "second", cast(Executor, engine(source, Broker(), feed)._executor), BrokerSession()
    )
    service = Engine(
        source=source, feed=feed, executor=executors, clock=lambda: NOW, session=session
    )
    await service.start()
    service.on_ltp(INFY, 101)
    await service.drain()
    assert service.paused_triggers("default") == {lost.id, waiting.id}

    service.remove_account("second")
    await eventually(lambda: waiting.id in service.book)
    assert lost.id in service.book
    assert service.paused_triggers("default") == frozenset()
    service.on_ltp(INFY, 101)  # no session: a lone default account fires nothing
    await service.drain()
    assert default_broker.sends == []
    session.renew("a-token")
    await eventually(lambda: not service.holding)  # its book was read first
    assert ledger.status[lost.id] == "placed"
    service.on_ltp(INFY, 102)
    await service.drain()
    assert ledger.status[waiting.id] == "placed"
    assert len(default_broker.sends) == 1
    await service.stop()
