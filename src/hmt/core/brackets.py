"""Brackets: an entry whose fills arm a target and a stop, one cancelling the other.

A bracket is three parts (docs/triggers.md, "Brackets"): its entry, an ordinary
trigger of one leg and one order whose id is the bracket's; the exits asked for
(`Exits`); and the exit triggers armed by the entry order's fills, each an oco
trigger (leg 1 the stop, leg 2 the target) for the opposite side and the same
product, so the oco's one claim lets at most one exit be placed.

The decision a fill makes is `on_report`, a pure function of the bracket's
stored state and the broker's word on the entry order; the store applies it in
one transaction. Each exit trigger's id is derived from the bracket's and its
generation (`exit_id`): a replayed fill finds the exits it would arm already
armed (the stored `armed` equals the filled quantity), and a second insert of
the same exit is a primary-key conflict, so exits are armed exactly once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from hmt.core.events import EventKind
from hmt.core.lifecycle import Status, transition
from hmt.core.model import LegSpec, Trigger
from hmt.core.trailing import Trail
from hmt.core.types import Leg, OrderType, Side, TriggerId, TriggerType

# The broker's final statuses of an order (FACTS 2.2): nothing fills after them.
FINAL = frozenset({"COMPLETE", "CANCELLED", "REJECTED"})
# Exit ids: uuid5 of the bracket's id and generation in this namespace (pinned by a test;
# RFC 4122's name-based UUID, written out: the core imports no uuid, whose uuid4 is random).
_EXITS = bytes.fromhex("6f1d6a523c1e4b7e9a530b9a1c1e5e14")


@dataclass(frozen=True, slots=True)
class Exits:
    """The exits a bracket asks for, in wire units of the entry order's instrument.

    `stop` is a fixed stop price; `trail` a trailing stop instead (then `stop` is
    None). Exits are MARKET orders of the entry's product.
    """

    target: int
    stop: int | None = None
    trail: Trail | None = None

    def __post_init__(self) -> None:
        if (self.stop is None) == (self.trail is None):
            raise ValueError("exits need exactly one of stop and trail")
        if self.target < 1 or (self.stop is not None and self.stop < 1):
            raise ValueError("exit prices must be positive")


@dataclass(frozen=True, slots=True)
class EntryReport:
    """The broker's word on the entry order: an order update, or a row of its book."""

    order_id: str
    status: str
    filled: int
    message: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL


@dataclass(frozen=True, slots=True)
class BracketState:
    """A bracket as stored: `armed` is the sum of its exits' quantities, `generation`
    the number of exit triggers made, `exit_open` whether the latest may still grow
    (it is active or paused: none of its legs has fired)."""

    status: Status
    filled: int = 0
    armed: int = 0
    generation: int = 0
    exit_open: bool = False
    exit_quantity: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """What a report changes: the new state, the events to append, and at most one of
    arming a new exit (`arm`: its quantity) or growing the latest (`grow_to`)."""

    state: BracketState
    events: tuple[tuple[EventKind, Mapping[str, Any]], ...]
    arm: int = 0
    grow_to: int = 0
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Waiting:
    """A bracket still waiting for fills (open or armed), with its entry trigger's state."""

    id: TriggerId
    user_id: str
    entry_status: Status
    broker_tag: str | None
    order_id: str | None
    # The entry's account (None: the default): its order, so its fills, are in that
    # account's book only, and its exits trade through it too.
    account: str | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """What a report did: the decision, and the exit trigger armed or grown (if any)."""

    decision: Decision
    exit_id: TriggerId | None


def check_entry(entry: Trigger) -> None:
    """A bracket's entry: one leg of one order (a price or a time condition)."""
    if entry.trigger_type is not TriggerType.SINGLE:
        raise ValueError("a bracket's entry is a single trigger (one leg)")
    if len(entry.orders(Leg.FIRST)) != 1:
        raise ValueError("a bracket's entry places exactly one order")


def check_exits(entry: Trigger, exits: Exits) -> None:
    """The target above and the stop below a long entry's order (reversed for a short)."""
    [order] = entry.orders(Leg.FIRST)
    stop = exits.stop
    if exits.trail is not None:
        if exits.trail.side is order.side:
            raise ValueError("the trailing stop's side is the exit's: opposite the entry's")
        return
    assert stop is not None  # Exits holds one of the two
    if order.side is Side.BUY and not stop < exits.target:
        raise ValueError("a long bracket's stop must be below its target")
    if order.side is Side.SELL and not exits.target < stop:
        raise ValueError("a short bracket's stop must be above its target")


def on_report(state: BracketState, report: EntryReport) -> Decision | None:
    """What the broker's word on the entry order does to the bracket; None: nothing.

    Fills only grow (an update older than the stored state is ignored). The exits
    cover the new fills: the latest exit grows while none of its legs has fired;
    once one has, the new fills get an exit of their own (a top-up, armed at the
    same prices) rather than be left unprotected. Exits never exceed the filled
    quantity. A final status closes the bracket: `filled` with fills, `failed`
    with the broker's reason without.
    """
    if state.status not in (Status.OPEN, Status.ARMED):
        return None
    events: list[tuple[EventKind, Mapping[str, Any]]] = []
    status: Status = state.status
    filled, armed = max(state.filled, report.filled), state.armed
    arm = grow_to = 0
    generation, exit_open, exit_quantity = state.generation, state.exit_open, state.exit_quantity
    if filled > armed:
        delta = filled - armed
        if exit_open:
            grow_to = exit_quantity + delta
            exit_quantity, action = grow_to, "grown"
        else:
            arm, generation, exit_open, exit_quantity = delta, generation + 1, True, delta
            action = "armed" if generation == 1 else "top_up"
        armed = filled
        status = transition(status, EventKind.FILLED)
        events.append(
            (
                EventKind.FILLED,
                {
                    "order_id": report.order_id,
                    "filled": filled,
                    "armed": armed,
                    "exit": action,
                    "generation": generation,
                    "exit_quantity": exit_quantity,
                },
            )
        )
    reason = None
    if report.final:
        if filled:
            kind, payload = EventKind.ENTRY_CLOSED, {"order_id": report.order_id, "filled": filled}
        else:
            kind = EventKind.FAILED
            reason = report.message or f"entry order {report.status.lower()} with nothing filled"
            payload = {"order_id": report.order_id, "status": report.status, "error": reason}
        status = transition(status, kind)
        events.append((kind, {**payload, "entry_status": report.status}))
    if not events:
        return None
    new = BracketState(status, filled, armed, generation, exit_open, exit_quantity)
    return Decision(new, tuple(events), arm=arm, grow_to=grow_to, reason=reason)


def exit_id(bracket_id: str, generation: int) -> TriggerId:
    """The id of a bracket's exit trigger of `generation` (1 for the first)."""
    name = f"{bracket_id.lower()}:{generation}".encode()
    digest = bytearray(hashlib.sha1(_EXITS + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return TriggerId(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")


def may_be_exit(trigger_id: str) -> bool:
    """Whether `trigger_id` could be an exit's: name-based (version 5), as `exit_id` makes
    them. Every id the API gives is random (version 4), so an entry or a plain trigger is
    never mistaken for an exit; the engine reads the order book before arming one."""
    parts = trigger_id.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and parts[2][0] == "5"


def exit_trigger(entry: Trigger, exits: Exits, generation: int, quantity: int) -> Trigger:
    """The oco exit for `quantity` of the entry's fills: on the entry order's
    instrument, opposite side, same product, MARKET, through the entry's account (the
    position is there); leg 1 the stop, leg 2 the target."""
    [order] = entry.orders(Leg.FIRST)
    side = Side.SELL if order.side is Side.BUY else Side.BUY
    trail = None if exits.trail is None else replace(exits.trail, side=side)
    specs = (LegSpec(trail=trail), LegSpec()) if trail is not None else ()
    return Trigger(
        id=exit_id(entry.id, generation),
        user_id=entry.user_id,
        instrument_token=order.instrument_token,
        exchange=order.exchange,
        tradingsymbol=order.tradingsymbol,
        trigger_type=TriggerType.OCO,
        side=side,
        trigger_price_1=exits.stop if exits.stop is not None else 0,
        trigger_price_2=exits.target,
        quantity=quantity,
        product=order.product,
        order_type=OrderType.MARKET,
        price_divisor=order.price_divisor,
        leg_specs=specs,
        account=entry.account,
    )
