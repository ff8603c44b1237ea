"""A trailing leg's JSON (docs/api.md, "Trailing stops"): its terms in, its terms and state out.

`condition.trail` replaces a leg's price: the offset is rupees (`price`),
basis points (`bps`) or ticks (`ticks`) of the watched instrument; the
activation and step are rupees on the watched instrument's tick grid. The
record shows the terms as sent and the stop's state: the best reference and
the stop (live from the engine when it holds the leg, else as last written)
and when it was last written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.instruments import Instrument
from hmt.core.prices import to_decimal, to_units
from hmt.core.trail_legs import side_of, terms_errors, tick_of
from hmt.core.trailing import Offset, Reference, Trail, TrailState
from hmt.core.types import Direction, Side
from hmt.engine.facade import EngineApi
from hmt.store.db import Database
from hmt.store.records import TriggerRecord
from hmt.store.trails import TrailStates, terms

# Per leg number: (the state, whether it is the engine's live one, when last written).
TrailViews = Mapping[int, tuple[TrailState | None, bool, datetime | None]]

Amount = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=7)]


class TrailIn(BaseModel):
    """A trailing stop's terms: `offset` in rupees (`kind` price), basis points of the best
    reference (bps, 1 to 9999) or ticks; optional `activation` and `step` in rupees;
    `reference` ltp, or bid (a SELL stop) / ask (a BUY stop) in full tick mode."""

    model_config = ConfigDict(extra="forbid")

    kind: Offset = Offset.PRICE
    offset: Amount
    activation: Amount | None = None
    step: Amount | None = None
    reference: Reference = Reference.LTP


def to_trail(
    body: TrailIn,
    at: str,
    *,
    stated: Direction | None,
    order_side: Side,
    watched: Instrument,
    errors: list[FieldError],
) -> Trail | None:
    """The core `Trail` for `body` on the `watched` instrument, or None with `errors` added
    (each naming its field under `at`, `legs[i].condition.trail`)."""
    divisor, tick = watched.price_divisor, tick_of(watched)
    found: list[FieldError] = []

    def units(value: Decimal | None, name: str) -> int | None:
        if value is None:
            return None
        try:
            return to_units(value, divisor, field=f"{at}.{name}")
        except InvalidTrigger as error:
            found.extend(error.errors)
            return None

    if body.kind is Offset.PRICE:
        offset = units(body.offset, "offset")
    elif body.offset != body.offset.to_integral_value():
        found.append(FieldError(f"{at}.offset", "integer", f"{body.kind.value} are whole numbers"))
        offset = None
    else:
        offset = int(body.offset)
    activation, step = units(body.activation, "activation"), units(body.step, "step")
    side = side_of(stated, order_side)
    if offset is not None:
        found += terms_errors(
            at,
            side=side,
            kind=body.kind,
            offset=offset,
            tick=tick,
            activation=activation,
            step=step,
            reference=body.reference,
        )
    if found or offset is None:
        errors.extend(found)
        return None
    return Trail(side, body.kind, offset, tick, activation, step, body.reference)


def as_json(trail: Trail, divisor: int) -> dict[str, Any]:
    """The terms as a `TrailIn` body spells them (an edit's base, the record's terms)."""
    return {
        "kind": trail.kind,
        "offset": to_decimal(trail.offset, divisor)
        if trail.kind is Offset.PRICE
        else Decimal(trail.offset),
        "activation": None if trail.activation is None else to_decimal(trail.activation, divisor),
        "step": None if trail.step is None else to_decimal(trail.step, divisor),
        "reference": trail.reference,
    }


class TrailStateOut(BaseModel):
    """Where the stop stands: null best and stop until the activation is touched.

    `live` is true when the engine holds the leg now (the numbers are its own),
    false when they are the last written ones; `written_at` is when they were
    last written (null if never: the engine writes at most every
    HMT_TRAIL_FLUSH_MS, only when the stop moved)."""

    best: Decimal | None
    stop: Decimal | None
    live: bool
    written_at: datetime | None


class TrailOut(BaseModel):
    """A trailing leg's terms, its tick (rupees) and side, and its state."""

    kind: Offset
    offset: Decimal
    activation: Decimal | None
    step: Decimal | None
    reference: Reference
    tick: Decimal
    side: Side
    state: TrailStateOut | None


def trail_out(
    trail: Trail,
    divisor: int,
    state: TrailState | None,
    *,
    live: bool,
    written_at: datetime | None,
) -> TrailOut:
    """The record's view of a trailing leg; `state` None when nothing is known of it."""
    shown = None
    if state is not None or written_at is not None:
        best = None if state is None else state.best
        stop = None if state is None else state.stop
        shown = TrailStateOut(
            best=None if best is None else to_decimal(best, divisor),
            stop=None if stop is None else to_decimal(stop, divisor),
            live=live,
            written_at=written_at,
        )
    return TrailOut(
        **as_json(trail, divisor),
        tick=to_decimal(trail.tick, divisor),
        side=trail.side,
        state=shown,
    )


async def views(
    db: Database, engine: EngineApi, records: Sequence[TriggerRecord]
) -> dict[str, TrailViews]:
    """Per trigger id with trailing legs, each leg's state: the engine's live one when it
    holds the leg, else the last written one; and when it was last written."""
    trailing = [r.trigger for r in records if any(r.trigger.trail(leg) for leg in r.trigger.legs)]
    if not trailing:
        return {}
    written = await TrailStates(db).read(t.id for t in trailing)
    out: dict[str, TrailViews] = {}
    for trigger in trailing:
        legs: dict[int, tuple[TrailState | None, bool, datetime | None]] = {}
        for leg in trigger.legs:
            trail = trigger.trail(leg)
            if trail is None:
                continue
            stored = written.get((trigger.id, int(leg)))
            at = None if stored is None else stored.written_at
            live = engine.trail_state(trigger.id, leg)
            if live is not None:
                legs[int(leg)] = (live, True, at)
            elif stored is not None and stored.terms == terms(trail):
                legs[int(leg)] = (stored.state, False, at)
        out[trigger.id] = legs
    return out
