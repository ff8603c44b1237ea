"""The rules a trigger must satisfy before it is stored, each error naming its field."""

from __future__ import annotations

from datetime import datetime

from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.lifecycle import INITIAL_STATUSES
from hmt.core.model import Trigger
from hmt.core.types import OrderType, Side, TriggerType


def check(
    trigger: Trigger, *, tick_size: int | None = None, now: datetime | None = None
) -> list[FieldError]:
    """Every rule `trigger` breaks, empty when it is valid.

    `tick_size` is in the same wire units as the prices, when the instrument is
    known; `now` is the caller's clock, for the expiry check.
    """
    errors: list[FieldError] = []
    errors += _instrument_errors(trigger)
    errors += _price_errors(trigger, tick_size)
    if trigger.quantity < 1:
        errors.append(FieldError("quantity", "minimum", "must be at least 1"))
    if trigger.price_divisor < 1:
        errors.append(FieldError("price_divisor", "positive", "must be at least 1"))
    if trigger.status not in INITIAL_STATUSES:
        errors.append(FieldError("status", "initial", "a trigger starts as active or paused"))
    if trigger.expires_at is not None and trigger.expires_at.tzinfo is None:
        errors.append(FieldError("expires_at", "timezone", "must carry a time zone"))
    elif trigger.expires_at is not None and now is not None and trigger.expires_at <= now:
        errors.append(FieldError("expires_at", "future", "must be in the future"))
    return errors


def validate(
    trigger: Trigger, *, tick_size: int | None = None, now: datetime | None = None
) -> Trigger:
    """Return `trigger` unchanged if valid, else raise `InvalidTrigger` with every error."""
    errors = check(trigger, tick_size=tick_size, now=now)
    if errors:
        raise InvalidTrigger(errors)
    return trigger


def _instrument_errors(trigger: Trigger) -> list[FieldError]:
    # Whether the token names a tradable instrument of this exchange is the
    # broker's knowledge, checked where the instrument is known (the API edge:
    # `hmt.kite.segments.token_errors`), never by decoding the token here.
    errors = []
    if not trigger.tradingsymbol.strip():
        errors.append(FieldError("tradingsymbol", "required", "must not be empty"))
    if trigger.instrument_token <= 0:
        errors.append(FieldError("instrument_token", "positive", "must be greater than 0"))
    return errors


def _price_errors(trigger: Trigger, tick_size: int | None) -> list[FieldError]:
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
        elif value is not None and tick_size and value % tick_size:
            errors.append(
                FieldError(name, "tick_size", f"must be a multiple of the tick size ({tick_size})")
            )
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


def _why_required(name: str) -> str:
    return "required for a LIMIT order" if name.startswith("limit") else "required for an oco"


def _why_forbidden(name: str) -> str:
    if name == "trigger_price_2":
        return "only an oco has a second trigger price"
    if name == "limit_price_2":
        return "only a LIMIT oco has a second limit price"
    return "only a LIMIT order has a limit price"
