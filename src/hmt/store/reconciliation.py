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

A basket (a leg of more than one order) has a tag per (trigger, leg, position).
Its orders the book shows are recorded on their own rows (`hmt.store.baskets`),
never as the trigger's outcome: a `triggered` basket stays `triggered` (the
claim taken over if its lease expired) until every order is settled, then
finishes; an `active` basket with any order in the book (its claim lost) is
claimed under this engine in one transaction, its orders in the book recorded
placed, and is left `triggered`, so recovery (adopt) settles the rest by tag.
Every v2 row's basket is read for its tags (its orders may trade instruments
other than the row's).
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.broker import OrderReport
from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.types import Leg, TriggerId, TriggerType
from hmt.store import baskets, events
from hmt.store.records import TriggerRecord, record_from_row
from hmt.store.tables import gtt_orders as t
from hmt.store.tables import trigger_orders as o
from hmt.store.triggers import TriggerStore, apply_event

log = structlog.get_logger("hmt.store.reconciliation")


class TagOf(Protocol):
    """The broker adapter's tag of the order at (trigger, leg, position in the leg's
    basket). Called with two arguments for position 0 (a one-order leg's tag, as
    before baskets), so a rule that knows no positions still reconciles v1 rows."""

    def __call__(self, trigger_id: TriggerId, leg: Leg, position: int = 0, /) -> str: ...


def tag_at(tag_of: TagOf, trigger_id: TriggerId, leg: Leg, position: int) -> str:
    return tag_of(trigger_id, leg) if position == 0 else tag_of(trigger_id, leg, position)


# A row carrying a tag: id, the trigger's status, tag, and the basket position (None:
# the trigger row's own `broker_tag`).
_Carrier = tuple[TriggerId, "Status", str, "int | None"]


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
        for trigger_id, status, tag, position in known:
            if status is Status.TRIGGERED and trigger_id not in skip:
                report = by_tag[tag]
                if await self._settle_triggered(trigger_id, tag, report.order_id, position):
                    settled.append(Reconciled(trigger_id, report.order_id, status))
        # An active row may carry a tag from an earlier claim (released): it is matched
        # with the other active rows below, by its computed tags.
        carried = {tag for _, status, tag, _ in known if status is not Status.ACTIVE}
        unknown = {tag: report for tag, report in by_tag.items() if tag not in carried}
        if unknown:
            settled += await self._settle_active(unknown, tag_of, skip)
        for item in settled:
            log.warning(
                "reconciled", trigger_id=item.trigger_id, order_id=item.order_id, was=item.was.value
            )
        return settled

    async def _known(self, tags: builtins.list[str]) -> builtins.list[_Carrier]:
        """Rows that carry one of `tags` (any status): their order is already theirs.

        A trigger row by its `broker_tag` (a basket's first order's too), a basket's
        order by its own row (each once: position 0's row and the trigger's tag agree).
        """

        async def work(conn: AsyncConnection) -> builtins.list[_Carrier]:
            found: dict[tuple[TriggerId, str], _Carrier] = {}
            for start in range(0, len(tags), _CHUNK):
                chunk = tags[start : start + _CHUNK]
                query = select(t.c.id, t.c.status, t.c.broker_tag).where(t.c.broker_tag.in_(chunk))
                for trigger_id, status, tag in (await conn.execute(query)).all():
                    key = (TriggerId(str(trigger_id)), str(tag))
                    found[key] = (*key[:1], Status(status), str(tag), None)
                orders = (
                    select(o.c.trigger_id, t.c.status, o.c.tag, o.c.position)
                    .join(t, t.c.id == o.c.trigger_id)
                    .where(o.c.tag.in_(chunk))
                )
                for trigger_id, status, tag, position in (await conn.execute(orders)).all():
                    key = (TriggerId(str(trigger_id)), str(tag))
                    found[key] = (key[0], Status(status), str(tag), int(position))
            return builtins.list(found.values())

        return await self._triggers.db.transaction(work, write=False)

    async def _settle_triggered(
        self, trigger_id: TriggerId, tag: str, order_id: str, position: int | None = None
    ) -> bool:
        """A claimed row whose order the book has: placed, if the claim is ours to settle.

        A basket's order (`position`, or the trigger's own tag on a basket) is
        recorded on its row instead, and the trigger finishes if that was its last.
        """
        now = self._triggers.clock()
        owner = self._owner
        settleable = or_(
            t.c.claimed_by.is_(None),
            t.c.claimed_by == owner,
            t.c.claim_expires_at.is_(None),
            t.c.claim_expires_at <= now,
        )
        where = [t.c.id == trigger_id, t.c.status == Status.TRIGGERED.value, settleable]
        if position is None:
            where.append(t.c.broker_tag == tag)
        query = select(t.c.user_id, t.c.attempts, t.c.legs).where(*where).with_for_update()

        async def work(conn: AsyncConnection) -> bool:
            row = (await conn.execute(query)).first()
            if row is None:  # settled meanwhile, or another live engine's claim
                return False
            if position is not None or row.legs is not None:
                record = await self._record(conn, trigger_id)
                if baskets.size(record) > 1:
                    return await self._basket_order(conn, record, position or 0, tag, order_id)
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

    async def _record(self, conn: AsyncConnection, trigger_id: TriggerId) -> TriggerRecord:
        row = (await conn.execute(select(t).where(t.c.id == trigger_id))).one()
        return record_from_row(row._mapping, self._triggers.divisor_of)

    async def _basket_order(
        self,
        conn: AsyncConnection,
        record: TriggerRecord,
        position: int,
        tag: str,
        order_id: str,
    ) -> bool:
        """A claimed basket's order found in the book: placed on its row (an order never
        counted gets its `order_sent`), the claim taken (a fresh lease) if it had expired;
        the trigger finishes if every order is now settled. False if already settled."""
        now, owner, leg = self._triggers.clock(), self._owner, record.triggered_leg
        assert leg is not None
        stored = await baskets.rows(conn, record.id, leg)
        current = stored.get(position)
        if current is not None and current.status in baskets.SETTLED:
            return False  # a failed order the book shows is left to be seen (never ours)
        values: dict[str, Any] = {"updated_at": now}
        count_sent = current is None or not current.attempts  # the book has it: a request left
        await baskets.found(
            conn,
            trigger_id=record.id,
            user_id=record.trigger.user_id,
            leg=leg,
            position=position,
            tag=tag,
            order_id=order_id,
            owner=owner,
            now=now,
            count_sent=count_sent,
        )
        if count_sent:
            values["attempts"] = record.attempts + 1
        if record.claimed_by != owner:
            values.update(claimed_by=owner, claim_expires_at=now + self._lease)
        await conn.execute(update(t).where(t.c.id == record.id).values(values))
        record = await self._record(conn, record.id)
        await baskets.finish(conn, record, now, self._triggers.divisor_of)
        return True

    async def _settle_active(
        self, unknown: Mapping[str, OrderReport], tag_of: TagOf, skip: Collection[TriggerId]
    ) -> builtins.list[Reconciled]:
        """Active rows whose computed tag is in the book: their claim was lost; place them
        (a basket: claim it and record the orders found)."""

        async def candidates(conn: AsyncConnection) -> builtins.list[_Match]:
            return await self._candidates(conn, unknown, tag_of)

        settled = []
        for trigger_id, leg, found, count in await self._triggers.db.transaction(
            candidates, write=False
        ):
            if trigger_id in skip:
                continue
            ids = {position: unknown[tag].order_id for position, tag in found.items()}
            if count == 1:
                was = await self._claim_and_place(trigger_id, leg, found[0], ids[0])
            else:
                first = tag_of(trigger_id, leg)
                was = await self._claim_basket(trigger_id, leg, first, found, ids)
            if was is not None:
                settled.append(Reconciled(trigger_id, ids[min(ids)], was))
        return settled

    async def _candidates(
        self, conn: AsyncConnection, unknown: Mapping[str, OrderReport], tag_of: TagOf
    ) -> builtins.list[_Match]:
        """Armable rows with an order (tag) in `unknown`, each with what the book has."""
        tokens = {report.instrument_token for report in unknown.values()}
        where = [t.c.status.in_(_ARMABLE), t.c.legs.is_(None)]
        if None not in tokens:  # every order names its instrument: only those rows
            where.append(t.c.instrument_token.in_(sorted(tokens)))
        matches: builtins.list[_Match] = []
        for trigger_id, trigger_type in (
            await conn.execute(select(t.c.id, t.c.trigger_type).where(*where))
        ).all():
            single = trigger_type == TriggerType.SINGLE.value
            for leg in (Leg.FIRST,) if single else (Leg.FIRST, Leg.SECOND):
                tag = tag_of(TriggerId(str(trigger_id)), leg)
                if tag in unknown:
                    matches.append((TriggerId(str(trigger_id)), leg, {0: tag}, 1))
                    break
        # A v2 row's orders may trade other instruments than the row's: all are read.
        v2 = select(t).where(t.c.status.in_(_ARMABLE), t.c.legs.is_not(None))
        for row in (await conn.execute(v2)).all():
            trigger = record_from_row(row._mapping, self._triggers.divisor_of).trigger
            for leg in trigger.legs:
                count = len(trigger.orders(leg))
                tags = {p: tag_at(tag_of, trigger.id, leg, p) for p in range(count)}
                found = {p: tag for p, tag in tags.items() if tag in unknown}
                if found:
                    matches.append((trigger.id, leg, found, len(tags)))
                    break
        return matches

    async def _claim_basket(
        self,
        trigger_id: TriggerId,
        leg: Leg,
        first: str,
        found: Mapping[int, str],
        ids: Mapping[int, str],
    ) -> Status | None:
        """A basket whose claim was lost, some of its orders in the book: claimed again
        under this engine, those orders recorded placed, the trigger left `triggered` for
        recovery to settle the rest (finished if the book had them all). One transaction;
        the status it had (active or paused), or None if it was no longer armable."""
        now, owner = self._triggers.clock(), self._owner

        async def work(conn: AsyncConnection) -> Status | None:
            was = await self._reclaim(conn, trigger_id, leg, first, now, attempts=0)
            if was is None:
                return None
            record = await self._record(conn, trigger_id)
            for position in sorted(found):
                await baskets.found(
                    conn,
                    trigger_id=trigger_id,
                    user_id=record.trigger.user_id,
                    leg=leg,
                    position=position,
                    tag=found[position],
                    order_id=ids[position],
                    owner=owner,
                    now=now,
                    count_sent=True,
                )
            await conn.execute(
                update(t)
                .where(t.c.id == trigger_id)
                .values(attempts=record.attempts + len(found), updated_at=now)
            )
            record = await self._record(conn, trigger_id)
            await baskets.finish(conn, record, now, self._triggers.divisor_of)
            return was

        return await self._triggers.db.transaction(work)

    async def _claim_and_place(
        self, trigger_id: TriggerId, leg: Leg, tag: str, order_id: str
    ) -> Status | None:
        """The lost claim made again, with the order the book shows: one transaction.

        The status the row had (active or paused), or None if it was no longer armable.
        """
        now = self._triggers.clock()
        owner = self._owner

        async def work(conn: AsyncConnection) -> Status | None:
            was = await self._reclaim(conn, trigger_id, leg, tag, now, attempts=1)
            if was is None:
                return None
            user_id, attempts = await self._user_attempts(conn, trigger_id)
            entries: builtins.list[tuple[EventKind, Mapping[str, Any]]] = [
                (EventKind.ORDER_SENT, {"attempt": attempts, "engine": owner, "reconciled": True}),
                (EventKind.RECONCILED, {"order_id": order_id, "engine": owner}),
            ]
            await events.append_many(conn, trigger_id, user_id, now, entries)
            await self._placed(conn, trigger_id, order_id, now, {})
            return was

        return await self._triggers.db.transaction(work)

    async def _user_attempts(self, conn: AsyncConnection, trigger_id: TriggerId) -> tuple[str, int]:
        query = select(t.c.user_id, t.c.attempts).where(t.c.id == trigger_id)
        row = (await conn.execute(query)).one()
        return str(row.user_id), int(row.attempts or 0)

    async def _reclaim(
        self,
        conn: AsyncConnection,
        trigger_id: TriggerId,
        leg: Leg,
        tag: str,
        now: datetime,
        *,
        attempts: int,
    ) -> Status | None:
        """The lost claim made again under this engine (`fired`, `claimed`; a paused row
        `resumed` first), `attempts` more requests counted; the status the row had, or
        None if it was no longer armable."""
        owner = self._owner
        query = (
            select(t.c.user_id, t.c.attempts, t.c.status)
            .where(t.c.id == trigger_id, t.c.status.in_(_ARMABLE))
            .with_for_update()
        )
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
        user_id = str(row.user_id)
        claim = {
            "triggered_leg": int(leg),
            "triggered_price": None,
            "triggered_at": now,
            "broker_tag": tag,
            "claimed_by": owner,
            "claim_expires_at": now + self._lease,
            "attempts": int(row.attempts or 0) + attempts,
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
        return None if written is None else Status(row.status)

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
# An active row whose lost claim the book shows: id, leg, {position: tag found}, basket size.
_Match = tuple[TriggerId, Leg, dict[int, str], int]
