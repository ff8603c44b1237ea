"""The rules of a trailing leg (issue 14), beside `core.legs`' rules for the other legs.

`terms_errors` checks a trail's terms as the API reads them, before a `Trail` is
built (its constructor refuses the same things with a `ValueError`, which
names no field). `leg_errors` checks a trailing leg within its trigger: one
condition, its direction, the watched instrument's tick, and what may sit
beside it in an oco. Errors name fields as the v2 body spells them
(`legs[0].condition.trail.step`).
"""

from __future__ import annotations

from hmt.core.errors import FieldError
from hmt.core.instruments import Instrument
from hmt.core.model import LegSpec, Trigger
from hmt.core.rules import direction
from hmt.core.trailing import BPS_PER_UNIT, Offset, Reference, Trail
from hmt.core.types import Direction, Leg, Side

MAX_TICKS = 100_000  # an offset of more ticks is a typo, not a stop


def tick_of(watched: Instrument | None) -> int:
    """The tick a trail on `watched` moves by: its tick size, 1 wire unit for an index
    (whose levels have no grid) or an instrument the master did not list."""
    if watched is None or not watched.tradable or watched.tick_size <= 0:
        return 1
    return watched.tick_size


def side_of(stated: Direction | None, fallback: Side) -> Side:
    """The stop's side: a stated direction says it (at_or_below is a SELL stop), else the
    leg's order side (a SELL protects a long)."""
    if stated is None:
        return fallback
    return Side.SELL if stated is Direction.AT_OR_BELOW else Side.BUY


def terms_errors(
    at: str,
    *,
    side: Side,
    kind: Offset,
    offset: int,
    tick: int,
    activation: int | None,
    step: int | None,
    reference: Reference,
) -> list[FieldError]:
    """Whatever would stop `Trail(...)` from being built, each naming its field under `at`
    (`legs[i].condition.trail`); prices in wire units of the watched instrument."""
    errors: list[FieldError] = []
    if offset < 1:
        errors.append(FieldError(f"{at}.offset", "positive", "must be greater than 0"))
    elif kind is Offset.BPS and offset >= BPS_PER_UNIT:
        errors.append(
            FieldError(f"{at}.offset", "bps_range", "basis points must be 1 to 9999 (below 100%)")
        )
    elif kind is Offset.TICKS and offset > MAX_TICKS:
        errors.append(FieldError(f"{at}.offset", "maximum", f"at most {MAX_TICKS} ticks"))
    if activation is not None:
        if activation < 1:
            errors.append(FieldError(f"{at}.activation", "positive", "must be greater than 0"))
        elif activation % tick:
            errors.append(
                FieldError(
                    f"{at}.activation", "tick_size", "must be a multiple of the watched tick size"
                )
            )
    if step is not None and (step < tick or step % tick):
        errors.append(
            FieldError(
                f"{at}.step",
                "tick_size",
                "must be a whole number of the watched instrument's ticks (at least one)",
            )
        )
    wrong = Reference.ASK if side is Side.SELL else Reference.BID
    if reference is wrong:
        errors.append(
            FieldError(
                f"{at}.reference",
                "side",
                f"a {side.value} stop trails ltp or "
                f"{'bid' if side is Side.SELL else 'ask'}, not {reference.value}",
            )
        )
    return errors


def leg_errors(
    trigger: Trigger, leg: Leg, spec: LegSpec, trail: Trail, watched: Instrument | None
) -> list[FieldError]:
    """A trailing leg in its trigger: no price or time beside it, its direction agreeing
    with its side, its tick the watched instrument's."""
    at = f"legs[{leg - 1}].condition"
    errors: list[FieldError] = []
    threshold = trigger.trigger_price_1 if leg is Leg.FIRST else trigger.trigger_price_2
    if threshold or spec.at is not None:
        errors.append(
            FieldError(at, "one_condition", "a condition is a price, a time or a trail, one only")
        )
    if spec.direction is not None and spec.direction is not trail.direction:
        errors.append(
            FieldError(
                f"{at}.direction",
                "trail_side",
                f"a {trail.side.value} stop fires {trail.direction.value}",
            )
        )
    elif spec.orders and all(
        o.instrument_token == trigger.watched and o.side is not trail.side for o in spec.orders
    ):
        # Its orders trade the watched instrument: a stop that sells trails below the
        # highs, one that buys above the lows; the other way round would never protect.
        errors.append(
            FieldError(
                f"{at}.direction",
                "trail_side",
                f"the orders {spec.orders[0].side.value} the watched instrument: the trailing "
                f"stop is a {spec.orders[0].side.value} stop, firing "
                f"{'at_or_below' if spec.orders[0].side is Side.SELL else 'at_or_above'}",
            )
        )
    if watched is not None and trail.tick != tick_of(watched):
        errors.append(
            FieldError(
                f"{at}.trail", "tick_size", "the trail's tick is not the watched instrument's"
            )
        )
    return errors


def oco_errors(trigger: Trigger) -> list[FieldError]:
    """An oco with a trailing leg: the trail is its stop and the other leg a fixed price
    target pointing the other way (two trails, or a trail beside a time, are refused)."""
    if len(trigger.legs) != 2 or len(trigger.leg_specs) != 2:
        return []
    trails = [trigger.trail(leg) for leg in trigger.legs]
    if all(trail is None for trail in trails):
        return []
    if all(trail is not None for trail in trails):
        return [
            FieldError(
                "legs[1].condition.trail",
                "trail_pair",
                "an oco has one trailing stop; its other leg is a fixed price target",
            )
        ]
    fixed = Leg.SECOND if trails[0] is not None else Leg.FIRST
    trail = trails[0] or trails[1]
    assert trail is not None
    at = f"legs[{fixed - 1}].condition"
    if trigger.fire_at(fixed) is not None:
        return [
            FieldError(
                f"{at}.at",
                "trail_pair",
                "beside a trailing stop the other leg is a price target, not a time",
            )
        ]
    if direction(trigger, fixed) is trail.direction:
        return [
            FieldError(
                f"{at}.direction",
                "oco_direction",
                f"the trailing stop fires {trail.direction.value}: the target must point "
                "the other way",
            )
        ]
    return []
