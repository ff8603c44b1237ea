"""The state of each order of a basket (`hmt_trigger_orders`): written inside the caller's
transaction, with the trigger's row locked by the caller.

A leg of more than one order keeps each order's state on its own row, keyed by
(trigger, leg, position); the trigger stays `triggered` until every order is
settled, then `finish` moves it to `placed` (every order placed) or `failed`.
A leg of one order keeps its state on the trigger's row exactly as in v1 and
never comes here.

Rows are written lazily, at the first write for an order (its `order_sent`,
or reconciliation finding it at the broker), never by the claim: the claim's
transaction stays the same for every trigger (docs/engine.md, "Baskets"). So
an order with no row was never sent; a `pending` row's request may have
left; `placed` and `failed` rows are settled and never sent again.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.errors import IllegalTransition
from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.types import Leg, TriggerId
from hmt.store import events
from hmt.store.records import DivisorOf, TriggerRecord
from hmt.store.tables import ORDER_FAILED, ORDER_PENDING, ORDER_PLACED
from hmt.store.tables import trigger_orders as o
from hmt.store.triggers import apply_event

SETTLED = frozenset({ORDER_PLACED, ORDER_FAILED})
# The status each outcome event gives an order's row (order_sent and retry: pending).
_ROW_STATUS = {
    EventKind.ORDER_SENT: ORDER_PENDING,
    EventKind.RETRY: ORDER_PENDING,
    EventKind.PLACED: ORDER_PLACED,
    EventKind.FAILED: ORDER_FAILED,
}


def size(record: TriggerRecord) -> int:
    """How many orders the fired leg of `record` places (1 when it has not fired)."""
    leg = record.triggered_leg
    return 1 if leg is None else len(record.trigger.orders(leg))


async def rows(conn: AsyncConnection, trigger_id: TriggerId, leg: Leg) -> dict[int, Row[Any]]:
    """The stored rows of one leg's orders, by position."""
    query = select(o).where(o.c.trigger_id == trigger_id, o.c.leg == int(leg))
    return {int(row.position): row for row in (await conn.execute(query)).all()}


async def write(
    conn: AsyncConnection,
    *,
    trigger_id: TriggerId,
    user_id: str,
    leg: Leg,
    position: int,
    tag: str,
    kind: EventKind,
    now: datetime,
    values: Mapping[str, Any],
    payload: Mapping[str, Any],
    reconciled: Mapping[str, Any] | None = None,
) -> int:
    """One order's write: its row (made if absent) and its event; the order's attempts.

    An order already settled is never written again (`IllegalTransition`): a
    placed order must not be sent, a failed one not revived. `order_sent`
    counts the request in the row's `attempts`. `reconciled`: the outcome came
    from a tag look-up, noted first (with the order id found, or None).
    """
    key = and_(o.c.trigger_id == trigger_id, o.c.leg == int(leg), o.c.position == position)
    current = (
        await conn.execute(select(o.c.status, o.c.attempts).where(key).with_for_update())
    ).first()
    if current is not None and current.status in SETTLED:
        raise IllegalTransition(f"order {position} {current.status}", kind.value)
    attempts = 0 if current is None else int(current.attempts)
    if kind is EventKind.ORDER_SENT:
        attempts += 1
    row = {**values, "status": _ROW_STATUS[kind], "attempts": attempts, "updated_at": now}
    if current is None:
        await conn.execute(
            insert(o).values(
                trigger_id=trigger_id,
                leg=int(leg),
                position=position,
                user_id=user_id,
                tag=tag,
                **row,
            )
        )
    else:
        await conn.execute(update(o).where(key).values(row))
    where = {"position": position, "tag": tag}
    entries: builtins.list[tuple[EventKind, Mapping[str, Any]]] = []
    if reconciled is not None:
        entries.append((EventKind.RECONCILED, {**reconciled, **where}))
    if kind is EventKind.ORDER_SENT:
        payload = {**payload, "attempt": attempts}
    entries.append((kind, {**payload, **where}))
    await events.append_many(conn, trigger_id, user_id, now, entries)
    return attempts


async def found(
    conn: AsyncConnection,
    *,
    trigger_id: TriggerId,
    user_id: str,
    leg: Leg,
    position: int,
    tag: str,
    order_id: str,
    owner: str,
    now: datetime,
    count_sent: bool,
) -> None:
    """An order the broker's book shows, recorded placed (`reconciled` first); with
    `count_sent` its request is counted too (`order_sent`), none having been."""
    common: dict[str, Any] = {
        "trigger_id": trigger_id,
        "user_id": user_id,
        "leg": leg,
        "position": position,
        "tag": tag,
        "now": now,
    }
    if count_sent:
        payload = {"engine": owner, "reconciled": True}
        await write(conn, **common, kind=EventKind.ORDER_SENT, values={}, payload=payload)
    await write(
        conn,
        **common,
        kind=EventKind.PLACED,
        values={"order_id": order_id, "error_message": None},
        payload={"order_id": order_id, "reconciled": True},
        reconciled={"order_id": order_id, "engine": owner},
    )


async def clear(conn: AsyncConnection, trigger_id: TriggerId) -> None:
    """Forget a released claim's orders: the trigger is armed again and its next claim
    starts its basket afresh (the events keep what happened)."""
    await conn.execute(delete(o).where(o.c.trigger_id == trigger_id))


def may_exist(stored: Mapping[int, Row[Any]], *, besides: int) -> bool:
    """Whether an order of the basket other than `besides` is, or may be, at the broker:
    placed, or pending (its request may have left)."""
    return any(row.status != ORDER_FAILED for pos, row in stored.items() if pos != besides)


async def finish(
    conn: AsyncConnection,
    record: TriggerRecord,
    now: datetime,
    divisor_of: DivisorOf | None,
    payload: Mapping[str, Any] | None = None,
) -> Status:
    """The trigger's outcome once every order of its fired basket is settled.

    `placed` if every order was placed, else `failed` naming each failed
    position and its reason; `order_id` is the first placed order's id. The
    trigger stays `triggered` (nothing written) while an order is unsettled.
    The caller holds the row's lock and has checked the claim.
    """
    leg = record.triggered_leg
    if record.status is not Status.TRIGGERED or leg is None:
        raise IllegalTransition(record.status.value, EventKind.PLACED.value)
    count = size(record)
    stored = await rows(conn, record.id, leg)
    if any(stored.get(p) is None or stored[p].status not in SETTLED for p in range(count)):
        return Status.TRIGGERED
    ordered = [stored[p] for p in range(count)]
    placed = [row for row in ordered if row.status == ORDER_PLACED]
    failed = [row for row in ordered if row.status == ORDER_FAILED]
    first_id = placed[0].order_id if placed else None
    summary = {"orders": count, "placed": len(placed), **(payload or {})}
    if not failed:
        kind = EventKind.PLACED
        values: dict[str, Any] = {"order_id": first_id, "error_message": None}
        body: dict[str, Any] = {"order_id": first_id, **summary}
    else:
        reasons = "; ".join(f"position {row.position}: {row.error_message}" for row in failed)
        reason = f"{len(failed)} of {count} orders failed: {reasons}"
        kind = EventKind.FAILED
        values = {"order_id": first_id, "error_message": reason}
        body = {"error": reason, "failed": [int(row.position) for row in failed], **summary}
    written = await apply_event(
        conn, record.id, kind, now, values=values, payload=body, divisor_of=divisor_of
    )
    if written is None:
        raise IllegalTransition(record.status.value, kind.value)
    return written.status
