"""The rules a trigger must satisfy before it is stored, each error naming its field.

The instrument rules need the broker's instrument master: the caller looks the
trigger's id up there and passes the `Instrument` it found. The core never
decodes a broker's instrument id itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.instruments import Instrument
from hmt.core.legs import check_legs
from hmt.core.lifecycle import INITIAL_STATUSES
from hmt.core.model import Trigger
from hmt.core.types import OrderType, Side, TriggerType


def check(
    trigger: Trigger,
    *,
    instrument: Instrument | None = None,
    now: datetime | None = None,
    watch: Instrument | None = None,
    instruments: Mapping[int, Instrument] | None = None,
) -> list[FieldError]:
    """Every rule `trigger` breaks, empty when it is valid.

    `instrument` is the master's entry for the trigger's instrument id (None
    when there is no master to ask: then the instrument rules are not checked);
    its tick size is in the same wire units as the prices. `now` is the
    caller's clock, for the expiry check. A v2 trigger (with leg specs) is
    checked by `hmt.core.legs` against `instruments` (the master's entries by
    id, for each order and the watched instrument; `instrument` and `watch`
    are added to them).
    """
    if trigger.leg_specs:
        known = dict(instruments or {})
        for entry in (instrument, watch):
            if entry is not None:
                known.setdefault(entry.id, entry)
        return _common_errors(trigger, now) + check_legs(trigger, instruments=known, now=now)
    errors: list[FieldError] = []
    errors += _instrument_errors(trigger, instrument)
    if instrument is not None and instrument.id != trigger.instrument_token:
        instrument = None  # another id's units say nothing about this trigger's prices
    errors += _price_errors(trigger, instrument)
    if trigger.price_divisor < 1:
        errors.append(FieldError("price_divisor", "positive", "must be at least 1"))
    elif instrument is not None and trigger.price_divisor != instrument.price_divisor:
        # The row stores the trigger's divisor with its prices; the instrument's
        # tick is in the instrument's: they must be the same unit.
        errors.append(
            FieldError(
                "price_divisor",
                "mismatch",
                f"prices are in 1/{trigger.price_divisor} rupee, instrument "
                f"{instrument.id} is quoted in 1/{instrument.price_divisor}",
            )
        )
    if trigger.order_type in (OrderType.SL, OrderType.SL_M):
        errors.append(
            FieldError(
                "order_type",
                "v1_order_type",
                "a trigger without legs places MARKET or LIMIT orders: send SL and SL-M "
                "orders in legs[].orders[] (docs/api.md)",
            )
        )
    lot = instrument.lot_size if instrument is not None else 1
    if trigger.quantity < 1:
        errors.append(FieldError("quantity", "minimum", "must be at least 1"))
    elif lot > 1 and trigger.quantity % lot:
        errors.append(
            FieldError("quantity", "lot_size", f"must be a multiple of the lot size ({lot})")
        )
    return errors + _common_errors(trigger, now)


def _common_errors(trigger: Trigger, now: datetime | None) -> list[FieldError]:
    """The rules of every trigger, v1 or v2: its first status and its expiry."""
    errors = []
    if trigger.price_divisor < 1 and trigger.leg_specs:
        errors.append(FieldError("price_divisor", "positive", "must be at least 1"))
    if trigger.status not in INITIAL_STATUSES:
        errors.append(FieldError("status", "initial", "a trigger starts as active or paused"))
    if trigger.expires_at is not None and trigger.expires_at.tzinfo is None:
        errors.append(FieldError("expires_at", "timezone", "must carry a time zone"))
    elif trigger.expires_at is not None and now is not None and trigger.expires_at <= now:
        errors.append(FieldError("expires_at", "future", "must be in the future"))
    return errors


def validate(
    trigger: Trigger,
    *,
    instrument: Instrument | None = None,
    now: datetime | None = None,
    watch: Instrument | None = None,
    instruments: Mapping[int, Instrument] | None = None,
) -> Trigger:
    """Return `trigger` unchanged if valid, else raise `InvalidTrigger` with every error."""
    errors = check(trigger, instrument=instrument, now=now, watch=watch, instruments=instruments)
    if errors:
        raise InvalidTrigger(errors)
    return trigger


def unknown_instrument(instrument_id: int) -> FieldError:
    """The error for an id that the broker's instrument master does not list."""
    return FieldError(
        "instrument_token",
        "unknown",
        f"{instrument_id} is not in the broker's instrument list: pick the instrument again",
    )


def _instrument_errors(trigger: Trigger, instrument: Instrument | None) -> list[FieldError]:
    errors = []
    if not trigger.tradingsymbol.strip():
        errors.append(FieldError("tradingsymbol", "required", "must not be empty"))
    if trigger.instrument_token <= 0:
        errors.append(FieldError("instrument_token", "positive", "must be greater than 0"))
        return errors
    if instrument is None:
        return errors
    named = f"{instrument.exchange}:{instrument.tradingsymbol}"
    if instrument.id != trigger.instrument_token:
        # The caller looked up another id: nothing can be said about this one.
        errors.append(unknown_instrument(trigger.instrument_token))
    elif not instrument.tradable:
        errors.append(
            FieldError("instrument_token", "tradable", f"{named} is an index: it cannot be traded")
        )
    if instrument.id == trigger.instrument_token and trigger.tradingsymbol.strip():
        if trigger.tradingsymbol != instrument.tradingsymbol:
            errors.append(
                FieldError(
                    "tradingsymbol",
                    "mismatch",
                    f"instrument {instrument.id} is {named}, not {trigger.tradingsymbol}",
                )
            )
        if trigger.exchange != instrument.exchange:
            errors.append(
                FieldError(
                    "exchange",
                    "mismatch",
                    f"instrument {instrument.id} is {named}, not on {trigger.exchange}",
                )
            )
    return errors


def _price_errors(trigger: Trigger, instrument: Instrument | None) -> list[FieldError]:
    tick_size = instrument.tick_size if instrument is not None and instrument.tradable else 0
    is_oco = trigger.trigger_type is TriggerType.OCO
    is_limit = trigger.order_type is OrderType.LIMIT
    prices = {
        "trigger_price_1": (trigger.trigger_price_1, True),
        "trigger_price_2": (trigger.trigger_price_2, is_oco),
        "limit_price_1": (trigger.limit_price_1, is_limit),
        "limit_price_2": (trigger.limit_price_2, is_oco and is_limit),
    }
    errors = []
    for name, (value, wanted) in prices.items():
        if wanted and value is None:
            errors.append(FieldError(name, "required", _why_required(name)))
        elif not wanted and value is not None:
            errors.append(FieldError(name, "forbidden", _why_forbidden(name)))
        elif value is not None and value <= 0:
            errors.append(FieldError(name, "positive", "must be greater than 0"))
        elif value is not None and instrument is not None and tick_size and value % tick_size:
            errors.append(_off_tick(name, value, instrument))
    p1, p2 = trigger.trigger_price_1, trigger.trigger_price_2
    if is_oco and p2 is not None and p1 > 0 and p2 > 0:
        # Otherwise one price could satisfy both legs at once.
        if trigger.side is Side.SELL and not p1 < p2:
            errors.append(
                FieldError("trigger_price_2", "oco_order", "a SELL oco needs stop-loss < target")
            )
        if trigger.side is Side.BUY and not p1 > p2:
            errors.append(
                FieldError("trigger_price_2", "oco_order", "a BUY oco needs stop-loss > target")
            )
    return errors


def _off_tick(name: str, value: int, instrument: Instrument) -> FieldError:
    tick, divisor = instrument.tick_size, instrument.price_divisor
    below = value - value % tick

    places = Decimal(1).scaleb(-(len(str(divisor)) - 1))  # divisors are powers of ten

    def rupees(units: int) -> str:
        return str((Decimal(units) / divisor).quantize(places))

    return FieldError(
        name,
        "tick_size",
        f"{rupees(value)} is not a multiple of {instrument.tradingsymbol}'s tick size "
        f"{rupees(tick)}: the nearest prices are {rupees(below)} and {rupees(below + tick)}",
    )


def _why_required(name: str) -> str:
    return "required for a LIMIT order" if name.startswith("limit") else "required for an oco"


def _why_forbidden(name: str) -> str:
    if name == "trigger_price_2":
        return "only an oco has a second trigger price"
    if name == "limit_price_2":
        return "only a LIMIT oco has a second limit price"
    return "only a LIMIT order has a limit price"
