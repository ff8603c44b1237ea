"""The trigger repository, run identically on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from hmt.core.errors import DuplicateTrigger, IllegalTransition, InvalidTrigger
from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.types import Exchange, InstrumentToken, Leg, OrderType, Side, TriggerId, UserId
from hmt.kite.tags import broker_tag
from hmt.store.db import Database
from hmt.store.tables import gtt_orders, trigger_events
from hmt.store.triggers import OverCap, TriggerNotFound, TriggerStore
from tests.store.conftest import Clock
from tests.support.claimer import claim
from tests.support.factories import make_oco, make_trigger

CDS_TOKEN = InstrumentToken(412675)  # segment 3: prices in units of 1e-7 rupees


async def rows(db: Database, table: str = "hmt_gtt_orders") -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_create_then_get_round_trips(store: TriggerStore) -> None:
    """A stored trigger reads back field for field, with server fields initialised."""
    trigger = make_oco(
        Side.SELL,
        240_005,
        280_010,
        order_type=OrderType.LIMIT,
        limit_price_1=239_900,
        limit_price_2=280_000,
    )
    created = await store.create(trigger)
    got = await store.get("alice", trigger.id)
    assert got == created
    assert got.trigger == trigger
    assert got.attempts == 0
    assert got.created_at == store.clock()


async def test_a_create_over_the_cap_writes_nothing_and_says_how_many_are_live(
    store: TriggerStore, db: Database
) -> None:
    """With `cap`, the INSERT counts live triggers itself: at the cap nothing is written
    (no row, no event) and `OverCap` names the count; cancelled ones do not count."""
    first = await store.create(make_trigger(), cap=2)
    await store.create(make_trigger(), cap=2)
    with pytest.raises(OverCap) as refused:
        await store.create(make_trigger(), cap=2)
    assert (refused.value.live, refused.value.cap, refused.value.adding) == (2, 2, 1)
    assert await rows(db) == 2
    assert await rows(db, "hmt_trigger_events") == 2
    await store.create(make_trigger(user_id=UserId("bob")), cap=2)  # another user's own cap
    await store.cancel("alice", first.id)
    await store.create(make_trigger(), cap=2)  # a cancelled one frees its place
    with pytest.raises(OverCap) as bulk:
        await store.create_many([make_trigger(), make_trigger()], cap=3)
    assert (bulk.value.live, bulk.value.adding) == (2, 2)


async def test_prices_are_stored_as_exact_rupees(store: TriggerStore, db: Database) -> None:
    """The table holds 1600.05, not 160005 and not a float, so other tools read rupees."""
    trigger = make_trigger(trigger_price_1=160_005)
    await store.create(trigger)
    async with db.engine.connect() as conn:
        price = (await conn.execute(select(gtt_orders.c.trigger_price_1))).scalar_one()
    assert price == Decimal("1600.05")
    assert isinstance(price, Decimal)


async def test_finest_segment_keeps_seven_decimals(store: TriggerStore) -> None:
    """A currency price with 7 decimals survives the round trip exactly."""
    trigger = make_trigger(
        instrument_token=CDS_TOKEN,
        exchange=Exchange.CDS,
        tradingsymbol="USDINR",
        trigger_price_1=831_234_567,
    )
    await store.create(trigger)
    assert (await store.get("alice", trigger.id)).trigger.trigger_price_1 == 831_234_567


async def test_rows_written_by_other_tools_load(store: TriggerStore, db: Database) -> None:
    """A row inserted with plain SQL and a decimal literal loads in wire units."""
    trigger_id = str(uuid.uuid4())
    async with db.engine.begin() as conn:
        await conn.execute(
            gtt_orders.insert().values(
                id=trigger_id,
                user_id="alice",
                instrument_token=408065,
                exchange="NSE",
                tradingsymbol="INFY",
                trigger_type="single",
                transaction_type="BUY",
                trigger_price_1=Decimal("1600.05"),
                quantity=1,
                product="CNC",
                order_type="MARKET",
                status="active",
                created_at=store.clock(),
                updated_at=store.clock(),
            )
        )
    assert (await store.get("alice", trigger_id)).trigger.trigger_price_1 == 160_005


async def test_create_writes_a_created_event(store: TriggerStore) -> None:
    """The history starts with `created`, carrying the prices in rupees."""
    trigger = make_trigger()
    await store.create(trigger)
    [event] = await store.history("alice", trigger.id)
    assert event.kind is EventKind.CREATED
    assert event.payload["trigger_price_1"] == "1600"


async def test_invalid_trigger_writes_nothing(store: TriggerStore, db: Database) -> None:
    """A rule broken at create raises with the field named, and leaves no row or event."""
    with pytest.raises(InvalidTrigger, match="trigger_price_2"):
        await store.create(make_oco(Side.SELL, 280_000, 240_000))
    with pytest.raises(InvalidTrigger, match="id"):
        await store.create(make_trigger(id=TriggerId("not-a-uuid")))
    assert await rows(db) == 0
    assert await rows(db, "hmt_trigger_events") == 0


async def test_duplicate_id_is_refused(store: TriggerStore, db: Database) -> None:
    """Creating the same id twice fails the second time without a second event."""
    trigger = make_trigger()
    await store.create(trigger)
    with pytest.raises(DuplicateTrigger):
        await store.create(trigger)
    assert await rows(db, "hmt_trigger_events") == 1


async def test_other_users_triggers_are_not_found(store: TriggerStore) -> None:
    """Bob cannot see, list, edit or cancel Alice's trigger: it looks missing."""
    trigger = make_trigger()
    await store.create(trigger)
    await store.create(make_trigger(user_id=UserId("bob")))
    for attempt in (
        store.get("bob", trigger.id),
        store.history("bob", trigger.id),
        store.update("bob", trigger.id, {"quantity": 1}),
        store.cancel("bob", trigger.id),
        store.get("alice", "no-such-id"),
        store.get("alice", str(uuid.uuid4())),
    ):
        with pytest.raises(TriggerNotFound):
            await attempt
    assert [r.id for r in await store.list("alice")] == [trigger.id]
    assert (await store.get("alice", trigger.id)).status is Status.ACTIVE


async def test_list_filters_and_pages(store: TriggerStore, clock: Clock) -> None:
    """List filters by status and instrument and returns newest first."""
    first = make_trigger()
    await store.create(first)
    clock.advance(seconds=1)
    second = make_trigger(instrument_token=InstrumentToken(738561), tradingsymbol="RELIANCE")
    await store.create(second)
    await store.pause("alice", second.id)
    assert [r.id for r in await store.list("alice")] == [second.id, first.id]
    assert [r.id for r in await store.list("alice", status=Status.PAUSED)] == [second.id]
    assert [r.id for r in await store.list("alice", instrument_token=408065)] == [first.id]
    assert [r.id for r in await store.list("alice", limit=1, offset=1)] == [first.id]


async def test_update_validates_and_records(store: TriggerStore) -> None:
    """An edit changes the fields, revalidates the whole trigger and appends `updated`."""
    trigger = make_oco(Side.SELL, 240_000, 280_000)
    await store.create(trigger)
    edited = await store.update("alice", trigger.id, {"trigger_price_2": 290_000, "quantity": 5})
    assert edited.trigger.trigger_price_2 == 290_000
    assert edited.trigger.quantity == 5
    with pytest.raises(InvalidTrigger, match="oco_order"):
        await store.update("alice", trigger.id, {"trigger_price_2": 230_000})
    with pytest.raises(InvalidTrigger, match="status: is not a field"):
        await store.update("alice", trigger.id, {"status": Status.PLACED})
    with pytest.raises(InvalidTrigger, match="user_id"):
        await store.update("alice", trigger.id, {"user_id": "bob"})
    kinds = [e.kind for e in await store.history("alice", trigger.id)]
    assert kinds == [EventKind.CREATED, EventKind.UPDATED]
    assert (await store.get("alice", trigger.id)).trigger == edited.trigger


async def test_pause_resume_cancel_follow_the_lifecycle(store: TriggerStore) -> None:
    """Each change is a lifecycle transition with its event; illegal ones are refused."""
    trigger = make_trigger()
    await store.create(trigger)
    assert (await store.pause("alice", trigger.id)).status is Status.PAUSED
    with pytest.raises(IllegalTransition):
        await store.pause("alice", trigger.id)
    assert (await store.resume("alice", trigger.id)).status is Status.ACTIVE
    assert (await store.cancel("alice", trigger.id)).status is Status.CANCELLED
    with pytest.raises(IllegalTransition):
        await store.update("alice", trigger.id, {"quantity": 2})
    kinds = [e.kind for e in await store.history("alice", trigger.id)]
    assert kinds == [EventKind.CREATED, EventKind.PAUSED, EventKind.RESUMED, EventKind.CANCELLED]


async def test_claim_wins_once_and_records_the_leg(store: TriggerStore, db: Database) -> None:
    """The first claim moves the row to triggered with leg, price, tag, owner, lease and one
    attempt, and writes fired, claimed and the first order_sent together."""
    trigger = make_oco(Side.SELL, 240_000, 280_000)
    await store.create(trigger)
    assert await claim(store, trigger, Leg.SECOND, 280_005)
    assert not await claim(store, trigger, Leg.FIRST, 239_995, owner="engine-b")
    record = await store.get("alice", trigger.id)
    assert record.status is Status.TRIGGERED
    assert record.triggered_leg is Leg.SECOND
    assert record.triggered_price == 280_005
    assert record.broker_tag == broker_tag(trigger.id, Leg.SECOND)
    assert record.attempts == 1
    assert record.triggered_at == store.clock()
    async with db.engine.connect() as conn:
        owner, until = (
            await conn.execute(
                select(gtt_orders.c.claimed_by, gtt_orders.c.claim_expires_at).where(
                    gtt_orders.c.id == trigger.id
                )
            )
        ).one()
    assert (owner, until) == ("engine-a", store.clock() + timedelta(seconds=30))
    fired, claimed, sent = (await store.history("alice", trigger.id))[-3:]
    assert (fired.kind, claimed.kind, sent.kind) == (
        EventKind.FIRED,
        EventKind.CLAIMED,
        EventKind.ORDER_SENT,
    )
    assert fired.payload == {"leg": 2, "ltp": "2800.05"}
    assert claimed.payload == {
        "leg": 2,
        "ltp": "2800.05",
        "tag": record.broker_tag,
        "engine": "engine-a",
    }
    assert sent.payload == {"attempt": 1, "engine": "engine-a"}


async def test_claim_without_sending_counts_no_attempt(store: TriggerStore) -> None:
    """A claim whose order waits for the throttle records no order_sent and no attempt."""
    trigger = make_trigger()
    await store.create(trigger)
    assert await claim(store, trigger, sending=False)
    assert (await store.get("alice", trigger.id)).attempts == 0
    kinds = [e.kind for e in await store.history("alice", trigger.id)]
    assert kinds == [EventKind.CREATED, EventKind.FIRED, EventKind.CLAIMED]


async def test_claim_loses_to_edit_pause_cancel_and_expiry(
    store: TriggerStore, clock: Clock
) -> None:
    """A claim on what the engine saw fails after an edit, a pause, a cancel or expiry."""
    edited, paused, cancelled = make_trigger(), make_trigger(), make_trigger()
    expiring = make_trigger(expires_at=clock.now.replace(hour=10))
    for trigger in (edited, paused, cancelled, expiring):
        await store.create(trigger)
    await store.update("alice", edited.id, {"trigger_price_1": 170_000})
    await store.pause("alice", paused.id)
    await store.cancel("alice", cancelled.id)
    clock.advance(hours=1)
    for trigger in (edited, paused, cancelled, expiring):
        assert not await claim(store, trigger, Leg.FIRST, 175_000)
    assert (await store.get("alice", edited.id)).status is Status.ACTIVE


async def test_in_status_reads_every_users_triggers(store: TriggerStore) -> None:
    """in_status lists one status across users (start-up recovery reads every `triggered`)."""
    mine, theirs, idle = make_trigger(), make_trigger(user_id=UserId("bob")), make_trigger()
    for trigger in (mine, theirs, idle):
        await store.create(trigger)
    for trigger in (mine, theirs):
        assert await claim(store, trigger, Leg.FIRST, 160_000)
    triggered = await store.in_status(Status.TRIGGERED)
    assert sorted(r.id for r in triggered) == sorted([mine.id, theirs.id])
    assert [r.id for r in await store.in_status(Status.ACTIVE)] == [idle.id]


async def test_expire_due(store: TriggerStore, clock: Clock) -> None:
    """Active and paused triggers past expires_at become expired; others are untouched."""
    soon = clock.now.replace(hour=10)
    active, paused = make_trigger(expires_at=soon), make_trigger(expires_at=soon)
    later, forever = make_trigger(expires_at=soon.replace(hour=15)), make_trigger()
    for trigger in (active, paused, later, forever):
        await store.create(trigger)
    await store.pause("alice", paused.id)
    assert await store.expire_due() == []
    clock.advance(hours=1)
    assert sorted(await store.expire_due()) == sorted([active.id, paused.id])
    assert (await store.get("alice", later.id)).status is Status.ACTIVE
    assert (await store.get("alice", active.id)).status is Status.EXPIRED


async def test_stream_active_in_batches(store: TriggerStore, db: Database) -> None:
    """Every active trigger arrives, in bounded batches; paused ones and bad rows do not."""
    triggers = [make_trigger(trigger_price_1=100_000 + i * 5) for i in range(1200)]
    async with db.engine.begin() as conn:
        from hmt.store.records import user_columns

        await conn.execute(
            gtt_orders.insert(),
            [
                {
                    "id": t.id,
                    "user_id": t.user_id,
                    "status": "active",
                    "attempts": 0,
                    "created_at": store.clock(),
                    "updated_at": store.clock(),
                    **user_columns(t),
                }
                for t in triggers
            ],
        )
        # Another tool wrote a price finer than NSE's paise: skipped and reported.
        await conn.execute(
            gtt_orders.update()
            .where(gtt_orders.c.id == triggers[0].id)
            .values(trigger_price_1=Decimal("1600.001"))
        )
    paused = make_trigger()
    await store.create(paused)
    await store.pause("alice", paused.id)
    bad: list[str] = []
    sizes, seen = [], set()
    async for batch in store.stream_active(batch_size=500, on_invalid=lambda i, e: bad.append(i)):
        sizes.append(len(batch))
        seen.update(t.id for t in batch)
    assert max(sizes) <= 500
    assert seen == {t.id for t in triggers[1:]}
    assert bad == [triggers[0].id]
    assert {t.trigger_price_1 for t in triggers[1:]} == {
        t.trigger_price_1 for t in triggers if t.id in seen
    }


async def test_events_are_written_with_their_change(store: TriggerStore, db: Database) -> None:
    """Each row change has its events: one each, and the claim's `fired` note besides."""
    trigger = make_trigger()
    await store.create(trigger)
    await store.pause("alice", trigger.id)
    await store.resume("alice", trigger.id)
    await claim(store, trigger, sending=False)
    async with db.engine.connect() as conn:
        count = (
            await conn.execute(
                select(func.count())
                .select_from(trigger_events)
                .where(trigger_events.c.trigger_id == trigger.id)
            )
        ).scalar_one()
    assert count == 5  # created, paused, resumed, fired + claimed


async def test_claim_compares_prices_as_decimals(store: TriggerStore, db: Database) -> None:
    """A price another tool wrote as "1600.50" still claims: values compare, not text."""
    trigger = make_trigger(trigger_price_1=160_050)
    await store.create(trigger)
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE hmt_gtt_orders SET trigger_price_1 = '1600.50'"))
    loaded = (await store.get("alice", trigger.id)).trigger
    assert loaded == trigger
    assert await claim(store, loaded, Leg.FIRST, 160_050)


async def test_create_many_writes_all_or_none(store: TriggerStore, db: Database) -> None:
    """A batch with a bad or a duplicate trigger writes nothing; a good one writes every row."""
    good = [make_trigger(trigger_price_1=160_000 + i) for i in range(3)]
    with pytest.raises(InvalidTrigger):
        await store.create_many([*good, make_trigger(quantity=0)])
    with pytest.raises(DuplicateTrigger):
        await store.create_many([*good, good[0]])  # fails at the fourth insert, after three
    with pytest.raises(ValueError, match="one user"):
        await store.create_many([good[0], make_trigger(user_id=UserId("bob"))])
    assert (await rows(db), await rows(db, "hmt_trigger_events")) == (0, 0)
    created = await store.create_many(good)
    assert [r.trigger for r in created] == good
    assert (await rows(db), await rows(db, "hmt_trigger_events")) == (3, 3)


async def test_keyset_pages_cover_ties_once_and_count_matches_the_filter(
    store: TriggerStore, clock: Clock
) -> None:
    """Five triggers created at one instant and two later page by (created_at, id) without gaps."""
    await store.create_many([make_trigger(trigger_price_1=160_000 + i) for i in range(5)])
    clock.advance(seconds=1)
    for i in range(2):
        await store.create(make_trigger(trigger_price_1=170_000 + i, status=Status.PAUSED))
    everything = await store.list("alice")
    assert [r.created_at for r in everything[:2]] == [clock()] * 2  # newest first
    paged, after = [], None
    while True:
        page = await store.list("alice", limit=2, after=after)
        if not page:
            break
        paged += page
        after = (page[-1].created_at, page[-1].trigger.id)
    assert [r.trigger.id for r in paged] == [r.trigger.id for r in everything]
    assert len(paged) == 7
    assert await store.count("alice") == 7
    assert await store.count("alice", status=Status.PAUSED) == 2
    assert await store.count("bob") == 0
