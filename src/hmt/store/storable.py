"""What a v2 trigger must be for its row to read back as it was written.

DESIGN's rules for a v1 trigger stay `hmt.core.validation`'s, checked by the
store as ever. A v2 trigger's rules against every instrument it names (tick
and lot per order, directions, SL prices) are the API's, which has the master
for each; the store checks only what its columns need (docs/store.md).
"""

from __future__ import annotations

from hmt.core.errors import FieldError
from hmt.core.instruments import Instrument
from hmt.core.model import LegSpec, Trigger
from hmt.core.types import MAX_BASKET


def errors(trigger: Trigger, watch: Instrument | None, *, keeps_watch: bool) -> list[FieldError]:
    """Every reason the table cannot hold `trigger` as it is; empty when it can.

    `watch` is the master's entry for the watched instrument (its divisor is the
    thresholds' unit); `keeps_watch`: an edit that watches what the row already
    watches, whose stored entry stands.
    """
    found = _watch_errors(trigger, watch, keeps_watch=keeps_watch)
    specs = trigger.leg_specs
    if specs and len(specs) != len(trigger.legs):
        found.append(
            FieldError(
                "legs",
                "count",
                f"{len(specs)} legs for a {trigger.trigger_type} trigger of {len(trigger.legs)}",
            )
        )
    for index, spec in enumerate(specs):
        found += _leg_errors(trigger, index, spec)
    for name in ("not_before", "expires_at"):
        moment = getattr(trigger, name)
        if moment is not None and moment.tzinfo is None:
            found.append(FieldError(name, "timezone", "must carry a time zone"))
    if trigger.quantity < 1:
        found.append(FieldError("quantity", "minimum", "must be at least 1"))
    if trigger.price_divisor < 1:
        found.append(FieldError("price_divisor", "positive", "must be at least 1"))
    return found


def _watch_errors(
    trigger: Trigger, watch: Instrument | None, *, keeps_watch: bool
) -> list[FieldError]:
    if trigger.watch_token is None:
        if watch is None:
            return []
        return [FieldError("watch", "mismatch", "given, but the trigger watches what it trades")]
    if watch is not None and watch.id != trigger.watch_token:
        message = f"instrument {watch.id} is not the watched {trigger.watch_token}"
        return [FieldError("watch", "mismatch", message)]
    if watch is None and not keeps_watch:
        message = "the watched instrument's entry is needed: it gives the thresholds' unit"
        return [FieldError("watch", "required", message)]
    return []


def _leg_errors(trigger: Trigger, index: int, spec: LegSpec) -> list[FieldError]:
    where = f"legs[{index}]"
    found = []
    if len(spec.orders) > MAX_BASKET:
        found.append(FieldError(f"{where}.orders", "basket", f"at most {MAX_BASKET} orders"))
    if spec.at is not None:
        if spec.at.tzinfo is None:
            found.append(FieldError(f"{where}.at", "timezone", "must carry a time zone"))
        threshold = trigger.trigger_price_1 if index == 0 else trigger.trigger_price_2
        if threshold != 0:
            found.append(
                FieldError(f"trigger_price_{index + 1}", "time_leg", "a time leg has no price: 0")
            )
    for position, order in enumerate(spec.orders):
        at = f"{where}.orders[{position}]"
        if order.quantity < 1:
            found.append(FieldError(f"{at}.quantity", "minimum", "must be at least 1"))
        if order.price_divisor < 1:
            found.append(FieldError(f"{at}.price_divisor", "positive", "must be at least 1"))
    return found
