"""What the terminal and the notices say about a fire and its outcome: one line each.

A newcomer watching `hmt run` or `hmt demo` should read what happened without
knowing the schema: "fired INFY: BUY 1 at ltp 1610.00 (price)", then "placed
INFY: BUY 1 MARKET, order 251201000001, 3.1 ms after the fire".
"""

from __future__ import annotations

from decimal import Decimal

from hmt.core.model import Fired, OrderIntent, Trigger
from hmt.core.notices import Notice, NoticeKind
from hmt.core.prices import to_decimal
from hmt.core.types import Cause, Leg


def _price(units: int | None, divisor: int) -> str:
    if units is None:
        return "-"
    return f"{to_decimal(units, divisor).quantize(Decimal('0.01'))}"


def fired(event: Fired) -> tuple[str, Notice]:
    """The fire's log line and its notice."""
    trigger = event.trigger
    spec = trigger.orders(event.leg)
    symbol = spec[0].tradingsymbol
    what = f"{spec[0].side.value} {spec[0].quantity}" + (
        f" (+{len(spec) - 1} more)" if len(spec) > 1 else ""
    )
    at = (
        f"at ltp {_price(event.ltp, trigger.price_divisor)}"
        if event.cause is not Cause.TIME
        else "at its time"
    )
    line = f"fired {symbol}: {what} {at} ({event.cause.value}, leg {int(event.leg)})"
    kind = NoticeKind.GAP_FIRED if event.cause is Cause.GAP else NoticeKind.FIRED
    title = f"hmt: {'missed touch, fired' if kind is NoticeKind.GAP_FIRED else 'fired'} {symbol}"
    return line, Notice(kind, title, line, user_id=trigger.user_id, trigger_id=trigger.id)


def settled(
    intent: OrderIntent,
    placed: bool,
    order_id: str | None,
    reason: str | None,
    latency_ms: float | None,
    user_id: str,
) -> tuple[str, Notice]:
    """An order's outcome: its log line and its notice."""
    kind = NoticeKind.PLACED if placed else NoticeKind.FAILED
    price = (
        f" at {_price(intent.limit_price, intent.price_divisor)}"
        if intent.limit_price is not None
        else ""
    )
    what = f"{intent.side.value} {intent.quantity} {intent.order_type.value}{price}"
    after = "" if latency_ms is None else f", {latency_ms:.1f} ms after the fire"
    if placed:
        line = f"placed {intent.tradingsymbol}: {what}, order {order_id}{after}"
    else:
        line = f"failed {intent.tradingsymbol}: {what}: {reason}{after}"
    title = f"hmt: {kind.value} {intent.tradingsymbol}"
    return line, Notice(kind, title, line, user_id=user_id, trigger_id=intent.trigger_id)


def skipped(trigger: Trigger, leg: Leg) -> Notice:
    """A missed touch that its trigger's `on_gap=skip` did not fire."""
    symbol = trigger.orders(leg)[0].tradingsymbol
    line = (
        f"missed touch on {symbol}: leg {int(leg)}'s price was crossed while the feed was "
        "down; not fired (on_gap=skip)"
    )
    title = f"hmt: missed touch, skipped {symbol}"
    return Notice(NoticeKind.GAP_SKIPPED, title, line, trigger.user_id, trigger.id)
