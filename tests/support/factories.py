"""Building triggers for tests, by hand and by Hypothesis."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import strategies as st

from hmt.core.model import Trigger
from hmt.core.types import (
    Exchange,
    InstrumentToken,
    OrderType,
    Product,
    Side,
    TriggerId,
    TriggerType,
    UserId,
)

INFY = InstrumentToken(408065)  # NSE:INFY, segment 1, tick 5 paise
RELIANCE = InstrumentToken(738561)


def make_trigger(**overrides: Any) -> Trigger:
    """A valid single BUY MARKET trigger on INFY at 1600.00, with `overrides` applied."""
    fields: dict[str, Any] = {
        "id": TriggerId(str(uuid.uuid4())),
        "user_id": UserId("alice"),
        "instrument_token": INFY,
        "exchange": Exchange.NSE,
        "tradingsymbol": "INFY",
        "trigger_type": TriggerType.SINGLE,
        "side": Side.BUY,
        "trigger_price_1": 160_000,
        "trigger_price_2": None,
        "quantity": 10,
        "product": Product.CNC,
        "order_type": OrderType.MARKET,
    }
    fields.update(overrides)
    return Trigger(**fields)


def make_oco(side: Side, stop: int, target: int, **overrides: Any) -> Trigger:
    return make_trigger(
        trigger_type=TriggerType.OCO,
        side=side,
        trigger_price_1=stop,
        trigger_price_2=target,
        **overrides,
    )


_TOKENS: st.SearchStrategy[int] = st.sampled_from([INFY, RELIANCE])
_PRICES: st.SearchStrategy[int] = st.integers(1, 60)


@st.composite
def triggers(
    draw: st.DrawFn,
    *,
    tokens: st.SearchStrategy[int] = _TOKENS,
    prices: st.SearchStrategy[int] = _PRICES,
) -> Trigger:
    """Valid triggers on a small price grid, so ticks land on thresholds often."""
    trigger_type = draw(st.sampled_from(TriggerType))
    side = draw(st.sampled_from(Side))
    p1 = draw(prices)
    p2 = None
    if trigger_type is TriggerType.OCO:
        other = draw(prices.filter(lambda p: p != p1))
        low, high = sorted((p1, other))
        # SELL: stop-loss below target; BUY: stop-loss above target.
        p1, p2 = (low, high) if side is Side.SELL else (high, low)
    return make_trigger(
        id=TriggerId(str(draw(st.uuids()))),
        instrument_token=draw(tokens),
        trigger_type=trigger_type,
        side=side,
        trigger_price_1=p1,
        trigger_price_2=p2,
    )
