"""Trigger model v2 in the store, on SQLite and PostgreSQL: a watched instrument, baskets
of up to 20 orders, time legs, not_before and on_gap round-trip through every read;
v1 triggers and rows stay exactly as they were."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Uuid, bindparam, select, text

from hmt.core.errors import InvalidTrigger
from hmt.core.events import EventKind
from hmt.core.instruments import Instrument
from hmt.core.lifecycle import Status
from hmt.core.model import Fired, LegSpec, OrderSpec, Trigger
from hmt.core.types import (
    MAX_BASKET,
    Cause,
    Direction,
    Exchange,
    InstrumentToken,
    Leg,
    OnGap,
    OrderType,
    Product,
    Side,
    TriggerId,
    TriggerType,
    Validity,
)
from hmt.kite.tags import broker_tag
from hmt.store.db import Database
from hmt.store.loading import _COLUMNS, V2_COLUMNS, converter
from hmt.store.records import OrderState, trigger_from_row, user_columns
from hmt.store.tables import gtt_orders, trigger_events, trigger_orders
from hmt.store.triggers import TriggerStore
from tests.store.conftest import Clock
from tests.support.claimer import LEASE, claim
from tests.support.factories import make_trigger

IST = timezone(timedelta(hours=5, minutes=30))
NIFTY = Instrument(
    id=InstrumentToken(256265),
    exchange=Exchange.NSE,
    tradingsymbol="NIFTY 50",
    price_divisor=100,
    tick_size=5,
    lot_size=0,
    tradable=False,
)
USDINR = Instrument(
    id=InstrumentToken(412675),
    exchange=Exchange.CDS,
    tradingsymbol="USDINR26DECFUT",
    price_divisor=10_000_000,
    tick_size=25_000,
    lot_size=1,
)
PUT, CALL = InstrumentToken(12_000_001), InstrumentToken(12_000_002)
ORDER_TYPES = [OrderType.SL, OrderType.SL_M, OrderType.LIMIT, OrderType.MARKET]


def option_order(position: int, **overrides: Any) -> OrderSpec:
    """One order of a basket: options on NFO, order types and validities in turn."""
    order_type = ORDER_TYPES[position % len(ORDER_TYPES)]
    values: dict[str, Any] = {
        "instrument_token": PUT if position % 2 == 0 else CALL,
        "exchange": Exchange.NFO,
        "tradingsymbol": "NIFTY26DEC23800PE" if position % 2 == 0 else "NIFTY26DEC24200CE",
        "side": Side.BUY if position % 3 else Side.SELL,
        "quantity": 75 * (position + 1),
        "product": Product.NRML,
        "order_type": order_type,
        "price": 10_105 + position * 5 if order_type in (OrderType.SL, OrderType.LIMIT) else None,
        "trigger_price": 10_000 + position * 5
        if order_type in (OrderType.SL, OrderType.SL_M)
        else None,
        "validity": Validity.IOC if order_type is OrderType.LIMIT else Validity.DAY,
        "price_divisor": 100,
    }
    return OrderSpec(**{**values, **overrides})


def basket(size: int) -> tuple[OrderSpec, ...]:
    return tuple(option_order(position) for position in range(size))


def v2_trigger(**overrides: Any) -> Trigger:
    """An oco watching NIFTY 50: a stop at 23,800 (a basket of 20), and a time leg at
    15:15 IST; not before 09:20, skipping missed touches."""
    first = option_order(0)
    values: dict[str, Any] = {
        "id": TriggerId(str(uuid.uuid4())),
        "user_id": "alice",
        "instrument_token": first.instrument_token,
        "exchange": first.exchange,
        "tradingsymbol": first.tradingsymbol,
        "trigger_type": TriggerType.OCO,
        "side": first.side,
        "trigger_price_1": 2_380_000,
        "trigger_price_2": 0,
        "quantity": first.quantity,
        "product": first.product,
        "order_type": OrderType.MARKET,
        "watch_token": NIFTY.id,
        "leg_specs": (
            LegSpec(direction=Direction.AT_OR_BELOW, orders=basket(MAX_BASKET)),
            LegSpec(at=datetime(2026, 3, 2, 15, 15, tzinfo=IST), orders=(option_order(1),)),
        ),
        "not_before": datetime(2026, 3, 2, 9, 20, tzinfo=IST),
        "on_gap": OnGap.SKIP,
    }
    return Trigger(**{**values, **overrides})


async def raw_row(db: Database, trigger_id: str) -> dict[str, Any]:
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(gtt_orders).where(gtt_orders.c.id == trigger_id))).one()
    return dict(row._mapping)


async def loaded(store: TriggerStore, invalid: list[tuple[str, Exception]]) -> list[Trigger]:
    found: list[Trigger] = []
    async for batch in store.stream_active(on_invalid=lambda i, e: invalid.append((i, e))):
        found += batch
    return found


async def test_a_v2_trigger_reads_back_as_written_through_every_read(
    store: TriggerStore,
) -> None:
    """Watch, a basket of 20 (SL, SL-M, LIMIT, MARKET; DAY and IOC), a time leg, not_before
    and on_gap: create, get, list, load and the start-up load all return the same trigger."""
    trigger = v2_trigger()
    created = await store.create(trigger, watch=NIFTY)
    assert created.trigger == trigger
    assert (created.watch_exchange, created.watch_tradingsymbol) == (Exchange.NSE, "NIFTY 50")
    assert created.watch_price_divisor == 100
    assert created.orders == ()  # nothing fired yet: no order rows
    assert (await store.get("alice", trigger.id)) == created
    assert await store.list("alice") == [created]
    assert await store.load(trigger.id) == created
    invalid: list[tuple[str, Exception]] = []
    assert await loaded(store, invalid) == [trigger]
    assert invalid == []
    assert created.trigger.trigger_price_2 == 0  # a time leg's threshold in the core
    assert created.trigger.fire_at(Leg.SECOND) == datetime(2026, 3, 2, 9, 45, tzinfo=UTC)


async def test_the_row_keeps_rupees_and_utc_for_other_tools(
    store: TriggerStore, db: Database
) -> None:
    """In the table: thresholds in rupees (the time leg's NULL), each order's prices as
    exact decimal strings with its divisor, times in UTC, on_gap spelled out."""
    trigger = v2_trigger()
    await store.create(trigger, watch=NIFTY)
    row = await raw_row(db, trigger.id)
    assert row["trigger_price_1"] == Decimal("23800")
    assert row["trigger_price_2"] is None
    assert (row["watch_token"], row["watch_exchange"], row["watch_tradingsymbol"]) == (
        256265,
        "NSE",
        "NIFTY 50",
    )
    assert row["watch_price_divisor"] == 100
    assert row["on_gap"] == "skip"
    assert row["not_before"] == datetime(2026, 3, 2, 3, 50, tzinfo=UTC)
    stop, timed = row["legs"]
    assert stop["direction"] == "at_or_below"
    assert stop["at"] is None
    assert len(stop["orders"]) == MAX_BASKET
    assert stop["orders"][0] == {
        "instrument_token": PUT,
        "exchange": "NFO",
        "tradingsymbol": "NIFTY26DEC23800PE",
        "transaction_type": "SELL",
        "quantity": 75,
        "product": "NRML",
        "order_type": "SL",
        "price": "101.05",
        "trigger_price": "100",
        "validity": "DAY",
        "price_divisor": 100,
    }
    assert stop["orders"][1]["order_type"] == "SL-M"
    assert stop["orders"][1]["price"] is None
    assert stop["orders"][2]["validity"] == "IOC"
    assert timed == {
        "direction": None,
        "at": "2026-03-02T09:45:00+00:00",
        "orders": [stop["orders"][1]],
    }


async def test_a_watched_instrument_in_other_units_keeps_its_own(
    store: TriggerStore, db: Database
) -> None:
    """Thresholds are the watched instrument's prices: USDINR's in 10^7, while the traded
    order's stay in paise; the claim's triggered price is in the watched units too."""
    trigger = make_trigger(
        watch_token=USDINR.id,
        trigger_price_1=835_000_000,  # 83.5 rupees in 10^7 units
        leg_specs=(LegSpec(direction=Direction.AT_OR_ABOVE),),
    )
    created = await store.create(trigger, watch=USDINR)
    assert created.trigger == trigger
    row = await raw_row(db, trigger.id)
    assert row["trigger_price_1"] == Decimal("83.5")
    assert row["legs"] == [{"direction": "at_or_above", "at": None, "orders": []}]
    assert await claim(store, trigger, Leg.FIRST, 835_025_000)
    record = await store.get("alice", trigger.id)
    assert record.triggered_price == 835_025_000
    assert (await raw_row(db, trigger.id))["triggered_price"] == Decimal("83.5025")


async def test_a_single_time_leg_is_null_in_the_table_and_zero_in_the_core(
    store: TriggerStore, db: Database
) -> None:
    """`trigger_price_1` NULL for a time leg; its claim records no price."""
    at = datetime(2026, 3, 2, 15, 15, tzinfo=IST)
    trigger = make_trigger(trigger_price_1=0, product=Product.MIS, leg_specs=(LegSpec(at=at),))
    created = await store.create(trigger)
    assert created.trigger == trigger
    assert (await raw_row(db, trigger.id))["trigger_price_1"] is None
    assert await loaded(store, []) == [trigger]
    fired = Fired(trigger, Leg.FIRST, 0, Cause.TIME)
    tag = broker_tag(trigger.id, Leg.FIRST)
    assert await store.claim(fired, tag, owner="engine-a", lease=LEASE)
    record = await store.get("alice", trigger.id)
    assert record.status is Status.TRIGGERED
    assert record.triggered_price is None
    fired_event = (await store.history("alice", trigger.id))[1]
    assert fired_event.kind is EventKind.FIRED
    assert fired_event.payload == {"leg": 1, "ltp": None, "cause": "time"}


async def test_a_claim_sees_an_edit_of_any_v2_field(store: TriggerStore) -> None:
    """The engine fired on what it loaded: after an edit of the basket, the watched
    instrument's direction, not_before or on_gap, that claim fails; the fresh one wins."""
    trigger = v2_trigger(trigger_type=TriggerType.SINGLE, trigger_price_2=None)
    trigger = dataclasses.replace(trigger, leg_specs=trigger.leg_specs[:1])
    await store.create(trigger, watch=NIFTY)
    edits: list[dict[str, Any]] = [
        {"leg_specs": (LegSpec(direction=Direction.AT_OR_BELOW, orders=basket(3)),)},
        {"leg_specs": (LegSpec(direction=Direction.AT_OR_ABOVE, orders=basket(3)),)},
        {"not_before": None},
        {"on_gap": OnGap.FIRE},
    ]
    current = trigger
    for edit in edits:
        edited = (await store.update("alice", trigger.id, edit)).trigger
        assert edited == dataclasses.replace(current, **edit)
        assert not await claim(store, current, Leg.FIRST, 2_379_000)
        current = edited
    assert await claim(store, current, Leg.FIRST, 2_379_000)


async def test_edits_keep_or_need_the_watched_instrument(store: TriggerStore) -> None:
    """An edit watching the same instrument keeps its stored entry; one watching another
    needs the new entry, which must be that instrument; back to the traded one clears it."""
    trigger = v2_trigger()
    await store.create(trigger, watch=NIFTY)
    kept = await store.update("alice", trigger.id, {"trigger_price_1": 2_370_000})
    assert (kept.watch_tradingsymbol, kept.trigger.trigger_price_1) == ("NIFTY 50", 2_370_000)
    bank = dataclasses.replace(NIFTY, id=InstrumentToken(260105), tradingsymbol="NIFTY BANK")
    with pytest.raises(InvalidTrigger) as needed:
        await store.update("alice", trigger.id, {"watch_token": bank.id})
    assert [(e.field, e.rule) for e in needed.value.errors] == [("watch", "required")]
    with pytest.raises(InvalidTrigger) as wrong:
        await store.update("alice", trigger.id, {"watch_token": bank.id}, watch=NIFTY)
    assert [(e.field, e.rule) for e in wrong.value.errors] == [("watch", "mismatch")]
    moved = await store.update("alice", trigger.id, {"watch_token": bank.id}, watch=bank)
    assert (moved.trigger.watch_token, moved.watch_tradingsymbol) == (bank.id, "NIFTY BANK")
    traded = await store.update("alice", trigger.id, {"watch_token": None})
    assert traded.trigger.watch_token is None
    assert (traded.watch_exchange, traded.watch_tradingsymbol, traded.watch_price_divisor) == (
        None,
        None,
        None,
    )
    assert (await store.get("alice", trigger.id)) == traded


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"leg_specs": (LegSpec(orders=basket(MAX_BASKET + 1)),)}, "legs[0].orders", "basket"),
        ({"watch_token": None}, "watch", "mismatch"),
        ({"trigger_type": TriggerType.SINGLE, "trigger_price_2": None}, "legs", "count"),
        ({"trigger_price_2": 2_400_000}, "trigger_price_2", "time_leg"),
        ({"not_before": datetime(2026, 3, 2, 9, 20)}, "not_before", "timezone"),  # noqa: DTZ001
    ],
)
async def test_a_v2_trigger_the_table_cannot_hold_is_refused_whole(
    store: TriggerStore, db: Database, change: dict[str, Any], field: str, rule: str
) -> None:
    """Nothing half-written: the error names the field and the rule, and with another
    valid trigger in the same `create_many` neither is stored (no row, no event)."""
    bad = v2_trigger(**change)
    with pytest.raises(InvalidTrigger) as refused:
        await store.create_many([v2_trigger(), bad], watches=[NIFTY, NIFTY])
    assert (field, rule) in [(e.field, e.rule) for e in refused.value.errors]
    async with db.engine.connect() as conn:
        for table in ("hmt_gtt_orders", "hmt_trigger_events"):
            assert (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 0


async def test_create_many_stores_v1_and_v2_triggers_together(store: TriggerStore) -> None:
    """One transaction holds both shapes, each with its own watched entry (or none)."""
    v1, v2 = make_trigger(), v2_trigger()
    records = await store.create_many([v1, v2], watches=[None, NIFTY])
    assert [r.trigger for r in records] == [v1, v2]
    assert [r.watch_tradingsymbol for r in records] == [None, "NIFTY 50"]
    assert sorted(t.id for t in await loaded(store, [])) == sorted([v1.id, v2.id])


async def test_a_basket_record_carries_its_order_rows(
    store: TriggerStore, db: Database, clock: Clock
) -> None:
    """A fired basket's rows (as the executor writes them) come with every read of the
    record, by position; one-order legs have none."""
    trigger = v2_trigger()
    await store.create(trigger, watch=NIFTY)
    one = await store.create(make_trigger())
    assert await claim(store, trigger, Leg.FIRST, 2_379_500)
    written = [
        ("placed", "260302000000001", None, 1),
        ("failed", None, "Insufficient funds", 1),
        ("pending", None, None, 2),
    ]
    async with db.engine.begin() as conn:
        await conn.execute(
            trigger_orders.insert(),
            [
                {
                    "trigger_id": trigger.id,
                    "leg": 1,
                    "position": position,
                    "user_id": "alice",
                    "tag": f"HMTTAG{position:014d}",
                    "status": status,
                    "order_id": order_id,
                    "error_message": error,
                    "attempts": attempts,
                    "updated_at": clock.now,
                }
                for position, (status, order_id, error, attempts) in reversed(
                    list(enumerate(written))
                )
            ],
        )
    expected = tuple(
        OrderState(Leg.FIRST, position, f"HMTTAG{position:014d}", status, order_id, error, n)
        for position, (status, order_id, error, n) in enumerate(written)
    )
    record = await store.get("alice", trigger.id)
    assert record.orders == expected
    assert (await store.load(trigger.id)) == record
    assert {r.id: r.orders for r in await store.list("alice")} == {
        trigger.id: expected,
        one.id: (),
    }
    assert [r.orders for r in await store.in_status(Status.TRIGGERED)] == [expected]
    assert (await store.get("alice", one.id)).orders == ()


async def test_v1_triggers_write_what_they_always_wrote(store: TriggerStore, db: Database) -> None:
    """A v1 trigger's row has every v2 column NULL, its `created` and `updated` events carry
    exactly the v1 columns, and it reads back as v1."""
    trigger = make_trigger()
    created = await store.create(trigger)
    await store.update("alice", trigger.id, {"trigger_price_1": 160_500})
    row = await raw_row(db, trigger.id)
    v2_columns = (
        "watch_token",
        "watch_exchange",
        "watch_tradingsymbol",
        "watch_price_divisor",
        "legs",
        "not_before",
        "on_gap",
    )
    assert {column: row[column] for column in v2_columns} == dict.fromkeys(v2_columns)
    async with db.engine.connect() as conn:  # SQL NULL, not JSON null: the load's fast path
        nulls = await conn.execute(text("SELECT count(*) FROM hmt_gtt_orders WHERE legs IS NULL"))
        assert nulls.scalar_one() == 1
    async with db.engine.connect() as conn:
        payloads = (await conn.execute(select(trigger_events.c.payload))).scalars().all()
    v1_keys = {
        "status",
        "instrument_token",
        "exchange",
        "tradingsymbol",
        "trigger_type",
        "transaction_type",
        "trigger_price_1",
        "trigger_price_2",
        "quantity",
        "product",
        "order_type",
        "limit_price_1",
        "limit_price_2",
        "expires_at",
        "price_divisor",
    }
    assert [set(payload) for payload in payloads] == [v1_keys, v1_keys]
    assert created.trigger.is_v1
    assert (await store.get("alice", trigger.id)).trigger.is_v1


async def test_another_tools_unknown_order_type_skips_that_row_only(
    store: TriggerStore, db: Database
) -> None:
    """An order type hmt does not know in `legs`: the load skips that row and names the
    field; the other rows load; a direct read refuses it naming the field."""
    good, unknown = make_trigger(), v2_trigger()
    await store.create(good)
    await store.create(unknown, watch=NIFTY)
    specs = (await raw_row(db, unknown.id))["legs"]
    specs[0]["orders"][3]["order_type"] = "BRACKET"
    async with db.engine.begin() as conn:
        await conn.execute(
            gtt_orders.update().where(gtt_orders.c.id == unknown.id).values(legs=specs)
        )
    invalid: list[tuple[str, Exception]] = []
    assert [t.id for t in await loaded(store, invalid)] == [good.id]
    [(trigger_id, error)] = invalid
    assert trigger_id == unknown.id
    assert isinstance(error, InvalidTrigger)
    assert [(e.field, e.rule) for e in error.errors] == [("legs[0].orders[3].order_type", "enum")]
    with pytest.raises(InvalidTrigger, match=r"legs\[0\]\.orders\[3\]\.order_type"):
        await store.get("alice", unknown.id)


async def test_unreadable_legs_json_skips_that_row_only(store: TriggerStore, db: Database) -> None:
    """SQLite keeps whatever text another tool wrote (PostgreSQL's JSONB refuses it on
    write): the load skips that row naming `legs` instead of ending."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's JSONB column refuses text that is not JSON")
    good, broken = make_trigger(), v2_trigger()
    await store.create(good)
    await store.create(broken, watch=NIFTY)
    statement = text("UPDATE hmt_gtt_orders SET legs = :legs WHERE id = :id").bindparams(
        bindparam("id", type_=Uuid(as_uuid=False))
    )
    async with db.engine.begin() as conn:
        await conn.execute(statement, {"legs": '[{"orders": [', "id": broken.id})
    invalid: list[tuple[str, Exception]] = []
    assert [t.id for t in await loaded(store, invalid)] == [good.id]
    [(trigger_id, error)] = invalid
    assert trigger_id == broken.id
    assert isinstance(error, InvalidTrigger)
    assert [(e.field, e.rule) for e in error.errors] == [("legs", "json")]


def test_the_loaders_converter_reads_a_v2_row_by_name_as_the_records_do() -> None:
    """A v2 row converts to the same trigger in either column order, and to what
    `records.trigger_from_row` makes of it; a v1 row beside it takes the fast path."""
    trigger = v2_trigger()
    row = {
        **user_columns(trigger, NIFTY.price_divisor),
        "id": trigger.id,
        "user_id": trigger.user_id,
        "watch_price_divisor": NIFTY.price_divisor,
    }
    row["legs"] = json.dumps(row["legs"])  # as the load reads it: text
    names = [c.name for c in (*_COLUMNS, *V2_COLUMNS)]
    forward = converter(names)([row[name] for name in names])
    backward = converter(names[::-1])([row[name] for name in names[::-1]])
    assert forward == backward == trigger
    assert trigger_from_row({**row, "status": "active"}) == trigger
    v1 = make_trigger()
    v1_row = {**user_columns(v1), "id": v1.id, "user_id": v1.user_id, "watch_price_divisor": None}
    assert converter(names)([v1_row[name] for name in names]) == v1
