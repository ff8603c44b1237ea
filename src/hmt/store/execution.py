"""The store as the engine uses it: the claim protocol and the active set.

It satisfies the engine's `ClaimStore` and `TriggerSource` protocols by shape
(the store never imports the engine). One `ExecutionStore` speaks for one
engine instance (`owner`): its claims carry that id and a lease, and every
later write is conditional on the trigger still being `triggered` under that
id. `order_sent` is written before its request leaves (by the claim itself
for the first request when the throttle lets it go at once), so `attempts`
counts requests sent across restarts and engines; outcomes do not touch it.

A basket's orders (a leg of more than one order) are written with their
`position` and `tag`: each to its own row of `hmt_trigger_orders`
(`hmt.store.baskets`), the trigger staying `triggered` under the claim until
`finish` gives it the basket's outcome. Without a `tag` every write is the
one-order leg's, exactly as in v1.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.broker import OrderReport
from hmt.core.errors import ClaimLost, IllegalTransition
from hmt.core.events import EventKind
from hmt.core.lifecycle import Status, allowed
from hmt.core.model import Fired, InFlight, OrderIntent, Trigger
from hmt.core.partitions import partition_of
from hmt.core.rules import order_for, orders_for
from hmt.core.types import Leg, TriggerId
from hmt.store import baskets, events
from hmt.store.fences import Fence
from hmt.store.reconciliation import Reconciled, Reconciler, TagOf
from hmt.store.records import TriggerRecord, record_from_row
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
        # A cluster node's lease tokens (docs/cluster.md): partition -> the token to
        # claim with there, None when not validly held now. None: one engine, unfenced.
        self.fencing: Callable[[int], int | None] | None = None

    # -- the claim protocol ------------------------------------------------------

    async def claim(self, fired: Fired, tag: str, *, sending: bool = False) -> bool:
        fence = None
        if self.fencing is not None:
            # A cluster node claims only in a partition it validly holds, with its token.
            partition = partition_of(fired.trigger.watched, self.triggers.partitions)
            token = self.fencing(partition)
            if token is None:
                log.info("claim_not_held", trigger_id=fired.trigger.id, partition=partition)
                return False
            fence = Fence(partition, token, self.owner)
        return await self.triggers.claim(
            fired,
            tag,
            owner=self.owner,
            lease=self.lease,
            sending=sending,
            durable=self.durable_claims,
            fence=fence,
        )

    async def order_sent(
        self, trigger_id: TriggerId, *, position: int = 0, tag: str | None = None
    ) -> int:
        """A request is about to leave: `attempts` + 1 (returned: the order's own count for
        a basket's order, which also counts in the trigger's), lease renewed."""
        if tag is not None:
            return await self._order(
                trigger_id, position, tag, EventKind.ORDER_SENT, {"engine": self.owner}
            )
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

    async def retry(
        self,
        trigger_id: TriggerId,
        attempt: int,
        reason: str,
        *,
        position: int = 0,
        tag: str | None = None,
    ) -> None:
        payload = {"attempt": attempt, "reason": reason}
        if tag is not None:
            await self._order(trigger_id, position, tag, EventKind.RETRY, payload)
            return
        await self._outcome(trigger_id, EventKind.RETRY, values={}, payload=payload)

    async def placed(
        self,
        trigger_id: TriggerId,
        order_id: str,
        attempt: int,
        *,
        position: int = 0,
        tag: str | None = None,
    ) -> None:
        """`attempt` 0: found in the broker's book by tag (`reconciled`), not answered."""
        if tag is not None and attempt == 0:
            await self._found(trigger_id, position, tag, order_id)
            return
        if tag is not None:
            await self._order(
                trigger_id,
                position,
                tag,
                EventKind.PLACED,
                {"order_id": order_id, "reconciled": False},
                values={"order_id": order_id, "error_message": None},
            )
            return
        await self._outcome(
            trigger_id,
            EventKind.PLACED,
            values={"order_id": order_id, "error_message": None},
            payload={"order_id": order_id, "reconciled": attempt == 0},
            reconciled={"order_id": order_id} if attempt == 0 else None,
        )

    async def failed(
        self,
        trigger_id: TriggerId,
        reason: str,
        attempt: int,
        *,
        position: int = 0,
        tag: str | None = None,
    ) -> None:
        if tag is not None:
            await self._order(
                trigger_id,
                position,
                tag,
                EventKind.FAILED,
                {"error": reason},
                values={"error_message": reason},
            )
            return
        await self._outcome(
            trigger_id,
            EventKind.FAILED,
            values={"error_message": reason},
            payload={"error": reason},
        )

    async def released(
        self,
        trigger_id: TriggerId,
        reason: str,
        attempt: int,
        *,
        position: int = 0,
        tag: str | None = None,
    ) -> bool:
        """The session expired: the claim given back (`active`), True. For a basket's order
        only if no other order of the basket is, or may be, at the broker (placed, or
        pending: its request may have left); else the trigger stays `triggered` for
        recovery, the refusal recorded as the order's `retry`, and False."""
        values = {"error_message": reason, "claimed_by": None, "claim_expires_at": None}
        if tag is None:
            await self._outcome(
                trigger_id, EventKind.RELEASED, values=values, payload={"reason": reason}
            )
            return True
        now = self.triggers.clock()

        async def work(conn: AsyncConnection) -> bool:
            record = await self._claimed(conn, trigger_id, EventKind.RELEASED)
            assert record.triggered_leg is not None  # `_claimed` checked it is triggered
            stored = await baskets.rows(conn, trigger_id, record.triggered_leg)
            if baskets.may_exist(stored, besides=position):
                await self._write_order(
                    conn,
                    record,
                    position,
                    tag,
                    EventKind.RETRY,
                    now,
                    {"attempt": attempt, "reason": reason, "held": "another order may exist"},
                )
                return False
            await baskets.clear(conn, trigger_id)
            payload = {"reason": reason, "position": position, "tag": tag}
            await self._apply(conn, trigger_id, EventKind.RELEASED, now, values, payload)
            return True

        released: bool = await self.triggers.db.transaction(work)
        return released

    async def finish(self, trigger_id: TriggerId) -> Status:
        """A basket's outcome once every order of its fired leg is settled: `placed` if all
        were placed, else `failed` naming each failed position; `triggered` (nothing
        written) while one is not. A one-order leg's status as it stands (its outcome
        was written by `placed` or `failed`). Conditional on our claim."""
        now = self.triggers.clock()

        async def work(conn: AsyncConnection) -> Status:
            record = await self._locked(conn, trigger_id)
            if baskets.size(record) == 1:
                return record.status
            self._check_claim(record, EventKind.PLACED)
            return await baskets.finish(conn, record, now, self.triggers.divisor_of)

        status: Status = await self.triggers.db.transaction(work)
        return status

    async def _found(self, trigger_id: TriggerId, position: int, tag: str, order_id: str) -> None:
        """A basket's order found in the book by its tag: placed (`reconciled` first). A
        request no row counts (its `order_sent` went with a lost commit) is counted
        now, as reconciliation counts one (`baskets.found`): the book has its order."""
        now = self.triggers.clock()

        async def work(conn: AsyncConnection) -> None:
            record = await self._claimed(conn, trigger_id, EventKind.PLACED)
            assert record.triggered_leg is not None  # `_claimed` checked it is triggered
            current = (await baskets.rows(conn, trigger_id, record.triggered_leg)).get(position)
            count_sent = current is None or not current.attempts
            await baskets.found(
                conn,
                trigger_id=record.id,
                user_id=record.trigger.user_id,
                leg=record.triggered_leg,
                position=position,
                tag=tag,
                order_id=order_id,
                owner=self.owner,
                now=now,
                count_sent=count_sent,
            )
            lease: dict[str, Any] = {"claim_expires_at": now + self.lease, "updated_at": now}
            if count_sent:
                lease["attempts"] = record.attempts + 1
            await conn.execute(update(t).where(t.c.id == record.id).values(lease))

        await self.triggers.db.transaction(work)

    async def _order(
        self,
        trigger_id: TriggerId,
        position: int,
        tag: str,
        kind: EventKind,
        payload: Mapping[str, Any],
        *,
        values: Mapping[str, Any] | None = None,
        reconciled: Mapping[str, Any] | None = None,
    ) -> int:
        """One write for a basket's order, in one transaction under our claim: its row and
        event, the trigger's lease renewed (and `attempts` + 1 for an `order_sent`)."""
        now = self.triggers.clock()

        async def work(conn: AsyncConnection) -> int:
            record = await self._claimed(conn, trigger_id, kind)
            return await self._write_order(
                conn, record, position, tag, kind, now, payload, values, reconciled
            )

        attempts: int = await self.triggers.db.transaction(work)
        return attempts

    async def _write_order(
        self,
        conn: AsyncConnection,
        record: TriggerRecord,
        position: int,
        tag: str,
        kind: EventKind,
        now: datetime,
        payload: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        reconciled: Mapping[str, Any] | None = None,
    ) -> int:
        assert record.triggered_leg is not None
        if reconciled is not None:
            reconciled = {**reconciled, "engine": self.owner}
        attempts = await baskets.write(
            conn,
            trigger_id=record.id,
            user_id=record.trigger.user_id,
            leg=record.triggered_leg,
            position=position,
            tag=tag,
            kind=kind,
            now=now,
            values=values or {},
            payload=payload,
            reconciled=reconciled,
        )
        lease: dict[str, Any] = {"claim_expires_at": now + self.lease, "updated_at": now}
        if kind is EventKind.ORDER_SENT:
            lease["attempts"] = record.attempts + 1
        await conn.execute(update(t).where(t.c.id == record.id).values(lease))
        return attempts

    async def _locked(self, conn: AsyncConnection, trigger_id: TriggerId) -> TriggerRecord:
        query = select(t).where(t.c.id == _valid_id(trigger_id)).with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            raise TriggerNotFound(trigger_id)
        return record_from_row(row._mapping, self.triggers.divisor_of)

    def _check_claim(self, record: TriggerRecord, kind: EventKind) -> None:
        """ClaimLost under another engine's claim; IllegalTransition unless `triggered`."""
        if record.status is not Status.TRIGGERED or record.triggered_leg is None:
            raise IllegalTransition(record.status.value, kind.value)
        if record.claimed_by != self.owner:
            raise ClaimLost(record.id)

    async def _claimed(
        self, conn: AsyncConnection, trigger_id: TriggerId, kind: EventKind
    ) -> TriggerRecord:
        """The trigger's row, locked, if it is `triggered` under our claim."""
        record = await self._locked(conn, trigger_id)
        self._check_claim(record, kind)
        return record

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

    async def adopt(self, *, own: bool, tag_of: TagOf | None = None) -> builtins.list[InFlight]:
        """Take over the claims this engine may settle now, each under a fresh lease.

        Every claim whose lease has expired (or that has none: written before
        claims had owners), whoever made it; with `own` (at start-up), also
        every claim recorded under this engine's id, left by an earlier life
        of this process. Each row is taken by a conditional update, so when
        two engines sweep at once, one of them gets it.

        A basket comes back with every order not yet settled (`InFlight.basket`,
        in listed order; a placed or failed order never); one whose orders are
        all settled is finished here. `tag_of` (the broker adapter's rule) gives
        the tag of an order never sent (no row); every other tag is the stored one.
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
                if baskets.size(record) > 1:
                    basket = await self._unsettled(conn, record, tag_of, now)
                    if basket:
                        taken.append(InFlight(basket[0], record.triggered_at, basket))
                    continue
                left = _in_flight(record.trigger, record.triggered_leg, record.broker_tag)
                if left is not None:
                    taken.append(InFlight(left, record.triggered_at))
            return taken

        return await self.triggers.db.transaction(work)

    async def _unsettled(
        self, conn: AsyncConnection, record: TriggerRecord, tag_of: TagOf | None, now: datetime
    ) -> tuple[OrderIntent, ...]:
        """An adopted basket's orders not yet settled; finished at once if there are none."""
        leg = record.triggered_leg
        if leg is None or not record.broker_tag:  # written by another tool
            return ()
        stored = await baskets.rows(conn, record.id, leg)
        tags = []
        for position in range(baskets.size(record)):
            if position in stored:
                tags.append(str(stored[position].tag))
            elif position == 0:
                tags.append(record.broker_tag)  # the claim stored it
            elif tag_of is None:
                raise ValueError("adopting a basket needs the broker's tag rule (tag_of)")
            else:
                tags.append(tag_of(record.id, leg, position))
        intents = orders_for(record.trigger, leg, tags)
        left = tuple(
            intent
            for intent in intents
            if intent.position not in stored
            or stored[intent.position].status not in baskets.SETTLED
        )
        if not left:
            status = await baskets.finish(conn, record, now, self.triggers.divisor_of)
            log.info("basket_finished", trigger_id=record.id, status=status.value)
        return left

    async def reconcile(
        self, orders: Sequence[OrderReport], tag_of: TagOf, *, skip: Collection[TriggerId] = ()
    ) -> builtins.list[Reconciled]:
        """Settle as placed every active or triggered row whose tag is in `orders`
        (`hmt.store.reconciliation`); `skip` rows this process is settling itself."""
        return await self._reconciler.run(orders, tag_of, skip=skip)

    # -- the active set ----------------------------------------------------------------

    def active_batches(
        self, partitions: Collection[int] | None = None
    ) -> AsyncIterator[builtins.list[Trigger]]:
        return self.triggers.stream_active(partitions=partitions)

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

    async def give_up(
        self, trigger_id: TriggerId, reason: str, *, position: int = 0, tag: str | None = None
    ) -> None:
        """Fail a claim whose tag look-up found no order (`reconciled`, then `failed`);
        with `tag`, that one order of a basket."""
        if tag is not None:
            await self._order(
                trigger_id,
                position,
                tag,
                EventKind.FAILED,
                {"error": reason},
                values={"error_message": reason},
                reconciled={"order_id": None},
            )
            return
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
