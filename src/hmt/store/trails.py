"""Trailing stops in the store (issue 14): a leg's terms in the `legs` column, its state
in `hmt_trail_states`.

In the `legs` JSON a trailing leg carries `"trail"`; prices are rupees as exact
decimal strings with the watched instrument's `price_divisor` (a basis-point or
tick offset is a whole number):

    {"side": "SELL", "kind": "price" | "bps" | "ticks", "offset": "12.5" | 150,
     "tick": "0.05", "activation": "2500" | null, "step": "1" | null,
     "reference": "ltp" | "bid" | "ask", "price_divisor": 100}

`hmt_trail_states` holds where each trailing leg's stop stood when the engine
last wrote it: best and stop in wire units (both NULL before activation), and
the terms as above (as canonical JSON text), so a state is resumed only by a
leg whose terms are still the same (an edit of the terms starts afresh).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.model import Trigger
from hmt.core.prices import to_decimal, to_units
from hmt.core.trailing import Offset, Reference, Trail, TrailState
from hmt.core.types import Leg, Side
from hmt.store.columns import canonical
from hmt.store.db import Database
from hmt.store.tables import trail_states as ts

# Rows per statement: far below SQLite's limit on bound parameters (6 per row).
_CHUNK = 500


def to_json(trail: Trail, divisor: int) -> dict[str, Any]:
    """A trail as the `legs` column spells it (see the module's docstring)."""

    def rupees(units: int | None) -> str | None:
        return None if units is None else canonical(to_decimal(units, divisor))

    return {
        "side": trail.side.value,
        "kind": trail.kind.value,
        "offset": rupees(trail.offset) if trail.kind is Offset.PRICE else trail.offset,
        "tick": rupees(trail.tick),
        "activation": rupees(trail.activation),
        "step": rupees(trail.step),
        "reference": trail.reference.value,
        "price_divisor": divisor,
    }


def from_json(value: Any, path: str) -> Trail:
    """The trail a `legs[i].trail` value holds; `InvalidTrigger` naming what is wrong."""
    if not isinstance(value, Mapping):
        raise _error(path, "object", "must be a JSON object")
    divisor = value.get("price_divisor")
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor <= 0:
        raise _error(f"{path}.price_divisor", "positive", "must be an integer above 0")

    def units(name: str, *, required: bool = False) -> int | None:
        raw = value.get(name)
        if raw is None:
            if required:
                raise _error(f"{path}.{name}", "required", "is missing")
            return None
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise _error(f"{path}.{name}", "number", f"{raw!r} is not a price")
        return to_units(str(raw), divisor, field=f"{path}.{name}")

    try:
        side, kind = Side(str(value.get("side"))), Offset(str(value.get("kind")))
        reference = Reference(value.get("reference", Reference.LTP.value))
    except ValueError as error:
        raise _error(path, "enum", str(error)) from None
    if kind is Offset.PRICE:
        offset = units("offset", required=True)
    else:
        offset = value.get("offset")
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise _error(f"{path}.offset", "integer", f"{offset!r} is not a whole number")
    tick = units("tick", required=True)
    assert offset is not None
    assert tick is not None
    try:
        return Trail(side, kind, offset, tick, units("activation"), units("step"), reference)
    except ValueError as error:
        raise _error(path, "trail", str(error)) from None


def terms(trail: Trail) -> str:
    """The terms as `hmt_trail_states.terms` keeps them (wire units, canonical JSON)."""
    return json.dumps(
        [
            trail.side.value,
            trail.kind.value,
            trail.offset,
            trail.tick,
            trail.activation,
            trail.step,
            trail.reference.value,
        ],
        separators=(",", ":"),
    )


@dataclass(frozen=True, slots=True)
class Written:
    """One trailing leg's state as last written."""

    terms: str
    state: TrailState
    written_at: datetime


Key = tuple[str, int]  # (trigger id, leg number)


class TrailStates:
    """`hmt_trail_states`: the engine's writes and reads, and the API's reads."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def terms(self, trigger: Trigger, leg: Leg) -> str:
        """The terms of `trigger`'s trailing `leg` as the table keeps them."""
        trail = trigger.trail(leg)
        if trail is None:
            raise ValueError(f"trigger {trigger.id}'s leg {int(leg)} does not trail")
        return terms(trail)

    async def read(self, trigger_ids: Iterable[str] | None = None) -> dict[Key, Written]:
        """The written state of every trailing leg (of these triggers, if given)."""
        query = select(ts.c.trigger_id, ts.c.leg, ts.c.terms, ts.c.best, ts.c.stop, ts.c.updated_at)
        ids = None if trigger_ids is None else sorted(set(trigger_ids))
        if ids is not None:
            if not ids:
                return {}
            query = query.where(ts.c.trigger_id.in_(ids))

        async def work(conn: AsyncConnection) -> dict[Key, Written]:
            out: dict[Key, Written] = {}
            for trigger_id, leg, text, best, stop, at in await conn.execute(query):
                state = TrailState(
                    None if best is None else int(best), None if stop is None else int(stop)
                )
                out[(str(trigger_id), int(leg))] = Written(text, state, at)
            return out

        return await self.db.transaction(work, write=False)

    async def save(self, states: Mapping[Key, tuple[str, TrailState]], now: datetime) -> None:
        """Write these states ({(id, leg): (terms, state)}), all or none."""
        rows = [
            {
                "trigger_id": trigger_id,
                "leg": leg,
                "terms": text,
                "best": state.best,
                "stop": state.stop,
                "updated_at": now,
            }
            for (trigger_id, leg), (text, state) in states.items()
        ]
        if not rows:
            return

        async def work(conn: AsyncConnection) -> None:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            for start in range(0, len(rows), _CHUNK):
                statement = dialect.insert(ts).values(rows[start : start + _CHUNK])
                new = statement.excluded
                await conn.execute(
                    statement.on_conflict_do_update(
                        index_elements=[ts.c.trigger_id, ts.c.leg],
                        set_={
                            "terms": new.terms,
                            "best": new.best,
                            "stop": new.stop,
                            "updated_at": new.updated_at,
                        },
                    )
                )

        await self.db.transaction(work)

    async def forget(self, keys: Iterable[Key]) -> int:
        """Delete the states of these legs (their triggers are no longer active)."""
        wanted = sorted(set(keys))
        if not wanted:
            return 0

        async def work(conn: AsyncConnection) -> int:
            gone = 0
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                result = await conn.execute(
                    delete(ts).where(tuple_(ts.c.trigger_id, ts.c.leg).in_(chunk))
                )
                gone += int(result.rowcount)
            return gone

        return await self.db.transaction(work)


def _error(path: str, rule: str, message: str) -> InvalidTrigger:
    return InvalidTrigger([FieldError(path, rule, message)])
