"""The backtest's report as JSON: per trigger, a summary, the equity curve (docs/backtest.md).

Deterministic for its input: triggers in the order given, times in ISO 8601
with their offset as the history wrote them, prices in rupees and money in
rupees rounded to the paisa, as JSON numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hmt.backtest.history import History
from hmt.core.charges import Charges
from hmt.core.charges_data import SCHEDULES
from hmt.core.instruments import Instrument
from hmt.core.model import Trigger
from hmt.core.prices import to_decimal
from hmt.core.replay import OrderResult, Outcome, Result
from hmt.core.rules import direction
from hmt.core.types import Leg

FORMAT = "hmt-backtest/1"
_PAISA = Decimal("0.01")


def money(value: Decimal) -> float:
    return float(value.quantize(_PAISA, rounding=ROUND_HALF_UP))


def _price(units: int | None, divisor: int) -> float | None:
    return None if units is None else float(to_decimal(units, divisor))


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _name(token: int, master: Mapping[int, Instrument]) -> str:
    instrument = master.get(token)
    return str(token) if instrument is None else f"{instrument.exchange}:{instrument.tradingsymbol}"


def _charges(charges: Charges | None) -> dict[str, float] | None:
    if charges is None:
        return None
    return {
        "brokerage": money(charges.brokerage),
        "stt": money(charges.stt),
        "exchange": money(charges.exchange),
        "sebi": money(charges.sebi),
        "gst": money(charges.gst),
        "stamp": money(charges.stamp),
        "total": money(charges.total),
    }


def _order(order: OrderResult, master: Mapping[int, Instrument]) -> dict[str, Any]:
    intent, divisor = order.intent, order.intent.price_divisor
    return {
        "instrument": _name(intent.instrument_token, master),
        "transaction_type": intent.side.value,
        "quantity": intent.quantity,
        "product": intent.product.value,
        "order_type": intent.order_type.value,
        "price": _price(intent.limit_price, divisor),
        "trigger_price": _price(intent.trigger_price, divisor),
        "status": order.status,
        "placed_at": _time(order.placed_at),
        "filled_at": _time(order.filled_at),
        "fill_price": _price(order.fill_price, divisor),
        "charges": _charges(order.charges),
        "note": order.note,
    }


def levels(trigger: Trigger, divisor: int) -> list[dict[str, Any]]:
    """Each leg's condition: its price and direction, its time, or its trail."""
    found = []
    for leg in trigger.legs:
        at, trail = trigger.fire_at(leg), trigger.trail(leg)
        entry: dict[str, Any] = {"leg": int(leg), "direction": direction(trigger, leg).value}
        if at is not None:
            entry["at"] = at.isoformat()
        elif trail is None:
            entry["price"] = _price(trigger.threshold(leg), divisor)
        else:
            entry["trailing"] = True
        found.append(entry)
    return found


def _outcome(outcome: Outcome, master: Mapping[int, Instrument]) -> dict[str, Any]:
    trigger = outcome.trigger
    watch = master.get(trigger.watched)
    divisor = watch.price_divisor if watch is not None else trigger.price_divisor
    fired = None
    if outcome.fired_at is not None:
        assert outcome.leg is not None
        assert outcome.cause is not None
        fired = {
            "at": _time(outcome.fired_at),
            "leg": int(outcome.leg),
            "role": _role(trigger, outcome.leg),
            "cause": outcome.cause.value,
            "ltp": _price(outcome.ltp, divisor),
            "price": _price(outcome.price, divisor),
            "ambiguous": outcome.ambiguous,
        }
    charges = outcome.charges
    legs = levels(trigger, divisor)
    return {
        "id": trigger.id,
        "trigger_type": trigger.trigger_type.value,
        "watch": _name(trigger.watched, master),
        "legs": legs,
        "status": outcome.status,
        "expired_at": _time(outcome.expired_at),
        "fired": fired,
        "orders": [_order(order, master) for order in outcome.orders],
        "pnl": money(outcome.pnl),
        "charges": money(charges.total),
        "net_pnl": money(outcome.pnl - charges.total),
        "mae": money(outcome.mae),
        "mfe": money(outcome.mfe),
    }


def _role(trigger: Trigger, leg: Leg) -> str:
    if len(trigger.legs) == 1:
        return "single"
    return "stop-loss" if leg is Leg.FIRST else "target"


def _interval(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return "day" if minutes == 1440 else f"{minutes}minute" if minutes != 1 else "minute"


def without_data(result: Result, history: History) -> list[int]:
    """Instruments the triggers watch or order that the history has no price of: their
    legs cannot fire (or their orders fill) in this replay, which the report says."""
    present = set(history.instruments())
    named = set()
    for outcome in result.outcomes:
        trigger = outcome.trigger
        named.add(int(trigger.watched))
        for leg in trigger.legs:
            named.update(int(order.instrument_token) for order in trigger.orders(leg))
    return sorted(named - present)


def build(
    result: Result,
    history: History,
    master: Mapping[int, Instrument],
    *,
    slippage_ticks: int,
) -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    outcomes = [_outcome(o, master) for o in result.outcomes]
    orders = [order for o in outcomes for order in o["orders"]]
    statuses = [o["status"] for o in outcomes]
    gross = sum((o.pnl for o in result.outcomes), Decimal(0))
    charged = sum((o.charges.total for o in result.outcomes), Decimal(0))
    fired = [o for o in outcomes if o["fired"] is not None]
    return {
        "format": FORMAT,
        "data": {
            "kind": history.kind,
            "interval": _interval(history.interval) if history.kind == "candles" else None,
            "sources": list(history.sources),
            "first": _time(result.first),
            "last": _time(result.final),
            "rows": len(history),
            "prices": result.prices,
            "instruments": [_name(token, master) for token in history.instruments()],
            "without_data": [_name(token, master) for token in without_data(result, history)],
            "holes": [
                {
                    "instrument": _name(hole.instrument, master),
                    "after": hole.after.isoformat(),
                    "before": hole.before.isoformat(),
                    "missing_candles": hole.missing,
                }
                for hole in history.holes
            ],
        },
        "settings": {
            "slippage_ticks": slippage_ticks,
            "charges": [
                {"effective": s.effective.isoformat(), "sources": list(s.sources)}
                for s in SCHEDULES
            ],
        },
        "summary": {
            "triggers": len(outcomes),
            "fired": len(fired),
            "ambiguous": sum(1 for o in fired if o["fired"]["ambiguous"]),
            "expired": statuses.count("expired"),
            "active": statuses.count("active"),
            "paused": statuses.count("paused"),
            "dormant": statuses.count("dormant"),
            "orders": len(orders),
            "filled": sum(1 for o in orders if o["status"] == "filled"),
            "open": sum(1 for o in orders if o["status"] == "open"),
            "cancelled": sum(1 for o in orders if o["status"] == "cancelled"),
            "pnl": money(gross),
            "charges": money(charged),
            "net_pnl": money(gross - charged),
            "winners": sum(1 for o in fired if o["net_pnl"] > 0),
            "losers": sum(1 for o in fired if o["net_pnl"] < 0),
        },
        "triggers": outcomes,
        "equity": [[at.isoformat(), money(value)] for at, value in result.equity],
    }
