"""The store as the engine uses it: the claim protocol and the active set.

It satisfies the engine's `ClaimStore` and `TriggerSource` protocols by shape
(the store never imports the engine). One `ExecutionStore` speaks for one
engine instance (`owner`): its claims carry that id and a lease, and every
later write is conditional on the trigger still being `triggered` under that
id. `order_sent` is written before its request leaves (by the claim itself
for the first request when the throttle lets it go at once), so `attempts`
counts requests sent across restarts and engines; outcomes do not touch it.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.broker import OrderReport
from hmt.core.errors import ClaimLost
from hmt.core.events import EventKind
from hmt.core.lifecycle import Status, allowed
from hmt.core.model import Fired, InFlight, OrderIntent, Trigger
from hmt.core.rules import order_for
from hmt.core.types import Leg, TriggerId
from hmt.store import events
from hmt.store.reconciliation import Reconciled, Reconciler, TagOf
from hmt.store.records import record_from_row
from hmt.store.tables import gtt_orders as t
from hmt.store.triggers import TriggerNotFound, TriggerStore, _valid_id, apply_event

log = structlog.get_logger("hmt.store.execution")

# For a store built without an engine identity (tests, tools): one engine alone.
LOCAL_ENGINE = "local"
DEFAULT_LEASE = timedelta(seconds=30)


class ExecutionStore:
    """The engine's side of `hmt_gtt_orders`: every user's triggers.

    `durable_claims`: claims commit only once on disk (HMT_CLAIM_DURABILITY=sync);
    by default they do not wait for the flush and reconciliation covers a lost
    one. Every other write is durable.
    """

    def __init__(
        self,
        triggers: TriggerStore,
        *,
        owner: str = LOCAL_ENGINE,
        lease: timedelta = DEFAULT_LEASE,
        durable_claims: bool = False,
    ) -> None:
        self.triggers = triggers
        self.owner = owner
        self.lease = lease
        self.durable_claims = durable_claims
        self._reconciler = Reconciler(triggers, owner=owner, lease=lease)

    # -- the claim protocol ------------------------------------------------------

    async def claim(self, fired: Fired, tag: str, *, sending: bool = False) -> bool:
        return await self.triggers.claim(
            fired,
            tag,
            owner=self.owner,
            lease=self.lease,
            sending=sending,
            durable=self.durable_claims,
        )

    async def order_sent(self, trigger_id: TriggerId) -> int:
        now = self.triggers.clock()

        async def work(conn: AsyncConnection) -> int:
            attempts = (await self._owned(conn, trigger_id))[0] + 1
            values = {"attempts": attempts, "claim_expires_at": now + self.lease}
            payload = {"attempt": attempts, "engine": self.owner}
            await self._apply(conn, trigger_id, EventKind.ORDER_SENT, now, values, payload)
            return attempts

        result: int = await self.triggers.db.transaction(work)
        return result

    async def renew(self, trigger_id: TriggerId) -> bool:
        now = self.triggers.clock()
        statement = (
            update(t)
            .where(
                t.c.id == _valid_id(trigger_id),
                t.c.status == Status.TRIGGERED.value,
                t.c.claimed_by == self.owner,
            )
            .values(claim_expires_at=now + self.lease)
            .returning(t.c.id)
        )

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(statement)).first() is not None

        held: bool = await self.triggers.db.transaction(work)
        return held

    async def retry(self, trigger_id: TriggerId, attempt: int, reason: str) -> None:
        await self._outcome(
            trigger_id, EventKind.RETRY, values={}, payload={"attempt": attempt, "reason": reason}
        )

    async def placed(self, trigger_id: TriggerId, order_id: str, attempt: int) -> None:
        await self._outcome(
            trigger_id,
            EventKind.PLACED,
            values={"order_id": order_id, "error_message": None},
            payload={"order_id": order_id, "reconciled": attempt == 0},
            reconciled={"order_id": order_id} if attempt == 0 else None,
        )

    async def failed(self, trigger_id: TriggerId, reason: str, attempt: int) -> None:
        await self._outcome(
            trigger_id,
            EventKind.FAILED,
            values={"error_message": reason},
            payload={"error": reason},
        )

    async def released(self, trigger_id: TriggerId, reason: str, attempt: int) -> None:
        await self._outcome(
            trigger_id,
            EventKind.RELEASED,
            values={"error_message": reason, "claimed_by": None, "claim_expires_at": None},
            payload={"reason": reason},
        )

    async def _outcome(
        self,
        trigger_id: TriggerId,
        kind: EventKind,
        *,
        values: Mapping[str, Any],
        payload: Mapping[str, Any],
        reconciled: Mapping[str, Any] | None = None,
    ) -> None:
        """One outcome, conditional on the trigger being `triggered` under our claim.

        `reconciled`: the outcome comes from a tag look-up, noted first in the
        same transaction (with the tag and what was found).
        """
        now = self.triggers.clock()

        async def work(conn: AsyncConnection) -> None:
            _, user_id = await self._owned(conn, trigger_id)
            if reconciled is not None and allowed(Status.TRIGGERED, kind):
                # A note, not a transition: it changes no status.
                note = {**reconciled, "engine": self.owner}
                await events.append(conn, trigger_id, user_id, EventKind.RECONCILED, now, note)
            await self._apply(conn, trigger_id, kind, now, values, payload)

        await self.triggers.db.transaction(work)

    async def _owned(self, conn: AsyncConnection, trigger_id: TriggerId) -> tuple[int, str]:
        """Lock the row; ClaimLost if it is `triggered` under another engine's claim.

        Any other status is left to the lifecycle table, which refuses the
        write (`IllegalTransition`). Returns the row's `attempts` and user.
        """
        query = (
            select(t.c.status, t.c.claimed_by, t.c.attempts, t.c.user_id)
            .where(t.c.id == _valid_id(trigger_id))
            .with_for_update()
        )
        row = (await conn.execute(query)).first()
        if row is None:
            raise TriggerNotFound(trigger_id)
        if row.status == Status.TRIGGERED.value and row.claimed_by != self.owner:
            raise ClaimLost(trigger_id)
        return int(row.attempts or 0), str(row.user_id)

    async def _apply(
        self,
        conn: AsyncConnection,
        trigger_id: TriggerId,
        kind: EventKind,
        now: datetime,
        values: Mapping[str, Any],
        payload: Mapping[str, Any],
    ) -> None:
        # A row another tool stored without a divisor reads as the engine loaded it.
        written = await apply_event(
            conn,
            trigger_id,
            kind,
            now,
            values=values,
            payload=payload,
            divisor_of=self.triggers.divisor_of,
        )
        if written is None:
            raise TriggerNotFound(trigger_id)

    # -- recovery: claims this engine may settle -----------------------------------------

    async def adopt(self, *, own: bool) -> builtins.list[InFlight]:
        """Take over the claims this engine may settle now, each under a fresh lease.

        Every claim whose lease has expired (or that has none: written before
        claims had owners), whoever made it; with `own` (at start-up), also
        every claim recorded under this engine's id, left by an earlier life
        of this process. Each row is taken by a conditional update, so when
        two engines sweep at once, one of them gets it.
        """
        now = self.triggers.clock()
        expired = or_(
            t.c.claimed_by.is_(None), t.c.claim_expires_at.is_(None), t.c.claim_expires_at <= now
        )
        settleable = or_(expired, t.c.claimed_by == self.owner) if own else expired
        candidates = select(t.c.id, t.c.claimed_by).where(
            t.c.status == Status.TRIGGERED.value, settleable
        )

        async def work(conn: AsyncConnection) -> builtins.list[InFlight]:
            taken = []
            for trigger_id, previous in (await conn.execute(candidates)).all():
                same_owner = (
                    t.c.claimed_by.is_(None) if previous is None else t.c.claimed_by == previous
                )
                statement = (
                    update(t)
                    .where(
                        and_(t.c.id == trigger_id, t.c.status == Status.TRIGGERED.value),
                        same_owner,
                        settleable,
                    )
                    .values(claimed_by=self.owner, claim_expires_at=now + self.lease)
                    .returning(*t.c)
                )
                row = (await conn.execute(statement)).first()
                if row is None:  # another engine took it between our read and our update
                    continue
                record = record_from_row(row._mapping, self.triggers.divisor_of)
                if previous != self.owner:
                    log.info("claim_adopted", trigger_id=record.id, previous=previous)
                left = _in_flight(record.trigger, record.triggered_leg, record.broker_tag)
                if left is not None:
                    taken.append(InFlight(left, record.triggered_at))
            return taken

        return await self.triggers.db.transaction(work)

    async def reconcile(
        self, orders: Sequence[OrderReport], tag_of: TagOf, *, skip: Collection[TriggerId] = ()
    ) -> builtins.list[Reconciled]:
        """Settle as placed every active or triggered row whose tag is in `orders`
        (`hmt.store.reconciliation`); `skip` rows this process is settling itself."""
        return await self._reconciler.run(orders, tag_of, skip=skip)

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

    async def expire_due(self) -> builtins.list[TriggerId]:
        return await self.triggers.expire_due()

    async def give_up(self, trigger_id: TriggerId, reason: str) -> None:
        """Fail a claim whose tag look-up found no order (`reconciled`, then `failed`)."""
        await self._outcome(
            trigger_id,
            EventKind.FAILED,
            values={"error_message": reason},
            payload={"error": reason},
            reconciled={"order_id": None},
        )


def _in_flight(trigger: Trigger, leg: Leg | None, tag: str | None) -> OrderIntent | None:
    """The order a claimed row was placing: its stored tag, never one recomputed here."""
    if leg is None or not tag:  # written by another tool: nothing to recover
        return None
    return order_for(trigger, leg, tag)
