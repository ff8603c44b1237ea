"""The engine service's decisions: firing, subscriptions following the book, recovery, login.

Port stand-ins make each situation happen on cue; the system tests run the same
service over the simulator, the ticker client and a real store.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from hmt.core.broker import ErrorKind
from hmt.core.model import InFlight, Trigger
from hmt.core.rules import order_for
from hmt.core.throttle import Limit, Throttle
from hmt.core.types import Leg, Side, TriggerId
from hmt.engine.executor import Executor, RetryPolicy
from hmt.engine.service import Engine, EngineConfig, EngineState
from hmt.engine.session import BrokerSession, SessionState
from hmt.kite.tags import broker_tag
from hmt.waits import cancel_all
from tests.support.eventually import eventually
from tests.support.factories import INFY, RELIANCE, make_oco, make_trigger
from tests.support.ports import Broker, ClaimLedger, Feed, Source, fail

NOW = datetime(2026, 11, 24, 9, 15, tzinfo=UTC)


def engine(
    source: Source,
    broker: Broker,
    feed: Feed,
    session: BrokerSession | None = None,
    **config: object,
) -> Engine:
    executor = Executor(
        broker,
        source.ledger,
        throttle=Throttle([Limit(100, 1.0)]),
        policy=RetryPolicy(max_retries=1, backoff=0.001, lookups=2),
        rng=random.Random(1),
    )
    return Engine(
        source=source,
        feed=feed,
        executor=executor,
        clock=lambda: NOW,
        config=EngineConfig(**config),  # type: ignore[arg-type]
        session=session,
    )


async def test_start_loads_and_subscribes_then_a_tick_places_once() -> None:
    """Start loads every active trigger and subscribes; a crossing tick places one order."""
    buy = make_trigger(trigger_price_1=100)
    other = make_trigger(instrument_token=RELIANCE, trigger_price_1=500)
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [buy, other]), Broker(), Feed()
    service = engine(source, broker, feed)
    await service.start()
    assert service.state is EngineState.RUNNING
    assert feed.tokens == {INFY, RELIANCE}
    service.on_ltp(INFY, 99)
    service.on_ltp(INFY, 100)
    service.on_ltp(INFY, 101)  # a second crossing tick: the trigger is already gone
    await service.drain()
    assert sum(len(ids) for ids in broker.book.values()) == 1
    assert ledger.status[buy.id] == "placed"
    assert feed.tokens == {RELIANCE}, "unsubscribed after the instrument's last trigger"
    assert service.stats.ticks_processed == 3
    assert service.stats.triggered_orders == 1
    assert service.stats.latency()["tick_to_order_us"]["count"] == 1


async def test_rehearsals_run_while_ticks_flow_and_a_tick_still_places_exactly_once() -> None:
    """The firing path's rehearsals (issue 12) touch neither the book, the order tasks,
    the counters nor the subscriptions: a crossing tick among them fires and places
    once, and a second crossing tick finds nothing; a quiet feed gets none."""
    buy = make_trigger(trigger_price_1=100)
    other = make_trigger(instrument_token=RELIANCE, trigger_price_1=500)
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [buy, other]), Broker(), Feed()
    service = engine(source, broker, feed, rehearse_every=0.001)
    await service.start()
    rehearsing = asyncio.create_task(service.run_rehearsals())
    try:
        for _ in range(3):  # no ticks yet: nothing can fire, nothing is rehearsed
            await asyncio.sleep(0.002)
        assert service.rehearsals == 0

        async def ticking() -> bool:
            service.on_ltp(RELIANCE, 400)  # fires nothing
            await asyncio.sleep(0.001)
            return service.rehearsals >= 3

        await eventually(ticking)
        assert "rehearsal" not in service.book
        assert len(service.book) == 2
        assert feed.tokens == {INFY, RELIANCE}
        assert service.stats.triggers_fired == 0
        assert service.stats.latency()["evaluate_us"]["count"] == 0
        service.on_ltp(INFY, 100)
        service.on_ltp(INFY, 101)  # a second crossing tick: the trigger is already gone
        await eventually(ticking)  # rehearsed again while the order is under way
        await service.drain()
    finally:
        await cancel_all([rehearsing])
    assert sum(len(ids) for ids in broker.book.values()) == 1
    assert ledger.status[buy.id] == "placed"
    assert list(service.book) == [other]
    assert feed.tokens == {RELIANCE}
    assert service.stats.triggers_fired == 1
    assert service.stats.triggered_orders == 1
    assert service.stats.latency()["evaluate_us"]["count"] == 1
    assert service.stats.latency()["tick_to_order_us"]["count"] == 1


class HeldFeed(Feed):
    """A feed whose start waits for the test: the engine stays STARTING, its load done."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def start(self) -> None:
        await self.gate.wait()
        await super().start()


async def test_triggers_created_or_edited_while_starting_are_armed_once_running() -> None:
    """The load may read the store before a create or an edit commits, and SQLite has no
    change feed to bring them in later: what `arm` and `refresh` were asked for while
    the engine was starting is read again once it runs (chaos seed 0, SQLite: a trailing
    oco created during a restart stayed `active` and never fired)."""
    edited = make_trigger(trigger_price_1=500, instrument_token=RELIANCE)
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [edited]), Broker(), HeldFeed()
    service = engine(source, broker, feed)
    starting = asyncio.create_task(service.start())
    await eventually(lambda: feed.tokens == {RELIANCE})  # loaded, subscribed, not running
    assert service.state is EngineState.STARTING
    created = make_trigger(trigger_price_1=100)
    source.rows[created.id] = created
    await service.arm(created)  # as the API does after its commit
    source.rows[edited.id] = make_trigger(
        id=edited.id, trigger_price_1=200, instrument_token=RELIANCE
    )
    await service.refresh(edited.id)  # as the API does after an edit
    feed.gate.set()
    await starting
    assert service.state is EngineState.RUNNING
    assert created.id in service.book
    assert feed.tokens == {INFY, RELIANCE}
    service.on_ltp(INFY, 100)
    service.on_ltp(RELIANCE, 200)  # the edited price, not the loaded 500
    await service.drain()
    assert ledger.status[created.id] == "placed"
    assert ledger.status[edited.id] == "placed"


class SlowRead(Source):
    """A source whose read of one id waits for the test."""

    def __init__(self, ledger: ClaimLedger, triggers: list[Trigger], slow: str) -> None:
        super().__init__(ledger, triggers)
        self.slow, self.gate = slow, asyncio.Event()

    async def active(self, trigger_id: TriggerId) -> Trigger | None:
        if trigger_id == self.slow and self.reading and not self.gate.is_set():
            await self.gate.wait()
        return await super().active(trigger_id)

    reading = False


async def test_a_tick_while_the_starting_edits_are_read_again_is_evaluated() -> None:
    """The ids asked for while starting are read again once the hold is decided: a tick
    that arrives meanwhile fires what the load armed (it was dropped, held, when they were
    read before the hold was lifted)."""
    loaded = make_trigger(trigger_price_1=100)
    edited = make_trigger(trigger_price_1=500, instrument_token=RELIANCE)
    ledger = ClaimLedger()
    source, broker, feed = SlowRead(ledger, [loaded, edited], edited.id), Broker(), HeldFeed()
    service = engine(source, broker, feed)
    starting = asyncio.create_task(service.start())
    await eventually(lambda: feed.tokens == {INFY, RELIANCE})
    await service.refresh(edited.id)  # while starting: read again once running
    source.reading = True
    feed.gate.set()
    await eventually(lambda: service.state is EngineState.RUNNING)
    assert not starting.done(), "the starting edit is being read"
    service.on_ltp(INFY, 100)
    source.gate.set()
    await starting
    await service.drain()
    assert ledger.status[loaded.id] == "placed"


async def test_oco_places_one_leg_only() -> None:
    """An oco whose price crosses one leg and later the other places exactly one order."""
    oco = make_oco(Side.SELL, 90, 110)
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [oco]), Broker(), Feed()
    service = engine(source, broker, feed)
    await service.start()
    service.on_ltp(INFY, 111)
    service.on_ltp(INFY, 80)
    await service.drain()
    assert list(broker.book) == [order_for(oco, Leg.SECOND, broker_tag(oco.id, Leg.SECOND)).tag]


async def test_refresh_follows_edits_and_cancels() -> None:
    """An edited trigger fires at its new price; a cancelled one leaves book and subscription."""
    trigger = make_trigger(trigger_price_1=100)
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [trigger]), Broker(), Feed()
    service = engine(source, broker, feed)
    await service.start()
    source.rows[trigger.id] = make_trigger(id=trigger.id, trigger_price_1=200)
    await service.refresh(trigger.id)
    service.on_ltp(INFY, 150)
    assert trigger.id in service.book
    ledger.status[trigger.id] = "cancelled"
    await service.refresh(trigger.id)
    assert trigger.id not in service.book
    assert feed.tokens == set()
    await service.drain()
    assert broker.sends == []


async def test_lost_claim_puts_the_current_row_back() -> None:
    """When an edit wins the claim, the book takes the edited trigger and nothing is sent."""
    trigger = make_trigger(trigger_price_1=100)
    ledger = ClaimLedger(claimable=False)
    source, broker, feed = Source(ledger, [trigger]), Broker(), Feed()
    service = engine(source, broker, feed)
    await service.start()
    source.rows[trigger.id] = make_trigger(id=trigger.id, trigger_price_1=300)
    service.on_ltp(INFY, 100)
    await service.drain()
    assert broker.sends == []
    assert service.book.get(trigger.id) == source.rows[trigger.id]
    assert service.stats.lost_claims == 1


async def test_expired_session_holds_fire_until_a_new_token() -> None:
    """A 403 expires the session (login_required, the trigger re-armed); a new token resumes."""
    trigger = make_trigger(trigger_price_1=100)
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [trigger]), Broker(fail(ErrorKind.AUTH)), Feed()
    session = BrokerSession([feed])
    service = engine(source, broker, feed, session)
    await service.start()
    service.on_ltp(INFY, 100)
    await service.drain()
    assert service.state is EngineState.LOGIN_REQUIRED
    assert session.state is SessionState.EXPIRED
    assert ledger.status[trigger.id] == "active"
    assert trigger.id in service.book
    service.on_ltp(INFY, 101)
    await service.drain()
    assert len(broker.sends) == 1, "no attempt while the session is invalid"
    session.renew("new-token")
    assert feed.access_token == "new-token"
    assert service.state is EngineState.RUNNING
    service.on_ltp(INFY, 101)
    await service.drain()
    assert ledger.status[trigger.id] == "placed"
    assert len(broker.sends) == 2


async def test_recovery_finds_resends_recent_and_gives_up_on_old() -> None:
    """At start: found by tag -> placed; absent and recent -> sent; absent and old -> failed."""
    found, recent, old = (make_trigger(trigger_price_1=p) for p in (100, 101, 102))
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [found, recent, old]), Broker(), Feed()
    for trigger in (found, recent, old):
        ledger.status[trigger.id] = "triggered"
    broker.accept(order_for(found, Leg.FIRST, broker_tag(found.id, Leg.FIRST)))
    source.left = [
        InFlight(
            order_for(found, Leg.FIRST, broker_tag(found.id, Leg.FIRST)), NOW - timedelta(hours=2)
        ),
        InFlight(
            order_for(recent, Leg.FIRST, broker_tag(recent.id, Leg.FIRST)),
            NOW - timedelta(seconds=5),
        ),
        InFlight(
            order_for(old, Leg.FIRST, broker_tag(old.id, Leg.FIRST)), NOW - timedelta(hours=2)
        ),
    ]
    service = engine(source, broker, feed)
    await service.start()
    assert ledger.status == {found.id: "placed", recent.id: "placed", old.id: "failed"}
    assert len(broker.sends) == 1, "only the recent one was sent"
    assert source.given_up == [old.id]


async def test_kill_switch_loads_nothing() -> None:
    """With the engine disabled nothing loads, subscribes or fires."""
    trigger = make_trigger(trigger_price_1=100)
    source, broker, feed = Source(ClaimLedger(), [trigger]), Broker(), Feed()
    service = engine(source, broker, feed, enabled=False)
    await service.start()
    service.on_ltp(INFY, 100)
    assert service.state is EngineState.DISABLED
    assert len(service.book) == 0
    assert feed.tokens == set()
    assert not feed.running


async def test_stop_drains_and_start_resumes() -> None:
    """Stop lets in-flight orders finish and closes the feed; start loads the book again."""
    trigger, later = make_trigger(trigger_price_1=100), make_trigger(trigger_price_1=200)
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [trigger, later]), Broker(), Feed()
    service = engine(source, broker, feed)
    await service.start()
    service.on_ltp(INFY, 100)
    await service.stop()
    assert ledger.status[trigger.id] == "placed"
    assert not feed.running
    assert len(service.book) == 0
    await service.start()
    assert set(service.book.instruments()) == {INFY}
    assert later.id in service.book


async def test_settle_expired_settles_claims_another_engine_left() -> None:
    """A sweep adopts expired claims and settles each by tag: found is placed, recent is sent,
    an old one absent at the broker fails; claims it did not adopt are left alone."""
    found, recent, old, live = (make_trigger(trigger_price_1=p) for p in (100, 101, 102, 103))
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [found, recent, old, live]), Broker(), Feed()
    service = engine(source, broker, feed)
    await service.start()
    for trigger in (found, recent, old, live):
        ledger.status[trigger.id] = "triggered"  # claimed by engine A, which then died
    intents = {
        t.id: order_for(t, Leg.FIRST, broker_tag(t.id, Leg.FIRST)) for t in (found, recent, old)
    }
    broker.accept(intents[found.id])
    source.expired = [
        InFlight(intents[found.id], NOW - timedelta(seconds=40)),
        InFlight(intents[recent.id], NOW - timedelta(seconds=40)),
        InFlight(intents[old.id], NOW - timedelta(hours=2)),
    ]
    assert await service.settle_expired() == 3
    await service.drain()
    assert ledger.status == {
        found.id: "placed",
        recent.id: "placed",
        old.id: "failed",
        live.id: "triggered",
    }
    assert len(broker.sends) == 1, "only the recent one was sent"
    assert source.given_up == [old.id]
    assert await service.settle_expired() == 0


async def test_a_refresh_that_read_the_row_before_a_fire_does_not_put_it_back() -> None:
    """A trigger fires while an edit's re-read is under way: the stale row is not re-armed."""
    buy = make_trigger(trigger_price_1=100)
    ledger = ClaimLedger()
    source, broker, feed = Source(ledger, [buy]), Broker(), Feed()
    service = engine(source, broker, feed)
    await service.start()
    read, release = asyncio.Event(), asyncio.Event()
    original = source.active

    async def slow_active(trigger_id):  # type: ignore[no-untyped-def]
        row = await original(trigger_id)  # read while still active, before the fire
        read.set()
        await release.wait()
        return row

    source.active = slow_active  # type: ignore[method-assign]
    refreshing = asyncio.create_task(service.refresh(buy.id))
    await read.wait()
    claim = ledger.claim

    async def held_claim(fired, tag, *, sending=False):  # type: ignore[no-untyped-def]
        release.set()  # the refresh finishes while this claim is still undecided
        await refreshing
        return await claim(fired, tag, sending=sending)

    ledger.claim = held_claim  # type: ignore[method-assign]
    service.on_ltp(INFY, 100)  # fires: the order task runs the claim above
    await service.drain()
    assert buy.id not in service.book, "the stale active row was armed again"
    service.on_ltp(INFY, 101)
    await service.drain()
    assert sum(len(ids) for ids in broker.book.values()) == 1
    assert service.stats.lost_claims == 0
