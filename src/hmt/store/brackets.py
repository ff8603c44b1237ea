"""Brackets as stored (`hmt_brackets`, `hmt_bracket_events`), beside their triggers.

A bracket's row has the id of its entry trigger, created in the same
transaction. A report on the entry order (`report`) is applied in one
transaction holding the bracket's row: the decision is the core's
(`core.brackets.on_report`); a new exit trigger is inserted under the id
derived from the bracket and its generation, a live exit grows by an edit of
its quantity (so a claim racing it with the old quantity fails, as it would
against a user's edit), and the bracket's `filled`, `armed` and status move
together with the exit. A crash before the commit leaves nothing; a replayed
report after it finds `armed` equal to the fills and changes nothing.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.brackets import (
    Applied,
    BracketState,
    EntryReport,
    Exits,
    Waiting,
    check_entry,
    check_exits,
    exit_id,
    exit_trigger,
    on_report,
)
from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.events import EventKind
from hmt.core.instruments import Instrument
from hmt.core.lifecycle import Status, transition
from hmt.core.model import Trigger
from hmt.core.trailing import Offset, Reference, Trail
from hmt.core.types import Side, TriggerId
from hmt.store.records import TriggerRecord
from hmt.store.rls import scope
from hmt.store.tables import bracket_events as be
from hmt.store.tables import brackets as b
from hmt.store.tables import gtt_orders as t
from hmt.store.triggers import (
    TriggerNotFound,
    TriggerStore,
    _check_new,
    _fetch,
    _insert,
    _read,
    apply_event,
)

LIVE = (Status.OPEN.value, Status.ARMED.value)
_EXIT_OPEN = (Status.ACTIVE.value, Status.PAUSED.value)
# How the entry trigger ending without an order ends its bracket.
_ENTRY_ENDED = {
    Status.FAILED.value: EventKind.FAILED,
    Status.CANCELLED.value: EventKind.CANCELLED,
    Status.EXPIRED.value: EventKind.EXPIRED,
}


@dataclass(frozen=True, slots=True)
class BracketRecord:
    """A bracket: its row, its entry and exit triggers, and its history."""

    id: TriggerId
    user_id: str
    status: Status
    exits: Exits
    filled: int
    armed: int
    generation: int
    entry_status: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    entry: TriggerRecord
    exit_records: tuple[TriggerRecord, ...] = ()
    history: tuple[tuple[EventKind, datetime, Mapping[str, Any]], ...] = ()


def exits_to_json(exits: Exits) -> dict[str, Any]:
    trail = exits.trail
    return {
        "target": exits.target,
        "stop": exits.stop,
        "trail": None
        if trail is None
        else {
            "side": trail.side.value,
            "kind": trail.kind.value,
            "offset": trail.offset,
            "tick": trail.tick,
            "activation": trail.activation,
            "step": trail.step,
            "reference": trail.reference.value,
        },
    }


def exits_from_json(value: Mapping[str, Any]) -> Exits:
    raw = value.get("trail")
    trail = (
        None
        if raw is None
        else Trail(
            side=Side(raw["side"]),
            kind=Offset(raw["kind"]),
            offset=int(raw["offset"]),
            tick=int(raw["tick"]),
            activation=raw.get("activation"),
            step=raw.get("step"),
            reference=Reference(raw.get("reference", Reference.LTP.value)),
        )
    )
    stop = value.get("stop")
    return Exits(target=int(value["target"]), stop=None if stop is None else int(stop), trail=trail)


class BracketStore:
    """Creates brackets, applies the broker's reports on their entries, reads them."""

    def __init__(self, triggers: TriggerStore) -> None:
        self.triggers = triggers
        self.db = triggers.db
        self.clock: Callable[[], datetime] = triggers.clock

    async def create(
        self,
        entry: Trigger,
        exits: Exits,
        *,
        instrument: Instrument | None = None,
        watch: Instrument | None = None,
    ) -> BracketRecord:
        """The entry trigger and the bracket's row, with both `created` events, or neither."""
        now = self.clock()
        try:
            check_entry(entry)
            check_exits(entry, exits)
        except ValueError as error:
            raise InvalidTrigger([FieldError("exits", "bracket", str(error))]) from None
        _check_new(entry, instrument, watch, now)

        async def work(conn: AsyncConnection) -> BracketRecord:
            await scope(conn, entry.user_id)
            await _insert(
                conn,
                entry,
                now,
                instrument,
                watch,
                self.triggers.divisor_of,
                self.triggers.partitions,
            )
            await conn.execute(
                insert(b).values(
                    id=entry.id,
                    user_id=entry.user_id,
                    status=Status.OPEN.value,
                    exits=exits_to_json(exits),
                    created_at=now,
                    updated_at=now,
                )
            )
            await _append(conn, entry.id, entry.user_id, now, [(EventKind.CREATED, {})])
            return await self._read(conn, entry.id, entry.user_id)

        return await self.db.transaction(work)

    async def get(self, user_id: str, bracket_id: str) -> BracketRecord:
        """One of `user_id`'s brackets; `TriggerNotFound` for a missing or foreign id."""
        try:
            bracket_id = str(uuid.UUID(bracket_id))
        except ValueError:
            raise TriggerNotFound(bracket_id) from None

        async def work(conn: AsyncConnection) -> BracketRecord:
            await scope(conn, user_id)
            return await self._read(conn, bracket_id, user_id)

        return await self.db.transaction(work, write=False)

    async def is_bracket(self, user_id: str, trigger_id: str) -> bool:
        async def work(conn: AsyncConnection) -> bool:
            await scope(conn, user_id)
            query = select(b.c.id).where(b.c.id == trigger_id, b.c.user_id == user_id)
            return (await conn.execute(query)).first() is not None

        return await self.db.transaction(work, write=False)

    async def live(self) -> builtins.list[Waiting]:
        """Every bracket still waiting for fills (open or armed), every user's."""
        query = (
            select(b.c.id, b.c.user_id, t.c.status, t.c.broker_tag, t.c.order_id, t.c.account)
            .join(t, t.c.id == b.c.id)
            .where(b.c.status.in_(LIVE))
            .order_by(b.c.created_at)
        )

        async def work(conn: AsyncConnection) -> builtins.list[Waiting]:
            rows = (await conn.execute(query)).all()
            return [
                Waiting(TriggerId(str(r[0])), r[1], Status(r[2]), r[3], r[4], r[5]) for r in rows
            ]

        return await self.db.transaction(work, write=False)

    async def by_tag(self, tag: str) -> TriggerId | None:
        """The live bracket whose entry's order carries `tag`, if any."""
        query = (
            select(b.c.id)
            .join(t, t.c.id == b.c.id)
            .where(b.c.status.in_(LIVE), t.c.broker_tag == tag)
        )

        async def work(conn: AsyncConnection) -> TriggerId | None:
            row = (await conn.execute(query)).first()
            return None if row is None else TriggerId(str(row[0]))

        return await self.db.transaction(work, write=False)

    async def report(self, bracket_id: TriggerId, report: EntryReport) -> Applied | None:
        """Apply the broker's word on the entry order; None when it changes nothing."""
        now = self.clock()

        async def work(conn: AsyncConnection) -> Applied | None:
            row = (
                await conn.execute(select(b).where(b.c.id == bracket_id).with_for_update())
            ).first()
            if row is None:
                return None
            generation = int(row.generation)
            latest = None
            if generation:
                latest = (
                    await conn.execute(
                        select(t.c.status, t.c.quantity)
                        .where(t.c.id == exit_id(bracket_id, generation))
                        .with_for_update()
                    )
                ).first()
            state = BracketState(
                Status(row.status),
                int(row.filled),
                int(row.armed),
                generation,
                exit_open=latest is not None and latest.status in _EXIT_OPEN,
                exit_quantity=0 if latest is None else int(latest.quantity),
            )
            decision = on_report(state, report)
            if decision is None:
                return None
            touched = None
            if decision.arm:
                entry = await self._entry(conn, bracket_id)
                exits = exits_from_json(row.exits)
                exit = exit_trigger(entry.trigger, exits, decision.state.generation, decision.arm)
                await _insert(
                    conn, exit, now, None, None, self.triggers.divisor_of, self.triggers.partitions
                )
                await _copy_units(conn, exit.id, entry)
                touched = exit.id
            elif decision.grow_to:
                touched = exit_id(bracket_id, generation)
                await apply_event(
                    conn,
                    touched,
                    EventKind.UPDATED,
                    now,
                    values={"quantity": decision.grow_to},
                    payload={"quantity": decision.grow_to, "bracket": bracket_id},
                )
            new = decision.state
            await conn.execute(
                update(b)
                .where(b.c.id == bracket_id, b.c.armed == state.armed)
                .values(
                    status=new.status.value,
                    filled=new.filled,
                    armed=new.armed,
                    generation=new.generation,
                    entry_status=report.status,
                    error_message=decision.reason,
                    updated_at=now,
                )
            )
            await _append(conn, bracket_id, row.user_id, now, decision.events)
            return Applied(decision, touched)

        return await self.db.transaction(work)

    async def entry_ended(self, bracket_id: TriggerId) -> Status | None:
        """An open bracket whose entry trigger ended without an order (failed,
        cancelled or expired) ends the same way, with its reason; None: it did not."""
        now = self.clock()

        async def work(conn: AsyncConnection) -> Status | None:
            row = (
                await conn.execute(
                    select(b.c.status, b.c.user_id, t.c.status, t.c.error_message, t.c.order_id)
                    .join(t, t.c.id == b.c.id)
                    .where(b.c.id == bracket_id)
                    .with_for_update(of=b)
                )
            ).first()
            if row is None or row[0] != Status.OPEN.value or row[2] not in _ENTRY_ENDED:
                return None
            if row[2] == Status.FAILED.value and row[4] is not None:
                return None  # an order exists: its fills or its end decide
            kind = _ENTRY_ENDED[row[2]]
            status = transition(Status.OPEN, kind)
            reason = row[3] or f"entry {row[2]}"
            await conn.execute(
                update(b)
                .where(b.c.id == bracket_id, b.c.status == Status.OPEN.value)
                .values(status=status.value, error_message=reason, updated_at=now)
            )
            await _append(conn, bracket_id, row[1], now, [(kind, {"error": reason})])
            return status

        return await self.db.transaction(work)

    async def _entry(self, conn: AsyncConnection, bracket_id: str) -> TriggerRecord:
        return await _read(conn, await _fetch(conn, bracket_id, None), self.triggers.divisor_of)

    async def _read(self, conn: AsyncConnection, bracket_id: str, user_id: str) -> BracketRecord:
        row = (
            await conn.execute(select(b).where(b.c.id == bracket_id, b.c.user_id == user_id))
        ).first()
        if row is None:
            raise TriggerNotFound(bracket_id)
        entry = await _read(conn, await _fetch(conn, bracket_id, user_id), self.triggers.divisor_of)
        exits = []
        for generation in range(1, int(row.generation) + 1):
            try:
                fetched = await _fetch(conn, exit_id(bracket_id, generation), user_id)
            except TriggerNotFound:
                continue
            exits.append(await _read(conn, fetched, self.triggers.divisor_of))
        history = (
            await conn.execute(
                select(be.c.kind, be.c.at, be.c.payload)
                .where(be.c.bracket_id == bracket_id)
                .order_by(be.c.id)
            )
        ).all()
        return BracketRecord(
            id=TriggerId(str(row.id)),
            user_id=row.user_id,
            status=Status(row.status),
            exits=exits_from_json(row.exits),
            filled=int(row.filled),
            armed=int(row.armed),
            generation=int(row.generation),
            entry_status=row.entry_status,
            error_message=row.error_message,
            created_at=row.created_at,
            updated_at=row.updated_at,
            entry=entry,
            exit_records=tuple(exits),
            history=tuple((EventKind(k), at, dict(p)) for k, at, p in history),
        )


async def _copy_units(conn: AsyncConnection, exit: TriggerId, entry: TriggerRecord) -> None:
    """The exit trades what the entry does: the same grid the entry was checked against."""
    if entry.tick_size is None and entry.lot_size is None:
        return
    columns = (await conn.execute(select(t.c.tick_size).where(t.c.id == entry.id))).first()
    await conn.execute(
        update(t)
        .where(t.c.id == exit)
        .values(tick_size=None if columns is None else columns[0], lot_size=entry.lot_size)
    )


async def _append(
    conn: AsyncConnection,
    bracket_id: str,
    user_id: str,
    now: datetime,
    entries: Any,
) -> None:
    rows = [
        {
            "bracket_id": bracket_id,
            "user_id": user_id,
            "kind": k.value,
            "at": now,
            "payload": dict(p),
        }
        for k, p in entries
    ]
    if rows:
        await conn.execute(insert(be), rows)
