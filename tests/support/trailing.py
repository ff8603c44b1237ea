"""Trailing stops for tests: terms drawn over a small price grid, and triggers carrying them."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st

from hmt.core.model import LegSpec, Trigger
from hmt.core.trailing import Offset, Trail
from hmt.core.types import Direction, InstrumentToken, Side, TriggerType
from tests.support.factories import make_trigger


@st.composite
def trails(draw: st.DrawFn, *, tick: int | None = None, low: int = 1, high: int = 400) -> Trail:
    """Any trail whose prices fall in [low, high]: every offset kind, activation, step."""
    side = draw(st.sampled_from(Side))
    tick = draw(st.sampled_from([1, 2, 5])) if tick is None else tick
    kind = draw(st.sampled_from(Offset))
    offset = {
        Offset.PRICE: st.integers(1, 40),
        Offset.TICKS: st.integers(1, 8),
        Offset.BPS: st.integers(1, 3_000),
    }[kind]
    activation = draw(st.none() | st.integers(low, high))
    step = draw(st.none() | st.integers(1, 6).map(lambda k: k * tick))
    return Trail(side, kind, draw(offset), tick, activation, step)


def random_trail(rng: random.Random, *, tick: int, low: int, high: int) -> Trail:
    """A seeded trail over [low, high] (the scale tests' generator)."""
    kind = rng.choice(list(Offset))
    offset = {Offset.PRICE: rng.randint(1, 40), Offset.TICKS: rng.randint(1, 8)}.get(
        kind, rng.randint(1, 3_000)
    )
    activation = rng.randint(low, high) if rng.random() < 0.4 else None
    step = rng.randint(1, 6) * tick if rng.random() < 0.3 else None
    return Trail(rng.choice((Side.BUY, Side.SELL)), kind, offset, tick, activation, step)


def make_trailing(
    trail: Trail,
    *,
    target: tuple[int, Direction] | None = None,
    trailing_second: bool = False,
    watch: InstrumentToken | None = None,
    **overrides: Any,
) -> Trigger:
    """A v2 trigger whose stop leg trails: alone, or an oco with a fixed `target`.

    The oco's trailing leg is the first (the stop-loss) unless `trailing_second`.
    """
    stop = LegSpec(trail=trail)
    if target is None:
        legs, prices = (stop,), (0, None)
    else:
        price, way = target
        fixed = LegSpec(direction=way)
        legs = (fixed, stop) if trailing_second else (stop, fixed)
        prices = (price, 0) if trailing_second else (0, price)
    return make_trigger(
        trigger_type=TriggerType.SINGLE if target is None else TriggerType.OCO,
        side=trail.side,
        trigger_price_1=prices[0],
        trigger_price_2=prices[1],
        watch_token=watch,
        leg_specs=legs,
        **overrides,
    )
