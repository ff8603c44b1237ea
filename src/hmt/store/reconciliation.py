"""Reconciliation: the broker's order book of the day settles the rows it contradicts.

A claim that does not wait for the disk (docs/engine.md, "Claims that do not
wait for the disk") can be lost with the database server or its host after its
order has left. The row is then `active` again, with no tag stored, while the
broker has the order. Read against the day's order book, every `active` or
`triggered` row whose tag appears in it is settled as placed:

- `triggered`, claimed by this engine or under an expired lease: `reconciled`
  and `placed` with the book's order id (another live engine's claim is its own);
- `active` (its claim was lost): claimed and placed at once, in one transaction
  conditional on the row still being `active` and unchanged: `fired`, `claimed`,
  `order_sent` (the lost life did send it; `attempts` + 1), `reconciled`,
  `placed`. An oco's other leg goes with it: the row is no longer active.
- `paused` (the database lost its resume as well as its claim: paused, resumed
  and fired after the last write that survived): `resumed` {reconciled} first,
  then as `active`. Left alone it would fire again on the user's next resume.

Tags are the broker adapter's (`tag_of`), a hash of the trigger id that cannot
be inverted, so an active row's tags are computed; only rows on the instruments
of orders that no row knows by tag are read (the broker's rows name their
instrument), all active rows only if an order does not say.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.broker import OrderReport
from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.types import Leg, TriggerId, TriggerType
from hmt.store import events
from hmt.store.tables import gtt_orders as t
from hmt.store.triggers import TriggerStore, apply_event

log = structlog.get_logger("hmt.store.reconciliation")

TagOf = Callable[[TriggerId, Leg], str]
_Carrier = tuple[TriggerId, "Status", str]  # a row carrying a tag: id, status, tag


@dataclass(frozen=True, slots=True)
class Reconciled:
    """A row the order book settled as placed; `was` its status before (active, paused or
    triggered)."""

    trigger_id: TriggerId
    order_id: str
    was: Status


def tags_in(orders: Sequence[OrderReport]) -> dict[str, OrderReport]:
    """Every tag the book's orders carry, with its (first) order."""
    by_tag: dict[str, OrderReport] = {}
    for report in orders:
        for tag in (report.tag, *report.tags):
            first = by_tag.setdefault(tag, report) if tag else report
            if first.order_id != report.order_id:  # never ours: one tag, one order
                log.error("tag_in_two_orders", tag=tag, orders=[first.order_id, report.order_id])
    return by_tag


class Reconciler:
    """One engine's reconciliation against an order book (used by `ExecutionStore`)."""

    def __init__(self, triggers: TriggerStore, *, owner: str, lease: timedelta) -> None:
        self._triggers = triggers
        self._owner = owner
        self._lease = lease

    async def run(
        self, orders: Sequence[OrderReport], tag_of: TagOf, *, skip: Collection[TriggerId] = ()
    ) -> builtins.list[Reconciled]:
        """Settle every `active` or `triggered` row whose tag is in `orders`.

        `skip`: rows whose order this process is settling right now (their own
        executor records the outcome).
        """
        by_tag = tags_in(orders)
        if not by_tag:
            return []
        settled: builtins.list[Reconciled] = []
        known = await self._known(builtins.list(by_tag))
        for trigger_id, status, tag in known:
            if status is Status.TRIGGERED and trigger_id not in skip:
                report = by_tag[tag]
                if await self._settle_triggered(trigger_id, tag, report.order_id):
                    settled.append(Reconciled(trigger_id, report.order_id, status))
        # An active row may carry a tag from an earlier claim (released): it is matched
        # with the other active rows below, by its computed tags.
        carried = {tag for _, status, tag in known if status is not Status.ACTIVE}
        unknown = {tag: report for tag, report in by_tag.items() if tag not in carried}
        if unknown:
            settled += await self._settle_active(unknown, tag_of, skip)
        for item in settled:
            log.warning(
                "reconciled", trigger_id=item.trigger_id, order_id=item.order_id, was=item.was.value
            )
        return settled

    async def _known(
        self, tags: builtins.list[str]
    ) -> builtins.list[tuple[TriggerId, Status, str]]:
        """Rows that carry one of `tags` (any status): their order is already theirs."""

        async def work(conn: AsyncConnection) -> builtins.list[_Carrier]:
            found = []
            for start in range(0, len(tags), _CHUNK):
                query = select(t.c.id, t.c.status, t.c.broker_tag).where(
                    t.c.broker_tag.in_(tags[start : start + _CHUNK])
                )
                for trigger_id, status, tag in (await conn.execute(query)).all():
                    found.append((TriggerId(str(trigger_id)), Status(status), str(tag)))
            return found

        return await self._triggers.db.transaction(work, write=False)

    async def _settle_triggered(self, trigger_id: TriggerId, tag: str, order_id: str) -> bool:
        """A claimed row whose order the book has: placed, if the claim is ours to settle."""
        now = self._triggers.clock()
        owner = self._owner
        settleable = or_(
            t.c.claimed_by.is_(None),
            t.c.claimed_by == owner,
            t.c.claim_expires_at.is_(None),
            t.c.claim_expires_at <= now,
        )
        query = (
            select(t.c.user_id, t.c.attempts)
            .where(
                t.c.id == trigger_id,
                t.c.status == Status.TRIGGERED.value,
                t.c.broker_tag == tag,
                settleable,
            )
            .with_for_update()
        )

        async def work(conn: AsyncConnection) -> bool:
            row = (await conn.execute(query)).first()
            if row is None:  # settled meanwhile, or another live engine's claim
                return False
            user_id, attempts = str(row.user_id), int(row.attempts or 0)
            entries: builtins.list[tuple[EventKind, Mapping[str, Any]]] = []
            values: dict[str, Any] = {"claimed_by": owner}
            if not attempts:  # the book has it, so a request left: count it
                entries.append((EventKind.ORDER_SENT, {"attempt": 1, "engine": owner}))
                values["attempts"] = 1
            entries.append((EventKind.RECONCILED, {"order_id": order_id, "engine": owner}))
            await events.append_many(conn, trigger_id, user_id, now, entries)
            await self._placed(conn, trigger_id, order_id, now, values)
            return True

        return await self._triggers.db.transaction(work)

    async def _settle_active(
        self, unknown: Mapping[str, OrderReport], tag_of: TagOf, skip: Collection[TriggerId]
    ) -> builtins.list[Reconciled]:
        """Active rows whose computed tag is in the book: their claim was lost; place them."""
        tokens = {report.instrument_token for report in unknown.values()}
        where = [t.c.status.in_(_ARMABLE)]
        if None not in tokens:  # every order names its instrument: only those rows
            where.append(t.c.instrument_token.in_(sorted(tokens)))
        query = select(t.c.id, t.c.trigger_type).where(*where)

        async def candidates(conn: AsyncConnection) -> builtins.list[tuple[TriggerId, Leg, str]]:
            matches = []
            for trigger_id, trigger_type in (await conn.execute(query)).all():
                single = trigger_type == TriggerType.SINGLE.value
                legs = (Leg.FIRST,) if single else (Leg.FIRST, Leg.SECOND)
                for leg in legs:
                    tag = tag_of(TriggerId(str(trigger_id)), leg)
                    if tag in unknown:
                        matches.append((TriggerId(str(trigger_id)), leg, tag))
                        break
            return matches

        settled = []
        for trigger_id, leg, tag in await self._triggers.db.transaction(candidates, write=False):
            if trigger_id in skip:
                continue
            order_id = unknown[tag].order_id
            was = await self._claim_and_place(trigger_id, leg, tag, order_id)
            if was is not None:
                settled.append(Reconciled(trigger_id, order_id, was))
        return settled

    async def _claim_and_place(
        self, trigger_id: TriggerId, leg: Leg, tag: str, order_id: str
    ) -> Status | None:
        """The lost claim made again, with the order the book shows: one transaction.

        The status the row had (active or paused), or None if it was no longer armable.
        """
        now = self._triggers.clock()
        owner = self._owner
        query = (
            select(t.c.user_id, t.c.attempts, t.c.status)
            .where(t.c.id == trigger_id, t.c.status.in_(_ARMABLE))
            .with_for_update()
        )

        async def work(conn: AsyncConnection) -> Status | None:
            row = (await conn.execute(query)).first()
            if row is None:  # no longer armable: a cancel or a claim got there first
                return None
            if row.status == Status.PAUSED.value:  # its resume was lost with the claim
                resumed = await apply_event(
                    conn,
                    trigger_id,
                    EventKind.RESUMED,
                    now,
                    payload={"reconciled": True, "engine": owner},
                    divisor_of=self._triggers.divisor_of,
                )
                if resumed is None:
                    return None
            user_id, attempts = str(row.user_id), int(row.attempts or 0) + 1
            claim = {
                "triggered_leg": int(leg),
                "triggered_price": None,
                "triggered_at": now,
                "broker_tag": tag,
                "claimed_by": owner,
                "claim_expires_at": now + self._lease,
                "attempts": attempts,
            }
            note = {"leg": int(leg), "ltp": None, "reconciled": True}
            await events.append(conn, trigger_id, user_id, EventKind.FIRED, now, note)
            written = await apply_event(
                conn,
                trigger_id,
                EventKind.CLAIMED,
                now,
                values=claim,
                payload={**note, "tag": tag, "engine": owner},
                divisor_of=self._triggers.divisor_of,
            )
            if written is None:
                return None
            entries: builtins.list[tuple[EventKind, Mapping[str, Any]]] = [
                (EventKind.ORDER_SENT, {"attempt": attempts, "engine": owner, "reconciled": True}),
                (EventKind.RECONCILED, {"order_id": order_id, "engine": owner}),
            ]
            await events.append_many(conn, trigger_id, user_id, now, entries)
            await self._placed(conn, trigger_id, order_id, now, {})
            return Status(row.status)

        return await self._triggers.db.transaction(work)

    async def _placed(
        self,
        conn: AsyncConnection,
        trigger_id: TriggerId,
        order_id: str,
        now: datetime,
        values: Mapping[str, Any],
    ) -> None:
        await apply_event(
            conn,
            trigger_id,
            EventKind.PLACED,
            now,
            values={**values, "order_id": order_id, "error_message": None},
            payload={"order_id": order_id, "reconciled": True},
            divisor_of=self._triggers.divisor_of,
        )


# Rows whose lost claim the book can settle: armed, or paused by a pause that the
# database kept while it lost the resume and the claim after it.
_ARMABLE = (Status.ACTIVE.value, Status.PAUSED.value)
_CHUNK = 500  # tags per IN list: far under either backend's parameter limit
