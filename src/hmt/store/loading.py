"""The engine's start-up load: every active trigger, streamed in batches.

A million rows must reach the book in seconds without a million-element list
in between: PostgreSQL hands them over through a server-side cursor, SQLite
through `yield_per`, and each batch is converted and handed on before the next
is read. The conversion is a positional fast path of `records.trigger_from_row`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.prices import divisor_for, to_units
from hmt.core.types import (
    Exchange,
    InstrumentToken,
    OrderType,
    Product,
    Side,
    TriggerId,
    TriggerType,
    UserId,
)
from hmt.store.db import Database
from hmt.store.tables import gtt_orders as t

_COLUMNS = (
    t.c.id,
    t.c.user_id,
    t.c.instrument_token,
    t.c.exchange,
    t.c.tradingsymbol,
    t.c.trigger_type,
    t.c.transaction_type,
    t.c.trigger_price_1,
    t.c.trigger_price_2,
    t.c.quantity,
    t.c.product,
    t.c.order_type,
    t.c.limit_price_1,
    t.c.limit_price_2,
    t.c.expires_at,
)
_ACTIVE = Status.ACTIVE
# Enum look-ups by value are dict hits, far cheaper than calling the enum.
_EXCHANGES = {e.value: e for e in Exchange}
_TYPES = {e.value: e for e in TriggerType}
_SIDES = {e.value: e for e in Side}
_PRODUCTS = {e.value: e for e in Product}
_ORDER_TYPES = {e.value: e for e in OrderType}


def _units(value: Decimal | None, divisor: int, field: str) -> int | None:
    if value is None:
        return None
    scaled = value * divisor
    if scaled == int(scaled):
        return int(scaled)
    return to_units(value, divisor, field=field)  # raises, naming the field


def _convert(row: Sequence[Any]) -> Trigger:
    (
        id_,
        user,
        token,
        exchange,
        symbol,
        kind,
        side,
        p1,
        p2,
        qty,
        product,
        order_type,
        l1,
        l2,
        expires_at,
    ) = row
    divisor = divisor_for(token)
    price_1 = _units(p1, divisor, "trigger_price_1")
    if price_1 is None:
        raise ValueError("trigger_price_1 is null")
    return Trigger(
        TriggerId(str(id_)),
        UserId(user),
        InstrumentToken(token),
        _EXCHANGES[exchange],
        symbol,
        _TYPES[kind],
        _SIDES[side],
        price_1,
        _units(p2, divisor, "trigger_price_2"),
        qty,
        _PRODUCTS[product],
        _ORDER_TYPES[order_type],
        _units(l1, divisor, "limit_price_1"),
        _units(l2, divisor, "limit_price_2"),
        _ACTIVE,
        expires_at,
    )


async def active_triggers(
    db: Database,
    *,
    batch_size: int = 5000,
    on_invalid: Callable[[str, Exception], None] | None = None,
) -> AsyncIterator[list[Trigger]]:
    """Yield the active triggers in batches of up to `batch_size`.

    A row another tool wrote that the core cannot hold (a price finer than its
    segment allows, an unknown enum) is skipped and reported to `on_invalid`
    with its id; it never stops the load.
    """
    query = select(*_COLUMNS).where(t.c.status == _ACTIVE.value)
    async with db.engine.connect() as conn:
        result = await conn.stream(query.execution_options(yield_per=batch_size))
        async for rows in result.partitions():
            batch = []
            for row in rows:
                try:
                    batch.append(_convert(row))
                except (ValueError, KeyError, TypeError) as error:
                    if on_invalid is not None:
                        on_invalid(str(row[0]), error)
            yield batch
