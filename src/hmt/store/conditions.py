"""The store's side of v2's conditions: notes on a trigger, expiry with a reason, day ranges.

It satisfies the engine's `ConditionStore` by shape (the store never imports
the engine). A note (`missed_touch` with `on_gap` skip) is an event appended to
an active trigger that changes nothing else; a time leg found too late after a
restart ends its trigger `expired` with the reason in the event's payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.types import TriggerId
from hmt.store import events
from hmt.store.tables import gtt_orders as t
from hmt.store.triggers import TriggerStore, _valid_id, apply_event


class DayRangeStore(Protocol):
    """Where the engine's last-seen day high and low per instrument are kept (hmt_day_ranges)."""

    async def day_ranges(self, broker: str, day: date) -> dict[int, tuple[int, int]]: ...
    async def save_day_ranges(
        self, broker: str, day: date, ranges: Mapping[int, tuple[int, int]]
    ) -> None: ...
    async def forget_day_ranges(self, broker: str, before: date) -> int: ...


class ConditionStore:
    """Notes and reasoned expiry on `hmt_gtt_orders`, day ranges through `ranges`."""

    def __init__(self, triggers: TriggerStore, ranges: DayRangeStore) -> None:
        self.triggers = triggers
        self._ranges = ranges

    async def note(
        self, trigger_id: TriggerId, kind: EventKind, payload: Mapping[str, Any]
    ) -> bool:
        """Append `kind` to an active trigger's history (it stays as it is); False if the
        trigger is not active (fired, edited away, cancelled meanwhile)."""
        now = self.triggers.clock()
        query = (
            select(t.c.user_id)
            .where(t.c.id == _valid_id(trigger_id), t.c.status == Status.ACTIVE.value)
            .with_for_update()
        )

        async def work(conn: AsyncConnection) -> bool:
            user = (await conn.execute(query)).scalar_one_or_none()
            if user is None:
                return False
            await events.append(conn, trigger_id, user, kind, now, payload)
            return True

        return await self.triggers.db.transaction(work)

    async def expire(self, trigger_id: TriggerId, reason: str) -> bool:
        """`active` -> `expired`, the event's payload saying why; False if not active."""
        now = self.triggers.clock()
        query = select(t.c.status).where(t.c.id == _valid_id(trigger_id)).with_for_update()

        async def work(conn: AsyncConnection) -> bool:
            if (await conn.execute(query)).scalar_one_or_none() != Status.ACTIVE.value:
                return False
            written = await apply_event(
                conn,
                trigger_id,
                EventKind.EXPIRED,
                now,
                payload={"reason": reason},
                values={"error_message": reason},
                divisor_of=self.triggers.divisor_of,
            )
            return written is not None

        return await self.triggers.db.transaction(work)

    async def day_ranges(self, broker: str, day: date) -> dict[int, tuple[int, int]]:
        return await self._ranges.day_ranges(broker, day)

    async def save_day_ranges(
        self, broker: str, day: date, ranges: Mapping[int, tuple[int, int]]
    ) -> None:
        await self._ranges.save_day_ranges(broker, day, ranges)

    async def forget_day_ranges(self, broker: str, before: date) -> int:
        return await self._ranges.forget_day_ranges(broker, before)
