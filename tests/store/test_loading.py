"""The start-up load reads each column by name, into the field the specification gives it."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from hmt.core.errors import InvalidTrigger
from hmt.core.instruments import Instrument
from hmt.core.lifecycle import Status
from hmt.core.model import LegSpec, Trigger
from hmt.core.types import (
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
    UserId,
)
from hmt.store.db import Database
from hmt.store.execution import ExecutionStore
from hmt.store.loading import (
    _COLUMNS,
    _ENUM_SEPARATOR,
    _OPEN_TRIGGER,
    _PG_QUERY_DIRECT,
    ENUM_NAMES,
    ENUMS,
    PRICE_NAMES,
    REST,
    REST_NAMES,
    UNITS,
    PriceSource,
    RowPath,
    _make_trigger,
    active_triggers,
    converter,
    direct_converter,
)
from hmt.store.records import trigger_from_row
from hmt.store.tables import gtt_orders
from hmt.store.triggers import TriggerStore
from tests.support.claimer import claim
from tests.support.factories import INFY, RELIANCE, make_trigger

USDINR = 412675  # NSE currency: 10^7 wire units per rupee
EXPIRES = datetime(2031, 7, 9, 11, 12, 13, tzinfo=UTC)


def distinct_row(trigger_id: str, **overrides: Any) -> dict[str, Any]:
    """An active CDS oco row in which no two fields share a value (a swap shows)."""
    row: dict[str, Any] = {
        "id": trigger_id,
        "user_id": "u-distinct",
        "instrument_token": USDINR,
        "exchange": "CDS",
        "tradingsymbol": "USDINR31JULFUT",
        "trigger_type": "oco",
        "transaction_type": "SELL",
        "trigger_price_1": Decimal("83.1234567"),
        "trigger_price_2": Decimal("84.7654321"),
        "quantity": 7,
        "product": "NRML",
        "order_type": "LIMIT",
        "limit_price_1": Decimal("83.1111111"),
        "limit_price_2": Decimal("84.2222222"),
        "status": "active",
        "attempts": 3,
        "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "updated_at": datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC),
        "expires_at": EXPIRES,
        "price_divisor": 10_000_000,
        "tick_size": Decimal("0.0025"),
        "lot_size": 1000,
        "account": "acct-distinct",
    }
    row.update(overrides)
    return row


def expected_trigger(trigger_id: str) -> Trigger:
    return Trigger(
        id=TriggerId(trigger_id),
        user_id=UserId("u-distinct"),
        instrument_token=InstrumentToken(USDINR),
        exchange=Exchange.CDS,
        tradingsymbol="USDINR31JULFUT",
        trigger_type=TriggerType.OCO,
        side=Side.SELL,
        trigger_price_1=831_234_567,
        trigger_price_2=847_654_321,
        quantity=7,
        product=Product.NRML,
        order_type=OrderType.LIMIT,
        limit_price_1=831_111_111,
        limit_price_2=842_222_222,
        status=Status.ACTIVE,
        expires_at=EXPIRES,
        price_divisor=10_000_000,
        account="acct-distinct",
    )


async def insert(db: Database, row: dict[str, Any]) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(gtt_orders.insert().values(row))


async def loaded(store: TriggerStore, invalid: list[tuple[str, Exception]]) -> list[Trigger]:
    found: list[Trigger] = []
    async for batch in store.stream_active(on_invalid=lambda i, e: invalid.append((i, e))):
        found += batch
    return found


async def test_every_field_lands_in_its_own_place(store: TriggerStore, db: Database) -> None:
    """A row of all-distinct values loads, and reads back as a record, field for field."""
    trigger_id = str(uuid.uuid4())
    await insert(db, distinct_row(trigger_id))
    invalid: list[tuple[str, Exception]] = []
    [trigger] = await loaded(store, invalid)
    assert invalid == []
    assert trigger == expected_trigger(trigger_id)
    record = await store.get("u-distinct", trigger_id)
    assert record.trigger == trigger
    assert (record.tick_size, record.lot_size, record.attempts) == (25_000, 1000, 3)
    assert record.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert record.updated_at == datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


async def test_record_fields_land_in_their_own_places(store: TriggerStore, db: Database) -> None:
    """The server's columns of a triggered row read back into the record's own fields."""
    trigger_id = str(uuid.uuid4())
    server = {
        "status": "triggered",
        "triggered_leg": 2,
        "triggered_price": Decimal("84.7654322"),
        "triggered_at": datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        "broker_tag": "tagdistinct",
        "order_id": "250101000000001",
        "error_message": "an error of its own",
    }
    await insert(db, distinct_row(trigger_id, **server))
    record = await store.get("u-distinct", trigger_id)
    assert record.status is Status.TRIGGERED
    assert record.triggered_leg is Leg.SECOND
    assert record.triggered_price == 847_654_322
    assert record.triggered_at == datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert (record.broker_tag, record.order_id) == ("tagdistinct", "250101000000001")
    assert record.error_message == "an error of its own"


async def test_the_stored_divisor_wins_over_the_token(store: TriggerStore, db: Database) -> None:
    """An NSE-looking token stored with divisor 10^4 is read in 10^4 units: nothing decodes it."""
    trigger_id = str(uuid.uuid4())
    await insert(db, distinct_row(trigger_id, instrument_token=408065, price_divisor=10_000,
                                  trigger_price_1=Decimal("83.1234"),
                                  trigger_price_2=Decimal("84.7654"),
                                  limit_price_1=Decimal("83.1111"),
                                  limit_price_2=Decimal("84.2222")))  # fmt: skip
    [trigger] = await loaded(store, [])
    assert (trigger.price_divisor, trigger.trigger_price_1) == (10_000, 831_234)
    assert (await store.get("u-distinct", trigger_id)).trigger == trigger


async def test_null_divisor_uses_the_broker_rule_or_is_refused(db: Database) -> None:
    """Another tool's row without a divisor: read with the fallback, else refused naming it."""
    trigger_id = str(uuid.uuid4())
    await insert(db, distinct_row(trigger_id, price_divisor=None))
    with_rule = TriggerStore(db, divisor_of=lambda token: {USDINR: 10_000_000}[token])
    [trigger] = await loaded(with_rule, [])
    assert trigger == expected_trigger(trigger_id)

    without = TriggerStore(db)
    invalid: list[tuple[str, Exception]] = []
    assert await loaded(without, invalid) == []
    [(bad_id, error)] = invalid
    assert bad_id == trigger_id
    assert isinstance(error, InvalidTrigger)
    assert [(e.field, e.rule) for e in error.errors] == [("price_divisor", "required")]
    with pytest.raises(InvalidTrigger, match="price_divisor"):
        await without.get("u-distinct", trigger_id)


async def test_a_claim_pins_the_divisor_it_read_with(db: Database) -> None:
    """Claiming a row stored without a divisor writes the one its prices were read with."""
    trigger_id = str(uuid.uuid4())
    await insert(db, distinct_row(trigger_id, price_divisor=None))
    store = TriggerStore(db, divisor_of=lambda token: 10_000_000)
    [trigger] = await loaded(store, [])
    assert await claim(store, trigger, Leg.FIRST, 831_234_567)
    without = TriggerStore(db)  # no fallback needed any more
    record = await without.get("u-distinct", trigger_id)
    assert (record.trigger.price_divisor, record.triggered_price) == (10_000_000, 831_234_567)


async def test_an_outcome_reads_a_triggered_row_with_the_broker_rule(db: Database) -> None:
    """Recovering another tool's triggered row without a divisor records its outcome."""
    trigger_id = str(uuid.uuid4())
    triggered = {"status": "triggered", "triggered_leg": 1, "broker_tag": "tagnulldiv"}
    await insert(db, distinct_row(trigger_id, price_divisor=None, **triggered))
    store = TriggerStore(db, divisor_of=lambda token: {USDINR: 10_000_000}[token])
    [in_flight] = await ExecutionStore(store).adopt(own=True)
    assert in_flight.intent.price_divisor == 10_000_000
    await ExecutionStore(store).placed(TriggerId(trigger_id), "250101000000002", 1)
    record = await store.get("u-distinct", trigger_id)
    assert (record.status, record.order_id) == (Status.PLACED, "250101000000002")


def test_converter_reads_by_name_whatever_the_column_order() -> None:
    """The same values in reversed column order convert to the same trigger."""
    trigger_id = str(uuid.uuid4())
    row = distinct_row(trigger_id)
    names = [c.name for c in _COLUMNS]
    forward = converter(names)([row[name] for name in names])
    backward = converter(names[::-1])([row[name] for name in names[::-1]])
    assert forward == backward == expected_trigger(trigger_id)
    assert trigger_from_row(row) == forward


def test_converter_refuses_a_query_missing_a_column() -> None:
    """A load whose query lacks a field's column stops at once, naming the column."""
    names = [c.name for c in _COLUMNS if c.name != "limit_price_2"]
    with pytest.raises(RuntimeError, match="limit_price_2"):
        converter(names)


def listed(token: int, symbol: str, tick: int, lot: int, **overrides: Any) -> Instrument:
    """The master's entry for an instrument, in paise unless `overrides` say otherwise."""
    fields: dict[str, Any] = {
        "id": InstrumentToken(token),
        "exchange": Exchange.NSE,
        "tradingsymbol": symbol,
        "price_divisor": 100,
        "tick_size": tick,
        "lot_size": lot,
    }
    return Instrument(**{**fields, **overrides})


async def test_instrument_grid_is_stored_and_follows_the_instrument(store: TriggerStore) -> None:
    """Tick and lot size are stored at create, replaced when an instrument is given, kept
    when none is, and cleared when an edit moves to another instrument without one."""
    trigger = make_trigger()
    created = await store.create(trigger, instrument=listed(INFY, "INFY", 5, 1))
    assert (created.tick_size, created.lot_size) == (5, 1)
    priced = await store.update(
        "alice", trigger.id, {"trigger_price_1": 160_010}, instrument=listed(INFY, "INFY", 10, 1)
    )
    assert (priced.tick_size, priced.lot_size) == (10, 1)
    kept = await store.update("alice", trigger.id, {"trigger_price_1": 160_020})
    assert (kept.tick_size, kept.lot_size) == (10, 1)
    moved = await store.update(
        "alice", trigger.id, {"instrument_token": RELIANCE, "tradingsymbol": "RELIANCE"}
    )
    assert (moved.tick_size, moved.lot_size) == (None, None)
    back = await store.update(
        "alice",
        trigger.id,
        {"instrument_token": INFY, "tradingsymbol": "INFY"},
        instrument=listed(INFY, "INFY", 0, 0),  # the master could not be asked: unknown
    )
    assert (back.tick_size, back.lot_size) == (None, None)


async def test_a_trigger_in_another_unit_than_its_instrument_is_refused(
    store: TriggerStore,
) -> None:
    """Prices in 10^4 units against an instrument quoted in paise: refused, naming the divisor."""
    trigger = make_trigger(price_divisor=10_000, trigger_price_1=16_000_000)
    with pytest.raises(InvalidTrigger) as info:
        await store.create(trigger, instrument=listed(INFY, "INFY", 5, 1))
    assert [(e.field, e.rule) for e in info.value.errors] == [("price_divisor", "mismatch")]
    assert await store.list("alice") == []


async def test_bulk_create_stores_each_instruments_grid(store: TriggerStore) -> None:
    """`create_many` stores each trigger's own instrument's tick and lot size, as `create` does."""
    option = listed(12073986, "BANKNIFTY18JAN23500CE", 5, 40, exchange=Exchange.NFO)
    triggers = [
        make_trigger(),
        make_trigger(
            instrument_token=option.id,
            exchange=Exchange.NFO,
            tradingsymbol=option.tradingsymbol,
            product=Product.NRML,
            quantity=80,
        ),
        make_trigger(),
    ]
    instruments = [listed(INFY, "INFY", 5, 1), option, None]
    records = await store.create_many(triggers, instruments=instruments)
    assert [(r.tick_size, r.lot_size) for r in records] == [(5, 1), (5, 40), (None, None)]
    stored = [await store.get("alice", t.id) for t in triggers]
    assert [(r.tick_size, r.lot_size) for r in stored] == [(5, 1), (5, 40), (None, None)]


async def test_a_load_in_many_batches_or_stopped_early_leaves_the_connection_usable(
    store: TriggerStore, db: Database
) -> None:
    """Batches fetched one ahead arrive whole and in order; a caller that stops after the
    first batch ends the load cleanly, and the next load reads everything again."""
    ids = sorted(str(uuid.uuid4()) for _ in range(7))
    for trigger_id in ids:
        await insert(db, distinct_row(trigger_id))
    sizes, seen = [], []
    async for batch in store.stream_active(batch_size=2):
        sizes.append(len(batch))
        seen += [t.id for t in batch]
    assert sizes == [2, 2, 2, 1]
    assert sorted(seen) == ids
    stream = store.stream_active(batch_size=2)
    first = await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert len(first) == 2
    assert len(await loaded(store, [])) == len(ids)


def test_the_fast_constructor_builds_what_the_dataclass_builds() -> None:
    """`_make_trigger` (slots set directly) equals `Trigger(...)` for distinct values, and is
    only allowed while `Trigger` has no `__post_init__` that it would skip."""
    assert not hasattr(Trigger, "__post_init__")
    values = _fields_of(expected_trigger(str(uuid.uuid4())))
    made = _make_trigger(*values.values())
    assert made == Trigger(**values)
    assert _fields_of(made) == values
    assert [f.name for f in dataclasses.fields(Trigger)] == list(values)


def _fields_of(trigger: Trigger) -> dict[str, Any]:
    return {f.name: getattr(trigger, f.name) for f in dataclasses.fields(Trigger)}


async def _load(
    db: Database, *, prices: PriceSource, rows: RowPath = RowPath.DIRECT, batch_size: int = 2
) -> tuple[list[Trigger], list[str]]:
    found: list[Trigger] = []
    invalid: list[str] = []
    async for batch in active_triggers(
        db,
        batch_size=batch_size,
        on_invalid=lambda trigger_id, _: invalid.append(trigger_id),
        divisor_of=lambda token: {USDINR: 10_000_000}[token],
        prices=prices,
        rows=rows,
    ):
        found += batch
    return sorted(found, key=lambda t: t.id), sorted(invalid)


async def test_units_computed_in_sql_load_what_the_prices_load(db: Database) -> None:
    """PostgreSQL's load computes v1 rows' wire units in SQL, or reads the stored ones
    (issue 12): whatever the row (exact prices, one price finer than its divisor, NULL
    prices, no divisor, a v2 column set), it loads, or is refused, exactly as when every
    price is converted here."""
    ids = [str(uuid.uuid4()) for _ in range(6)]
    # fmt: off
    rows = [
        distinct_row(ids[0]),
        distinct_row(ids[1], price_divisor=100, trigger_price_1=Decimal("83.12"),
                     trigger_price_2=Decimal("84.76"), limit_price_1=Decimal("83.11"),
                     limit_price_2=Decimal("84.225")),  # half a paisa: refused
        distinct_row(ids[2], trigger_type="single", trigger_price_2=None, order_type="MARKET",
                     limit_price_1=None, limit_price_2=None),
        distinct_row(ids[3], price_divisor=None),  # the broker's rule
        distinct_row(ids[4], on_gap="fire"),  # a v2 column: converted as v2
        distinct_row(ids[5], trigger_price_1=Decimal("-83.1234567")),
    ]
    # fmt: on
    for row in rows:
        await insert(db, row)
    in_sql = await _load(db, prices=PriceSource.COMPUTED)
    here = await _load(db, prices=PriceSource.DECIMAL)
    stored = await _load(db, prices=PriceSource.STORED)
    fields = await _load(db, prices=PriceSource.STORED, rows=RowPath.FIELDS)
    assert in_sql == here
    assert stored == here
    assert fields == here
    found, invalid = in_sql
    assert invalid == [ids[1]]
    assert len(found) == 5
    assert next(t for t in found if t.id == ids[0]) == expected_trigger(ids[0])


# --- the direct load (issue 12's fourth pass) -------------------------------------------


def test_no_enum_value_holds_the_separator_of_the_enums_column() -> None:
    """The five enums travel as one text, split on a separator no value of theirs holds, so
    every valid row splits back exactly; a value that holds it is no enum's anyway."""
    tables = (Exchange, TriggerType, Side, Product, OrderType)
    assert all(_ENUM_SEPARATOR not in member.value for enum in tables for member in enum)
    joined = f" || '{_ENUM_SEPARATOR}' || ".join(ENUM_NAMES)
    assert f"{joined} AS {ENUMS}" in _PG_QUERY_DIRECT


def test_the_open_twin_builds_the_dataclass_object() -> None:
    """`_OPEN_TRIGGER` has `Trigger`'s slots and nothing else, so an instance of it can
    become a `Trigger`; what it becomes equals the dataclass's own, and stays frozen."""
    assert _OPEN_TRIGGER.__slots__ == Trigger.__slots__
    assert not hasattr(Trigger, "__post_init__")
    assert not hasattr(Trigger, "__dict__") or "__dict__" not in Trigger.__dict__
    assert "__weakref__" not in Trigger.__dict__
    expected = expected_trigger(str(uuid.uuid4()))
    made = object.__new__(_OPEN_TRIGGER)
    for name, value in _fields_of(expected).items():
        setattr(made, name, value)
    made.__class__ = Trigger
    assert type(made) is Trigger
    assert made == expected
    assert hash(made) == hash(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.quantity = 8  # type: ignore[misc]


def _direct_names() -> list[str]:
    """The direct query's columns, as asyncpg would name them, in reversed order."""
    names = [c.name for c in _COLUMNS if c.name not in (*ENUM_NAMES, *PRICE_NAMES)]
    names += [ENUMS, *(name + UNITS for name in PRICE_NAMES), REST]
    return names[::-1]


def _direct_row(names: list[str], row: dict[str, Any], *, units: bool) -> list[Any]:
    """`row` (v1) as the direct query sends it: its enums joined, its prices as units
    (`rest` NULL) or as prices (in `rest`, after the five v2 columns)."""
    values = dict.fromkeys(names)
    values.update({k: v for k, v in row.items() if k in values})
    values[ENUMS] = _ENUM_SEPARATOR.join(row[name] for name in ENUM_NAMES)
    if units:
        for name in PRICE_NAMES:
            if row[name] is not None:
                values[name + UNITS] = int(row[name] * row["price_divisor"])
    else:
        values[REST] = (None, None, None, None, None, *(row[name] for name in PRICE_NAMES))
    assert REST_NAMES[5:] == PRICE_NAMES
    return [values[name] for name in names]


def test_the_direct_converter_builds_what_the_row_converter_builds() -> None:
    """Without a database: a row sent as units (the generated path) and the same row sent
    as prices (through `converter`) make the expected trigger, whatever the column order."""
    trigger_id = str(uuid.uuid4())
    row = distinct_row(trigger_id)
    names = _direct_names()
    convert = direct_converter(names)
    invalid: list[tuple[str, Exception]] = []
    on_units, on_prices = convert(
        [_direct_row(names, row, units=True), _direct_row(names, row, units=False)],
        lambda i, e: invalid.append((i, e)),
    )
    assert invalid == []
    assert type(on_units) is Trigger
    assert on_units == on_prices == expected_trigger(trigger_id)
    assert _fields_of(on_units) == _fields_of(expected_trigger(trigger_id))


def test_the_direct_converter_refuses_what_it_cannot_read() -> None:
    """An unknown enum, a joined text that does not split in five, or no divisor without a
    rule: reported with the row's id, the rest of the batch still converted."""
    names = _direct_names()
    convert = direct_converter(names)
    ids = [str(uuid.uuid4()) for _ in range(5)]
    rows = [_direct_row(names, distinct_row(ids[0]), units=True)]
    unknown = _direct_row(names, distinct_row(ids[1], product="XYZ"), units=True)
    split = _direct_row(names, distinct_row(ids[2]), units=False)
    split[names.index(ENUMS)] = "CDS oco SELL NRML"
    no_divisor = _direct_row(names, distinct_row(ids[3], price_divisor=None), units=False)
    rows += [unknown, split, no_divisor, _direct_row(names, distinct_row(ids[4]), units=True)]
    invalid: list[tuple[str, Exception]] = []
    made = convert(rows, lambda i, e: invalid.append((i, e)))
    assert [t.id for t in made] == [ids[0], ids[4]]
    assert [i for i, _ in invalid] == ids[1:4]
    assert isinstance(invalid[0][1], KeyError)
    assert isinstance(invalid[1][1], ValueError)
    assert isinstance(invalid[2][1], InvalidTrigger)


def test_the_direct_converter_refuses_a_query_missing_a_column() -> None:
    names = [name for name in _direct_names() if name != "account"]
    with pytest.raises(RuntimeError, match="account"):
        direct_converter(names)


async def test_the_direct_load_reads_every_enum_combination_as_the_fields_load(
    store: TriggerStore, db: Database
) -> None:
    """Issue 12's fourth pass: one row per combination of the five enums (v1, as units),
    each also as a v2 row, plus rows it must refuse; the direct load yields the same
    triggers and the same refusals as the row-by-row load, and as the Decimal load."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the direct load is PostgreSQL's (SQLite reads every row one way)")
    rows: list[dict[str, Any]] = []
    for exchange in Exchange:
        for trigger_type in TriggerType:
            for side in Side:
                for product in Product:
                    for order_type in OrderType:
                        shape = {
                            "exchange": exchange.value,
                            "trigger_type": trigger_type.value,
                            "transaction_type": side.value,
                            "product": product.value,
                            "order_type": order_type.value,
                        }
                        if trigger_type is TriggerType.SINGLE:
                            shape |= {"trigger_price_2": None, "limit_price_2": None}
                        rows.append(distinct_row(str(uuid.uuid4()), **shape))
                        rows.append(distinct_row(str(uuid.uuid4()), on_gap="fire", **shape))
    # Only `exchange` has no CHECK constraint: another tool can store any text there.
    refused = [
        distinct_row(str(uuid.uuid4()), exchange="N SE"),  # holds the separator
        distinct_row(str(uuid.uuid4()), exchange="XX"),
        distinct_row(str(uuid.uuid4()), exchange="XX", on_gap="fire"),
        distinct_row(str(uuid.uuid4()), price_divisor=0),
        distinct_row(str(uuid.uuid4()), price_divisor=100, trigger_price_1=Decimal("83.125")),
    ]
    async with db.engine.begin() as conn:
        await conn.execute(gtt_orders.insert(), [*rows, *refused])
    direct = await _load(db, prices=PriceSource.STORED, batch_size=100)
    fields = await _load(db, prices=PriceSource.STORED, rows=RowPath.FIELDS, batch_size=100)
    decimal = await _load(db, prices=PriceSource.DECIMAL, batch_size=100)
    assert direct == fields == decimal
    found, invalid = direct
    assert len(found) == len(rows) == 2 * 8 * 2 * 2 * 3 * 4
    assert invalid == sorted(row["id"] for row in refused)
    assert all(type(trigger) is Trigger for trigger in found)
    assert {t.on_gap for t in found} == {OnGap.FIRE}


async def test_the_direct_load_reads_v2_rows(store: TriggerStore, db: Database) -> None:
    """A watched v2 trigger and a v1 one, created through the store: both load, equal to
    what was created, on both paths (SQLite: its one path)."""
    v2 = make_trigger(
        watch_token=InstrumentToken(256265),
        trigger_price_1=2_380_000,
        leg_specs=(LegSpec(direction=Direction.AT_OR_BELOW),),
        not_before=EXPIRES,
    )
    v1 = make_trigger()
    nifty = listed(256265, "NIFTY 50", 5, 0, tradable=False)
    await store.create(v2, watch=nifty)
    await store.create(v1)
    for rows in RowPath:
        found, invalid = await _load(db, prices=PriceSource.STORED, rows=rows)
        assert invalid == []
        assert sorted(found, key=lambda t: t.id) == sorted([v1, v2], key=lambda t: t.id)
