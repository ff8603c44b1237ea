"""Building trigger model v2 triggers for tests: watched instruments, stated directions,
time legs."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from hmt.core.model import LegSpec, Trigger
from hmt.core.types import Direction, InstrumentToken, Side, TriggerId, TriggerType
from tests.support.factories import INFY, RELIANCE, make_trigger, triggers

NIFTY = InstrumentToken(256265)  # NSE:NIFTY 50, an index: watched, never traded
WATCHED = (INFY, RELIANCE, NIFTY)
BASE_TIME = datetime(2026, 12, 1, 9, 45, tzinfo=UTC)  # 15:15 IST

UP, DOWN = Direction.AT_OR_ABOVE, Direction.AT_OR_BELOW

# One leg's condition: a price with its direction (None: DESIGN's table), or a time.
Condition = tuple[int, Direction | None] | datetime


def make_v2(
    conditions: Sequence[Condition],
    *,
    watch: InstrumentToken | None = NIFTY,
    side: Side = Side.BUY,
    **overrides: Any,
) -> Trigger:
    """A v2 trigger with one leg per condition (two: an oco), watching `watch`."""
    specs, prices = [], []
    for condition in conditions:
        if isinstance(condition, datetime):
            specs.append(LegSpec(at=condition))
            prices.append(0)  # a time leg's threshold is 0 in the core
        else:
            price, direction = condition
            specs.append(LegSpec(direction=direction))
            prices.append(price)
    oco = len(conditions) == 2
    return make_trigger(
        trigger_type=TriggerType.OCO if oco else TriggerType.SINGLE,
        side=side,
        trigger_price_1=prices[0],
        trigger_price_2=prices[1] if oco else None,
        watch_token=watch,
        leg_specs=tuple(specs),
        **overrides,
    )


@st.composite
def conditions(draw: st.DrawFn, *, times: bool = True) -> Condition:
    """A price on the 1..60 grid with a stated (or table) direction, or sometimes a time."""
    if times and draw(st.integers(0, 4)) == 0:
        return BASE_TIME + timedelta(minutes=draw(st.integers(-5, 5)))
    return draw(st.integers(1, 60)), draw(st.sampled_from([UP, DOWN, None]))


@st.composite
def v2_triggers(draw: st.DrawFn, *, times: bool = True) -> Trigger:
    """v2 triggers on the small grid: any watched instrument, stated directions, time legs.

    Oco legs are drawn independently, so with stated directions both legs may
    hold at one price (the book then fires the first).
    """
    legs = draw(st.integers(1, 2))
    return make_v2(
        [draw(conditions(times=times)) for _ in range(legs)],
        watch=draw(st.sampled_from([None, *WATCHED])),
        side=draw(st.sampled_from(Side)),
        id=TriggerId(str(draw(st.uuids()))),
        instrument_token=draw(st.sampled_from([INFY, RELIANCE])),
    )


def mixed_triggers(*, times: bool = True) -> st.SearchStrategy[Trigger]:
    """v1 triggers and v2 ones, about half each."""
    return st.one_of(triggers(), v2_triggers(times=times))


def random_v2_trigger(rng: random.Random) -> Trigger:
    """A seeded v2 trigger: watches another instrument (mostly NIFTY), stated directions,
    now and then a time leg."""

    def condition() -> Condition:
        if rng.random() < 0.1:
            return BASE_TIME + timedelta(minutes=rng.randint(-5, 5))
        return rng.randint(1, 60), rng.choice((UP, DOWN))

    traded = rng.choice((INFY, RELIANCE))
    watch = NIFTY if rng.random() < 0.7 else (RELIANCE if traded == INFY else INFY)
    return make_v2(
        [condition() for _ in range(rng.randint(1, 2))],
        watch=watch,
        side=rng.choice((Side.BUY, Side.SELL)),
        instrument_token=traded,
    )
