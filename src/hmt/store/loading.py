"""The engine's start-up load: every active trigger, streamed in batches.

A million rows must reach the book in seconds without a million-element list
in between: PostgreSQL hands them over through a server-side cursor, SQLite
through `yield_per`, and each batch is converted and handed on before the next
is read. The columns are the core `Trigger`'s in the field specification
(`hmt.core.fields`), and each is read by its name: the converter looks the
positions up once per load in the column names the database reports, then
converts rows as a fast path of `records.trigger_from_row` (which
`tests/store/test_loading.py` holds it to, field for field).

A v1 row (every v2 column NULL) takes that fast path at the cost of four
NULL checks; a v2 row (a watched instrument, legs, not_before or on_gap) is
converted by `records.trigger_from_row` itself.

PostgreSQL's default load (`stored` prices, `direct` rows: `direct_converter`)
reads the same values in fewer columns and builds each batch's common rows in
one generated loop; every other row goes through the converter above.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Sequence
from dataclasses import fields
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Text, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.fields import TRIGGER_FIELDS
from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.prices import to_units
from hmt.core.types import (
    Exchange,
    OnGap,
    OrderType,
    Product,
    Side,
    TriggerType,
)
from hmt.store.db import Database
from hmt.store.records import DivisorOf, trigger_from_row
from hmt.store.tables import gtt_orders as t

# Trigger model v2's columns (docs/store.md), and the watched instrument's
# divisor that its thresholds are read with.
V2_COLUMNS = (
    t.c.watch_token,
    t.c.watch_price_divisor,
    t.c.legs,
    t.c.not_before,
    t.c.on_gap,
)
_V2_NAMES = tuple(c.name for c in V2_COLUMNS)
# Status is not read: the query selects active rows only.
_COLUMNS = tuple(
    t.c[f.column] for f in TRIGGER_FIELDS if f.name != "status" and f.column not in _V2_NAMES
)
_ACTIVE = Status.ACTIVE
_FIRE = OnGap.FIRE
# Enum look-ups by value are dict hits, far cheaper than calling the enum.
_EXCHANGES = {e.value: e for e in Exchange}
_TYPES = {e.value: e for e in TriggerType}
_SIDES = {e.value: e for e in Side}
_PRODUCTS = {e.value: e for e in Product}
_ORDER_TYPES = {e.value: e for e in OrderType}

_SELECTED_COLUMNS = (*_COLUMNS, *V2_COLUMNS)
PRICE_NAMES = ("trigger_price_1", "trigger_price_2", "limit_price_1", "limit_price_2")
_NO_UNITS: tuple[None, None, None, None] = (None, None, None, None)
UNITS = "_units"  # the suffix of a price's column of units computed in SQL

Convert = Callable[[Sequence[Any]], Trigger]


class PriceSource(StrEnum):
    """Where PostgreSQL's load takes a v1 row's wire units from (docs/engine.md)."""

    STORED = "stored"  # the `*_units` columns the database keeps (revision 0008)
    COMPUTED = "computed"  # `price * price_divisor` in the query (issue 12's first pass)
    DECIMAL = "decimal"  # every price as a Decimal, converted here (before issue 12)


class RowPath(StrEnum):
    """How PostgreSQL's `stored` load turns rows into triggers (docs/engine.md)."""

    DIRECT = "direct"  # one generated loop per batch, the enums as one column (4th pass)
    FIELDS = "fields"  # `converter`, one call per row (issue 12's third pass)


def _positional_constructor(cls: type[Trigger]) -> Callable[..., Trigger]:
    """A constructor taking every field positionally, that sets the slots directly.

    A frozen dataclass's `__init__` sets each field through
    `object.__setattr__`; at a million rows that was most of the conversion
    (measured: about 2 us of 4 per row). `Trigger` has no `__post_init__`,
    so setting its slots through their descriptors builds the same object
    (tests/store/test_loading.py checks both, and that it stays so). The
    source is made from the dataclass's own field names: no outside input.
    """
    names = [f.name for f in fields(cls)]
    setters = {f"_set_{name}": getattr(cls, name).__set__ for name in names}
    body = "".join(f"    _set_{name}(obj, {name})\n" for name in names)
    source = f"def make({', '.join(names)}):\n    obj = _new(_cls)\n{body}    return obj\n"
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls, **setters}
    exec(source, scope)  # noqa: S102
    made: Callable[..., Trigger] = scope["make"]
    return made


# Every field of `Trigger`, in its field order (price_divisor last).
_make_trigger = _positional_constructor(Trigger)


def _open_twin(cls: type[Trigger]) -> type:
    """A plain class with `cls`'s slots, in its order, and nothing else.

    An instance of it can take `cls` as its class once every slot is set
    (`obj.__class__ = cls`: the layouts are the same, which Python checks), so a
    trigger is built with plain attribute stores, which the interpreter
    specializes, instead of a descriptor call per slot: about 0.7 us a row
    against 1.8 us (measured at 1M rows). `tests/store/test_loading.py` holds
    what it builds to the dataclass's own, and `cls` to having no
    `__post_init__` and no `__weakref__` or `__dict__` of its own.
    """
    return type(f"_Open{cls.__name__}", (), {"__slots__": cls.__slots__})


_OPEN_TRIGGER = _open_twin(Trigger)


def _units(value: Decimal | None, divisor: int, field: str) -> int | None:
    if value is None:
        return None
    scaled = value * divisor
    if scaled == int(scaled):
        return int(scaled)
    return to_units(value, divisor, field=field)  # raises, naming the field


def converter(names: Sequence[str], divisor_of: DivisorOf | None = None) -> Convert:
    """Turn rows whose columns are called `names` into `Trigger`s, prices still in rupees.

    Positions are looked up here, once; the returned function only indexes.
    A row it cannot convert raises (ValueError, KeyError or TypeError), its
    `InvalidTrigger` naming the field. Names without the v2 columns (all or
    none) read every row as v1; the loader's own query always selects them.
    """
    at = {name: i for i, name in enumerate(names)}
    # `account` (revision 0011) may be absent from a query written before it: default.
    missing = [c.name for c in _COLUMNS if c.name not in at and c.name != "account"]
    present = [name for name in _V2_NAMES if name in at]
    if present and len(present) != len(_V2_NAMES):
        missing += [name for name in _V2_NAMES if name not in at]
    if missing:
        raise RuntimeError(f"the load query returned no column {missing}")
    v2 = bool(present)
    # Absent (a v1 query), the v2 positions are never read: `v2` is false.
    i_watch, i_legs, i_not_before, i_on_gap = (
        at.get(name, 0) for name in ("watch_token", "legs", "not_before", "on_gap")
    )
    i_id, i_user, i_token, i_exchange, i_symbol, i_type, i_side = (
        at[name]
        for name in (
            "id",
            "user_id",
            "instrument_token",
            "exchange",
            "tradingsymbol",
            "trigger_type",
            "transaction_type",
        )
    )
    i_p1, i_p2, i_l1, i_l2 = (
        at[name]
        for name in ("trigger_price_1", "trigger_price_2", "limit_price_1", "limit_price_2")
    )
    i_qty, i_product, i_order_type, i_expires, i_divisor = (
        at[name] for name in ("quantity", "product", "order_type", "expires_at", "price_divisor")
    )
    # PostgreSQL's load computes the wire units itself (`_PG_QUERY`); without those
    # columns every price is converted here.
    in_sql = all(name + UNITS in at for name in PRICE_NAMES)
    i_u1, i_u2, i_m1, i_m2 = (at.get(name + UNITS, 0) for name in PRICE_NAMES)
    prices = [(at[name], name) for name in PRICE_NAMES]
    i_account = at.get("account")

    def convert(row: Sequence[Any]) -> Trigger:
        if v2 and (
            row[i_legs] is not None
            or row[i_watch] is not None
            or row[i_not_before] is not None
            or row[i_on_gap] is not None
        ):
            return _v2_trigger(names, row, divisor_of)
        divisor = row[i_divisor]
        if divisor is None:
            if divisor_of is None:
                raise InvalidTrigger(
                    [FieldError("price_divisor", "required", "is NULL and no broker rule is set")]
                )
            divisor = divisor_of(row[i_token])
        elif divisor <= 0:
            raise InvalidTrigger([FieldError("price_divisor", "positive", "must be above 0")])
        p1, p2, l1, l2 = (row[i_u1], row[i_u2], row[i_m1], row[i_m2]) if in_sql else _NO_UNITS
        # A price the query sent is converted here, as ever: it sends a price only
        # where the units are not to be used (NULL, not matching the price, a v2
        # row; or no units columns at all), and sends it NULL otherwise.
        if (
            p1 is None
            or row[i_p1] is not None
            or row[i_p2] is not None
            or row[i_l1] is not None
            or row[i_l2] is not None
        ):
            p1, p2, l1, l2 = (
                given if row[i] is None else _units(row[i], divisor, name)
                for given, (i, name) in zip((p1, p2, l1, l2), prices, strict=True)
            )
        if p1 is None:
            raise InvalidTrigger([FieldError("trigger_price_1", "required", "is NULL")])
        # Positional, in `Trigger`'s field order: keywords would cost about 1 s per
        # million rows. tests/store/test_loading.py checks the order field by field.
        # The NewTypes (TriggerId, UserId, InstrumentToken) are left out: each is a
        # call that returns its argument.
        return _make_trigger(
            str(row[i_id]),
            row[i_user],
            row[i_token],
            _EXCHANGES[row[i_exchange]],
            row[i_symbol],
            _TYPES[row[i_type]],
            _SIDES[row[i_side]],
            p1,
            p2,
            row[i_qty],
            _PRODUCTS[row[i_product]],
            _ORDER_TYPES[row[i_order_type]],
            l1,
            l2,
            _ACTIVE,
            row[i_expires],
            divisor,
            None,
            (),
            None,
            _FIRE,
            None if i_account is None else row[i_account],
        )

    return convert


def _v2_trigger(names: Sequence[str], row: Sequence[Any], divisor_of: DivisorOf | None) -> Trigger:
    """A row of trigger model v2, through the records' own conversion."""
    values = {name: value for name, value in zip(names, row, strict=True)
              if not name.endswith(UNITS)}  # fmt: skip
    values["status"] = _ACTIVE.value
    return trigger_from_row(values, divisor_of)


ENUM_NAMES = ("exchange", "trigger_type", "transaction_type", "product", "order_type")
ENUMS = "enums"  # the five enum columns, sent as one text by `_PG_QUERY_DIRECT`
# The columns a common row has NULL (the v2 ones, the prices sent as units), sent by
# `_PG_QUERY_DIRECT` as one anonymous record, NULL when all of them are.
REST_NAMES = (*_V2_NAMES, *PRICE_NAMES)
REST = "rest"
_ENUM_SEPARATOR = " "  # in no value of the five enums (a test says so)
Kinds = tuple[Exchange, TriggerType, Side, Product, OrderType]
ConvertBatch = Callable[[Sequence[Any], Callable[[str, Exception], None] | None], list[Trigger]]


def _kinds_of(text: str) -> Kinds:
    """The five enums of one `enums` text: `KeyError` for a value no enum has."""
    parts = text.split(_ENUM_SEPARATOR)
    if len(parts) != len(ENUM_NAMES):
        raise ValueError(f"enum columns {text!r} are not {len(ENUM_NAMES)} values")
    exchange, trigger_type, side, product, order_type = parts
    return (
        _EXCHANGES[exchange],
        _TYPES[trigger_type],
        _SIDES[side],
        _PRODUCTS[product],
        _ORDER_TYPES[order_type],
    )


def _split_names(names: Sequence[str]) -> tuple[str, ...]:
    """`names` without `enums` and `rest`, and their columns at the end: what a row,
    split, is read with by `converter`."""
    kept = [name for name in names if name not in (ENUMS, REST)]
    return (*kept, *ENUM_NAMES, *REST_NAMES)


def direct_converter(names: Sequence[str], divisor_of: DivisorOf | None = None) -> ConvertBatch:
    """Turn a batch of `_PG_QUERY_DIRECT`'s rows into `Trigger`s in one generated loop.

    The common row (v1, every price sent as stored units, a positive divisor)
    is built in the loop itself: its five enums are one text looked up once per
    distinct combination, its slots set by plain stores (`_open_twin`). Any
    other row goes through `converter`, its `enums` split back into the five
    columns and its `rest` into its nine (all NULL when `rest` is), so it
    loads, or is refused, exactly as on the `fields` path
    (`tests/store/test_loading.py` compares the two on every kind of row).
    """
    at = {name: i for i, name in enumerate(names)}
    wanted = [ENUMS, REST, "id", "user_id", "instrument_token", "tradingsymbol", "quantity",
              "expires_at", "price_divisor", "account",
              *(name + UNITS for name in PRICE_NAMES)]  # fmt: skip
    missing = [name for name in wanted if name not in at]
    if missing:
        raise RuntimeError(f"the load query returned no column {missing}")
    slow = converter(_split_names(names), divisor_of)
    i_enums, i_rest = at[ENUMS], at[REST]
    kept = [i for i in range(len(names)) if i not in (i_enums, i_rest)]
    no_rest = (None,) * len(REST_NAMES)

    def slow_row(row: Sequence[Any]) -> Trigger:
        text, rest = row[i_enums], row[i_rest]
        if not isinstance(text, str):
            raise TypeError(f"enum columns {text!r} are not a text")
        parts = text.split(_ENUM_SEPARATOR)
        if len(parts) != len(ENUM_NAMES):
            raise ValueError(f"enum columns {text!r} are not {len(ENUM_NAMES)} values")
        rest = no_rest if rest is None else tuple(rest)
        if len(rest) != len(REST_NAMES):
            raise ValueError(f"the rest of the row has {len(rest)} values")
        return slow((*(row[i] for i in kept), *parts, *rest))

    # Only integer positions and `Trigger`'s own slot names go into the source.
    p = {name: int(i) for name, i in at.items()}
    fast_test = " and ".join((
        f"row[{p[REST]}] is None",
        f"(u1 := row[{p['trigger_price_1' + UNITS]}]) is not None",
        f"(divisor := row[{p['price_divisor']}]) is not None",
        "divisor > 0",
    ))  # fmt: skip
    stores = {
        "id": f"row[{p['id']}]",
        "user_id": f"row[{p['user_id']}]",
        "instrument_token": f"row[{p['instrument_token']}]",
        "exchange": "kinds[0]",
        "tradingsymbol": f"row[{p['tradingsymbol']}]",
        "trigger_type": "kinds[1]",
        "side": "kinds[2]",
        "trigger_price_1": "u1",
        "trigger_price_2": f"row[{p['trigger_price_2' + UNITS]}]",
        "quantity": f"row[{p['quantity']}]",
        "product": "kinds[3]",
        "order_type": "kinds[4]",
        "limit_price_1": f"row[{p['limit_price_1' + UNITS]}]",
        "limit_price_2": f"row[{p['limit_price_2' + UNITS]}]",
        "status": "_ACTIVE",
        "expires_at": f"row[{p['expires_at']}]",
        "price_divisor": "divisor",
        "watch_token": "None",
        "leg_specs": "()",
        "not_before": "None",
        "on_gap": "_FIRE",
        "account": f"row[{p['account']}]",
    }
    if list(stores) != list(Trigger.__slots__):
        raise RuntimeError("the direct load no longer sets every slot of Trigger in order")
    body = "".join(f"                obj.{slot} = {value}\n" for slot, value in stores.items())
    source = (
        "def convert_batch(rows, on_invalid):\n"
        "    out = []\n"
        "    append = out.append\n"
        "    for row in rows:\n"
        "        try:\n"
        f"            if {fast_test}:\n"
        f"                text = row[{i_enums}]\n"
        "                kinds = known.get(text)\n"
        "                if kinds is None:\n"
        "                    kinds = known[text] = _kinds_of(text)\n"
        "                obj = _new(_Open)\n"
        f"{body}"
        "                obj.__class__ = _Trigger\n"
        "                append(obj)\n"
        "            else:\n"
        "                append(slow_row(row))\n"
        "        except (ValueError, KeyError, TypeError, ArithmeticError) as error:\n"
        "            if on_invalid is not None:\n"
        f"                on_invalid(str(row[{p['id']}]), error)\n"
        "    return out\n"
    )
    scope: dict[str, Any] = {
        "_new": object.__new__,
        "_Open": _OPEN_TRIGGER,
        "_Trigger": Trigger,
        "_ACTIVE": _ACTIVE,
        "_FIRE": _FIRE,
        "_kinds_of": _kinds_of,
        "known": {},  # each distinct enums text, looked up once per load
        "slow_row": slow_row,
    }
    exec(source, scope)  # noqa: S102
    made: ConvertBatch = scope["convert_batch"]
    return made


async def active_triggers(
    db: Database,
    *,
    batch_size: int = 5000,
    on_invalid: Callable[[str, Exception], None] | None = None,
    divisor_of: DivisorOf | None = None,
    prices: PriceSource = PriceSource.STORED,
    partitions: Collection[int] | None = None,
    rows: RowPath = RowPath.DIRECT,
) -> AsyncIterator[list[Trigger]]:
    """Yield the active triggers in batches of up to `batch_size`.

    `partitions`: only the rows stored in those cluster partitions (revision 0010),
    and the rows with none stored (another tool's insert; the caller keeps those of
    its partitions by computing theirs).

    `prices`: on PostgreSQL, where a v1 row's wire units come from (below); the
    older ways are kept for the side-by-side measurement. SQLite always reads
    the prices. `rows`: with `stored` prices on PostgreSQL, whether each batch
    is converted in one generated loop (`direct_converter`) or row by row
    (`converter`, kept for the same comparison).

    A row another tool wrote that the core cannot hold (a price finer than its
    instrument allows, an unknown enum, no price divisor and no `divisor_of`
    fallback) is skipped and reported to `on_invalid` with its id; it never
    stops the load.
    """
    # The cyclic collector is the engine's supervisor's to pause around a load
    # (`hmt.engine.supervisor.collector_paused`), not this loader's.
    async with db.engine.connect() as conn:
        direct = False
        if conn.dialect.name == "postgresql":
            direct = prices is PriceSource.STORED and rows is RowPath.DIRECT
            query = _PG_QUERY_DIRECT if direct else _PG_QUERIES[prices]
            args: tuple[Any, ...] = (_ACTIVE.value,)
            if partitions is not None:
                query += _PG_IN_PARTITIONS
                args = (*args, sorted(partitions))
            batches = _postgresql_rows(conn, batch_size, query, args)
        else:
            batches = _rows(conn, batch_size, partitions)
        convert: Convert | None = None
        # Closed here, not whenever it is collected: a caller that stops early
        # ends the read (and its transaction) before the connection goes back.
        async with contextlib.aclosing(batches):
            if direct:
                convert_batch: ConvertBatch | None = None
                async for names, rows_read in batches:
                    if convert_batch is None:
                        convert_batch = direct_converter(names, divisor_of)
                    yield convert_batch(rows_read, on_invalid)
                return
            async for names, rows_read in batches:
                if convert is None:
                    convert = converter(names, divisor_of)
                    i_id = names.index("id")
                batch = []
                for row in rows_read:
                    try:
                        batch.append(convert(row))
                    except (ValueError, KeyError, TypeError, ArithmeticError) as error:
                        if on_invalid is not None:
                            on_invalid(str(row[i_id]), error)
                yield batch


Batches = AsyncGenerator[tuple[Sequence[str], Sequence[Any]], None]


async def _rows(
    conn: AsyncConnection, batch_size: int, partitions: Collection[int] | None = None
) -> Batches:
    """(column names, rows) per batch, through SQLAlchemy.

    `legs` is read as its text and parsed per row: JSON another tool broke then
    skips that row (reported), where the column's own parsing would end the load.
    """
    selected = [
        type_coerce(c, Text).label(c.name) if c is t.c.legs else c for c in _SELECTED_COLUMNS
    ]
    query = select(*selected).where(t.c.status == _ACTIVE.value)
    if partitions is not None:
        query = query.where(or_(t.c.partition.in_(sorted(partitions)), t.c.partition.is_(None)))
    result = await conn.stream(query.execution_options(yield_per=batch_size))
    names = tuple(result.keys())
    async for rows in result.partitions():
        yield names, rows


async def _postgresql_rows(
    conn: AsyncConnection, batch_size: int, query: str, args: tuple[Any, ...]
) -> Batches:
    """asyncpg's own cursor on the same connection and transaction.

    SQLAlchemy's per-row result processing would cost more than the fetch
    itself at a million rows (measured: about 4 s of a 13 s load), and these
    columns need none of it: asyncpg already returns Decimal, int, str and
    aware datetimes; the id is cast to text in SQL.
    """
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if driver is None:
        raise RuntimeError("no asyncpg connection")
    async with driver.transaction(readonly=True):
        statement = await driver.prepare(query)
        names = tuple(attribute.name for attribute in statement.get_attributes())
        cursor = await statement.cursor(*args)
        # One batch ahead: the next is asked for before this one is handed on,
        # so the server reads and sends it while the caller converts this one.
        ahead = asyncio.ensure_future(cursor.fetch(batch_size))
        try:
            while rows := await ahead:
                ahead = asyncio.ensure_future(cursor.fetch(batch_size))
                yield names, rows
        finally:
            # A caller that stops early: the fetch under way ends before the
            # transaction does (never cancelled inside the protocol).
            if not ahead.done():
                with contextlib.suppress(Exception):
                    await ahead


# Built only from the table's own column names: no outside input. JSONB comes as
# text, parsed per row (`legs.from_json`).
_SELECTED = ", ".join(
    "id::text AS id" if c.name == "id" else "legs::text AS legs" if c.name == "legs" else c.name
    for c in _SELECTED_COLUMNS
)
_PG_QUERY_DECIMAL = f"SELECT {_SELECTED} FROM {t.name} WHERE status = $1"  # noqa: S608
# Issue 12: asyncpg's NUMERIC -> Decimal and the Decimal -> units conversion were
# each about 2 us a row at 1M. A v1 row whose price is a whole number of units
# gets them computed by the server as an int8 (`<price>_units`) and its price
# column NULL (nothing to decode); any other (a v2 row, whose thresholds are in
# the watched instrument's units; no divisor; a price finer than its tick; out of
# int8's range) gets NULL units and the price, converted as before.
_V1_ROW = " AND ".join(f"{name} IS NULL" for name in _V2_NAMES)
_EXACT = (
    "{p} * price_divisor = trunc({p} * price_divisor)"
    " AND abs({p} * price_divisor) < 1e18 AND " + _V1_ROW
)
_PG_PRICES = ", ".join(
    f"CASE WHEN {_EXACT.format(p=p)} THEN ({p} * price_divisor)::int8 END AS {p}{UNITS}, "
    f"CASE WHEN {_EXACT.format(p=p)} THEN NULL ELSE {p} END AS {p}"
    for p in PRICE_NAMES
)
_SELECTED_UNITS = ", ".join(
    "id::text AS id" if c.name == "id" else "legs::text AS legs" if c.name == "legs" else c.name
    for c in _SELECTED_COLUMNS
    if c.name not in PRICE_NAMES
)
_PG_QUERY = f"SELECT {_SELECTED_UNITS}, {_PG_PRICES} FROM {t.name} WHERE status = $1"  # noqa: S608
# Revision 0008: the database keeps each price's units in `<price>_units`; the
# query sends them as they are, and sends a price only where its units are not to
# be used: NULL, not equal to price x divisor (a row written with the database's
# triggers disabled), or a v2 row. That one comparison per price is all the
# arithmetic left (measured at 1M rows: server CPU 1.7 s, against 3.7 s for
# `_PG_QUERY` and 1.3 s for `_PG_QUERY_DECIMAL`).
_PG_STORED = ", ".join(
    f"{p}{UNITS}, CASE WHEN {p}{UNITS} IS NOT NULL AND {_V1_ROW}"
    f" AND {p}{UNITS} = {p} * price_divisor THEN NULL ELSE {p} END AS {p}"
    for p in PRICE_NAMES
)
_PG_QUERY_STORED = f"SELECT {_SELECTED_UNITS}, {_PG_STORED} FROM {t.name} WHERE status = $1"  # noqa: S608
# The fourth pass: the same values in fewer columns, for asyncpg decodes every column
# of every row, NULL or not (measured at 1M: 1.6-1.7 s for `_PG_QUERY_STORED`'s 26
# columns, 1.0-1.2 s without the nine a common row has NULL). The five enum columns
# (all NOT NULL) come as one text, looked up once per distinct text; the v2 columns
# and the prices, as one anonymous record, NULL when every one of them is (what
# `_PG_QUERY_STORED` would send: a v1 row whose units are used, or whose price is NULL).
_SELECTED_DIRECT = ", ".join(
    "id::text AS id" if c.name == "id" else c.name
    for c in _SELECTED_COLUMNS
    if c.name not in (*PRICE_NAMES, *ENUM_NAMES, *_V2_NAMES)
)
_PG_ENUMS = f" || '{_ENUM_SEPARATOR}' || ".join(ENUM_NAMES) + f" AS {ENUMS}"
_PG_UNITS = ", ".join(f"{p}{UNITS}" for p in PRICE_NAMES)
_PRICES_SENT = ", ".join(
    f"CASE WHEN {p}{UNITS} IS NOT NULL AND {_V1_ROW}"
    f" AND {p}{UNITS} = {p} * price_divisor THEN NULL ELSE {p} END"
    for p in PRICE_NAMES
)
_NONE_SENT = " AND ".join(
    [_V1_ROW, *(f"({p} IS NULL OR {p}{UNITS} = {p} * price_divisor)" for p in PRICE_NAMES)]
)
_PG_REST = (
    f"CASE WHEN {_NONE_SENT} THEN NULL ELSE ROW("
    + ", ".join("legs::text" if name == "legs" else name for name in _V2_NAMES)
    + f", {_PRICES_SENT}) END AS {REST}"
)
_PG_QUERY_DIRECT = (
    f"SELECT {_SELECTED_DIRECT}, {_PG_ENUMS}, {_PG_UNITS}, {_PG_REST}"  # noqa: S608
    f" FROM {t.name} WHERE status = $1"
)
# A cluster node's load of some partitions (revision 0010): `$2` is their list.
_PG_IN_PARTITIONS = " AND (partition = ANY($2::int4[]) OR partition IS NULL)"
_PG_QUERIES = {
    PriceSource.STORED: _PG_QUERY_STORED,
    PriceSource.COMPUTED: _PG_QUERY,
    PriceSource.DECIMAL: _PG_QUERY_DECIMAL,
}
