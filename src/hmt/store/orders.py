"""Reading a basket's per-order state (`hmt_trigger_orders`) into records.

Rows are written by the executor's outcome writes (`ExecutionStore`, with
`position=`), lazily: at the first write for that order, never ahead of it. A
fired basket's order without a row has not been sent (docs/store.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.types import Leg
from hmt.store.records import OrderState, TriggerRecord, has_basket
from hmt.store.tables import trigger_orders as o


async def order_states(
    conn: AsyncConnection, trigger_ids: Collection[str]
) -> dict[str, tuple[OrderState, ...]]:
    """Each trigger's order rows, by leg and position; a trigger without rows is absent."""
    if not trigger_ids:
        return {}
    rows = await conn.execute(
        select(o)
        .where(o.c.trigger_id.in_(list(trigger_ids)))
        .order_by(o.c.trigger_id, o.c.leg, o.c.position)
    )
    found: dict[str, list[OrderState]] = {}
    for row in rows:
        found.setdefault(str(row.trigger_id), []).append(
            OrderState(
                leg=Leg(row.leg),
                position=int(row.position),
                tag=row.tag,
                status=row.status,
                order_id=row.order_id,
                error_message=row.error_message,
                attempts=int(row.attempts),
            )
        )
    return {trigger_id: tuple(states) for trigger_id, states in found.items()}


async def with_orders(
    conn: AsyncConnection, records: Sequence[TriggerRecord]
) -> list[TriggerRecord]:
    """`records` with their baskets' order rows; one query, and none without a basket."""
    baskets = [record.id for record in records if has_basket(record.trigger)]
    states = await order_states(conn, baskets)
    if not states:
        return list(records)
    return [
        dataclasses.replace(record, orders=states[record.id]) if record.id in states else record
        for record in records
    ]
