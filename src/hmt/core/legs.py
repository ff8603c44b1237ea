"""The rules of a v2 trigger's legs: each condition, each order of each basket.

A v2 trigger (one with `leg_specs`) is checked here instead of by v1's price
and instrument rules; every error names the field as the v2 request spells it
(`legs[0].orders[1].trigger_price`, `watch.instrument_token`, ...), so the
API hands the errors on unchanged. The instruments are the broker's master's
entries, by id, for every order and for the watched instrument; an id missing
from `instruments` is not checked (the caller had no master to ask).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

from hmt.core.errors import FieldError
from hmt.core.instruments import Instrument
from hmt.core.model import LegSpec, OrderSpec, Trigger
from hmt.core.rules import direction
from hmt.core.trail_legs import leg_errors as trail_leg_errors
from hmt.core.trail_legs import oco_errors as trail_oco_errors
from hmt.core.types import MAX_BASKET, Direction, Exchange, Leg, OrderType, Side

Instruments = Mapping[int, Instrument]

# Which prices each order type carries: (price, trigger_price).
_NEEDS: Mapping[OrderType, tuple[bool, bool]] = {
    OrderType.MARKET: (False, False),
    OrderType.LIMIT: (True, False),
    OrderType.SL: (True, True),
    OrderType.SL_M: (False, True),
}


def check_legs(
    trigger: Trigger, *, instruments: Instruments, now: datetime | None
) -> list[FieldError]:
    """Every rule the legs of v2 `trigger` break (empty when they are valid)."""
    errors: list[FieldError] = []
    if len(trigger.leg_specs) != len(trigger.legs):
        wanted = "one leg" if len(trigger.legs) == 1 else "two legs"
        errors.append(FieldError("legs", "count", f"a {trigger.trigger_type} trigger has {wanted}"))
        return errors
    watched = instruments.get(trigger.watched)
    for leg, spec in zip(trigger.legs, trigger.leg_specs, strict=True):
        errors += _condition_errors(trigger, leg, spec, watched, now)
        at = f"legs[{leg - 1}].orders"
        if not 1 <= len(spec.orders) <= MAX_BASKET:
            errors.append(
                FieldError(
                    at, "basket_size", f"a leg has 1 to {MAX_BASKET} orders, not {len(spec.orders)}"
                )
            )
        for k, order in enumerate(spec.orders):
            errors += order_errors(f"{at}[{k}]", order, instruments.get(order.instrument_token))
    errors += _oco_errors(trigger)
    errors += trail_oco_errors(trigger)
    errors += _bound_errors(trigger)
    errors += _mirror_errors(trigger)
    return errors


def instrument_errors(
    prefix: str,
    token: int,
    exchange: Exchange,
    tradingsymbol: str,
    instrument: Instrument | None,
    *,
    traded: bool,
) -> list[FieldError]:
    """Whether token, exchange and symbol name the master's `instrument`; an index
    may be watched but not `traded`."""
    errors = []
    if not tradingsymbol.strip():
        errors.append(FieldError(f"{prefix}tradingsymbol", "required", "must not be empty"))
    if instrument is None or instrument.id != token:
        return errors
    named = f"{instrument.exchange}:{instrument.tradingsymbol}"
    if traded and not instrument.tradable:
        errors.append(
            FieldError(
                f"{prefix}instrument_token",
                "tradable",
                f"{named} is an index: it can be watched, not traded",
            )
        )
    if tradingsymbol.strip() and tradingsymbol != instrument.tradingsymbol:
        errors.append(
            FieldError(
                f"{prefix}tradingsymbol",
                "mismatch",
                f"instrument {instrument.id} is {named}, not {tradingsymbol}",
            )
        )
    if exchange != instrument.exchange:
        errors.append(
            FieldError(
                f"{prefix}exchange",
                "mismatch",
                f"instrument {instrument.id} is {named}, not on {exchange}",
            )
        )
    return errors


def order_errors(at: str, order: OrderSpec, instrument: Instrument | None) -> list[FieldError]:
    """One order of a basket against its own instrument (`at` = `legs[i].orders[k]`)."""
    errors = instrument_errors(
        f"{at}.", order.instrument_token, order.exchange, order.tradingsymbol, instrument,
        traded=True,
    )  # fmt: skip
    if instrument is not None and instrument.id != order.instrument_token:
        instrument = None
    if instrument is not None and order.price_divisor != instrument.price_divisor:
        errors.append(
            FieldError(
                f"{at}.price_divisor",
                "mismatch",
                f"prices are in 1/{order.price_divisor} rupee, instrument "
                f"{instrument.id} is quoted in 1/{instrument.price_divisor}",
            )
        )
    lot = instrument.lot_size if instrument is not None else 1
    if order.quantity < 1:
        errors.append(FieldError(f"{at}.quantity", "minimum", "must be at least 1"))
    elif lot > 1 and order.quantity % lot:
        errors.append(
            FieldError(f"{at}.quantity", "lot_size", f"must be a multiple of the lot size ({lot})")
        )
    return errors + _order_prices(at, order, instrument)


def _order_prices(at: str, order: OrderSpec, instrument: Instrument | None) -> list[FieldError]:
    """The prices an order type carries, on its instrument's grid, the stop on its side."""
    errors: list[FieldError] = []
    wants_price, wants_trigger = _NEEDS[order.order_type]
    kind = order.order_type.value
    for name, value, wanted in (
        ("price", order.price, wants_price),
        ("trigger_price", order.trigger_price, wants_trigger),
    ):
        field = f"{at}.{name}"
        if wanted and value is None:
            errors.append(FieldError(field, "required", f"required for a {kind} order"))
        elif not wanted and value is not None:
            errors.append(FieldError(field, "forbidden", f"a {kind} order has no {name}"))
        elif value is not None and value <= 0:
            errors.append(FieldError(field, "positive", "must be greater than 0"))
        elif value is not None and instrument is not None:
            errors += off_tick(field, value, instrument)
    price, stop = order.price, order.trigger_price
    if order.order_type is OrderType.SL and price and stop and price > 0 and stop > 0:
        # The exchange refuses a stop on the wrong side of its limit.
        if order.side is Side.BUY and stop > price:
            errors.append(
                FieldError(
                    f"{at}.trigger_price", "sl_side", "a BUY SL order needs trigger_price <= price"
                )
            )
        if order.side is Side.SELL and stop < price:
            errors.append(
                FieldError(
                    f"{at}.trigger_price", "sl_side", "a SELL SL order needs trigger_price >= price"
                )
            )
    return errors


def off_tick(field: str, value: int, instrument: Instrument) -> list[FieldError]:
    """A price off the instrument's tick grid, with the two nearest valid prices.

    An index has no tick grid (it is never ordered): any level may be watched.
    """
    tick, divisor = instrument.tick_size, instrument.price_divisor
    if not instrument.tradable or tick <= 0 or value % tick == 0:
        return []
    below = value - value % tick
    places = Decimal(1).scaleb(-(len(str(divisor)) - 1))  # divisors are powers of ten

    def rupees(units: int) -> str:
        return str((Decimal(units) / divisor).quantize(places))

    return [
        FieldError(
            field,
            "tick_size",
            f"{rupees(value)} is not a multiple of {instrument.tradingsymbol}'s tick size "
            f"{rupees(tick)}: the nearest prices are {rupees(below)} and {rupees(below + tick)}",
        )
    ]


def far_side(trigger: Trigger) -> list[str]:
    """Warnings for limit prices on the far side of their leg's condition.

    A BUY limit below the price that fires it (or a SELL limit above) does not
    fill when the leg fires, only if the price comes back: allowed (a trader may
    mean it), but said. Only an order on the watched instrument is comparable.
    """
    out = []
    for leg, spec in zip(trigger.legs, trigger.leg_specs, strict=False):
        if spec.at is not None or spec.trail is not None:
            continue
        level = trigger.trigger_price_1 if leg is Leg.FIRST else trigger.trigger_price_2
        if level is None:
            continue
        for k, order in enumerate(spec.orders):
            price = order.price
            if price is None or order.instrument_token != trigger.watched:
                continue
            if (order.side is Side.BUY and price < level) or (
                order.side is Side.SELL and price > level
            ):
                below = "below" if order.side is Side.BUY else "above"
                out.append(
                    f"legs[{leg - 1}].orders[{k}].price is {below} its leg's condition price: "
                    f"the {order.side.value} order rests until the price comes back to it"
                )
    return out


def _condition_errors(
    trigger: Trigger, leg: Leg, spec: LegSpec, watched: Instrument | None, now: datetime | None
) -> list[FieldError]:
    at = f"legs[{leg - 1}].condition"
    threshold = trigger.trigger_price_1 if leg is Leg.FIRST else trigger.trigger_price_2
    if spec.trail is not None:
        errors = trail_leg_errors(trigger, leg, spec, spec.trail, watched)
        if spec.direction is None and _table_cannot_say(trigger, spec):
            errors.append(
                FieldError(
                    f"{at}.direction",
                    "required",
                    "state at_or_below (a SELL stop) or at_or_above (a BUY stop): an order "
                    "trades another instrument than the watched one, or the other side",
                )
            )
        return errors
    if spec.at is not None:
        errors = []
        if threshold:
            errors.append(
                FieldError(at, "one_condition", "a condition is a price or a time, not both")
            )
        if spec.direction is not None:
            errors.append(
                FieldError(f"{at}.direction", "forbidden", "a time condition has no direction")
            )
        return errors + _time_errors(f"{at}.at", spec.at, trigger, now)
    if threshold is None or threshold <= 0:
        return [FieldError(f"{at}.price", "required", "a price condition needs a price above 0")]
    errors = [] if watched is None else off_tick(f"{at}.price", threshold, watched)
    if spec.direction is None and _table_cannot_say(trigger, spec):
        errors.append(
            FieldError(
                f"{at}.direction",
                "required",
                "state at_or_above or at_or_below: an order trades another instrument than "
                "the watched one, or the other side, so the side cannot say which way",
            )
        )
    return errors


def _table_cannot_say(trigger: Trigger, spec: LegSpec) -> bool:
    """DESIGN's table reads a direction from the trigger's side on its own instrument;
    it says nothing for an order on another instrument or of the other side."""
    return any(
        o.instrument_token != trigger.watched or o.side is not trigger.side for o in spec.orders
    )


def _time_errors(
    field: str, when: datetime, trigger: Trigger, now: datetime | None
) -> list[FieldError]:
    if when.tzinfo is None:
        return [FieldError(field, "timezone", "must carry a time zone (e.g. +05:30)")]
    if not _in_range(when):
        return [FieldError(field, "range", "is not a time hmt can store (years 1 to 9999 UTC)")]
    errors = []
    if now is not None and when <= now:
        errors.append(FieldError(field, "future", "must be in the future"))
    expires, starts = trigger.expires_at, trigger.not_before
    if expires is not None and expires.tzinfo is not None and when >= expires:
        errors.append(
            FieldError(field, "before_expiry", "must be before expires_at: it would never fire")
        )
    if starts is not None and starts.tzinfo is not None and when < starts:
        errors.append(
            FieldError(field, "not_before", "must not be before not_before: it would never fire")
        )
    return errors


def _in_range(when: datetime) -> bool:
    """Whether `when` has a UTC time (the store keeps times in UTC): 9999-12-31 23:00-05:00
    has none."""
    try:
        when.astimezone(UTC)
    except OverflowError:
        return False
    return True


def _oco_errors(trigger: Trigger) -> list[FieldError]:
    """An oco's price legs must never both hold at one price (the first would always win)."""
    if len(trigger.legs) != 2 or any(s.at is not None for s in trigger.leg_specs):
        return []
    p1, p2 = trigger.trigger_price_1, trigger.trigger_price_2
    if not p1 or not p2 or p1 <= 0 or p2 <= 0:
        return []
    d1, d2 = direction(trigger, Leg.FIRST), direction(trigger, Leg.SECOND)
    if d1 is d2:
        return [
            FieldError(
                "legs[1].condition.direction",
                "oco_direction",
                f"both legs fire {d1.value}: one price would satisfy both; an oco's legs "
                "point opposite ways",
            )
        ]
    if d1 is Direction.AT_OR_ABOVE and not p1 > p2:
        return [
            FieldError(
                "legs[1].condition.price",
                "oco_order",
                "with legs[0] at_or_above, legs[1]'s at_or_below price must be below legs[0]'s",
            )
        ]
    if d1 is Direction.AT_OR_BELOW and not p1 < p2:
        return [
            FieldError(
                "legs[1].condition.price",
                "oco_order",
                "with legs[0] at_or_below, legs[1]'s at_or_above price must be above legs[0]'s",
            )
        ]
    return []


def _bound_errors(trigger: Trigger) -> list[FieldError]:
    starts, expires = trigger.not_before, trigger.expires_at
    if starts is None:
        return []
    if starts.tzinfo is None:
        return [FieldError("not_before", "timezone", "must carry a time zone (e.g. +05:30)")]
    if not _in_range(starts):
        return [
            FieldError("not_before", "range", "is not a time hmt can store (years 1 to 9999 UTC)")
        ]
    if expires is not None and expires.tzinfo is not None and starts >= expires:
        return [FieldError("not_before", "before_expiry", "must be before expires_at")]
    return []


def _mirror_errors(trigger: Trigger) -> list[FieldError]:
    """The v1 fields of a v2 trigger are its first leg's first order (a caller's bug else):
    the list's instrument filter and the v1 record read them."""
    if not trigger.leg_specs or not trigger.leg_specs[0].orders:
        return []
    first = trigger.leg_specs[0].orders[0]
    mirrored = (
        ("instrument_token", trigger.instrument_token, first.instrument_token),
        ("exchange", trigger.exchange, first.exchange),
        ("tradingsymbol", trigger.tradingsymbol, first.tradingsymbol),
        ("transaction_type", trigger.side, first.side),
        ("quantity", trigger.quantity, first.quantity),
        ("product", trigger.product, first.product),
        ("order_type", trigger.order_type, first.order_type),
        ("price_divisor", trigger.price_divisor, first.price_divisor),
    )
    return [
        FieldError(name, "mirror", "must be the first leg's first order's")
        for name, mine, theirs in mirrored
        if mine != theirs
    ]
