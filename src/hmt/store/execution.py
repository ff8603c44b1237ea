"""The store as the engine uses it: the claim protocol and the active set.

It satisfies the engine's `ClaimStore` and `TriggerSource` protocols by shape
(the store never imports the engine). Every outcome is one transaction: the
`order_sent` event of the attempt that produced it, then the outcome itself,
both conditional on the trigger still being `triggered`.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.model import Fired, InFlight, Trigger
from hmt.core.rules import order_for
from hmt.core.types import TriggerId
from hmt.store.triggers import TriggerNotFound, TriggerStore, apply_event


class ExecutionStore:
    """The engine's side of `hmt_gtt_orders`: every user's triggers."""

    def __init__(self, triggers: TriggerStore) -> None:
        self.triggers = triggers

    # -- the claim protocol ------------------------------------------------------

    async def claim(self, fired: Fired) -> bool:
        return await self.triggers.claim(fired)

    async def retry(self, trigger_id: TriggerId, attempt: int, reason: str) -> None:
        await self._outcome(
            trigger_id,
            EventKind.RETRY,
            attempt,
            values={"attempts": attempt},
            payload={"attempt": attempt, "reason": reason},
        )

    async def placed(self, trigger_id: TriggerId, order_id: str, attempt: int) -> None:
        await self._outcome(
            trigger_id,
            EventKind.PLACED,
            attempt,
            values={"order_id": order_id, "error_message": None},
            payload={"order_id": order_id, "reconciled": attempt == 0},
        )

    async def failed(self, trigger_id: TriggerId, reason: str, attempt: int) -> None:
        await self._outcome(
            trigger_id,
            EventKind.FAILED,
            attempt,
            values={"error_message": reason},
            payload={"error": reason},
        )

    async def released(self, trigger_id: TriggerId, reason: str, attempt: int) -> None:
        await self._outcome(
            trigger_id,
            EventKind.RELEASED,
            attempt,
            values={"error_message": reason},
            payload={"reason": reason},
        )

    async def _outcome(
        self,
        trigger_id: TriggerId,
        kind: EventKind,
        attempt: int,
        *,
        values: Mapping[str, Any],
        payload: Mapping[str, Any],
    ) -> None:
        now = self.triggers.clock()
        # A row another tool stored without a divisor reads as the engine loaded it.
        divisor_of = self.triggers.divisor_of
        if attempt > 0:
            # `attempts` counts order requests sent: the executor's count, not events.
            values = {**values, "attempts": attempt}

        async def work(conn: AsyncConnection) -> None:
            if attempt > 0:
                sent = await apply_event(
                    conn,
                    trigger_id,
                    EventKind.ORDER_SENT,
                    now,
                    payload={"attempt": attempt},
                    divisor_of=divisor_of,
                )
                if sent is None:
                    raise TriggerNotFound(trigger_id)
            outcome = await apply_event(
                conn, trigger_id, kind, now, values=values, payload=payload, divisor_of=divisor_of
            )
            if outcome is None:
                raise TriggerNotFound(trigger_id)

        await self.triggers.db.transaction(work)

    # -- the active set ----------------------------------------------------------------

    def active_batches(self) -> AsyncIterator[builtins.list[Trigger]]:
        return self.triggers.stream_active()

    async def active(self, trigger_id: TriggerId) -> Trigger | None:
        try:
            record = await self.triggers.load(trigger_id)
        except TriggerNotFound:  # not even a uuid: nothing of ours
            return None
        if record is None or record.status is not Status.ACTIVE:
            return None
        return record.trigger

    async def in_flight(self) -> builtins.list[InFlight]:
        left = []
        for record in await self.triggers.in_status(Status.TRIGGERED):
            if record.triggered_leg is None:  # written by another tool: nothing to recover
                continue
            intent = order_for(record.trigger, record.triggered_leg)
            left.append(InFlight(intent, record.triggered_at))
        return left

    async def expire_due(self) -> builtins.list[TriggerId]:
        return await self.triggers.expire_due()

    async def give_up(self, trigger_id: TriggerId, reason: str) -> None:
        await self.failed(trigger_id, reason, 0)
