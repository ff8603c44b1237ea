"""The decoded tick values: prices, segments, times and the fast constructor."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given

from hmt.kite.ticks import (
    DepthLevel,
    FullTick,
    IndexTick,
    LtpTick,
    Mode,
    Tick,
    depth_values,
    fast_constructor,
)
from tests.support.kite_ticks import any_tick


def test_prices_use_the_segment_divisor() -> None:
    """CDS divides by 1e7, BCD and NCO by 1e4, NSE and unknown segments by 100."""
    assert LtpTick(1 << 8 | 3, 834_125_000).decimal(834_125_000) == Decimal("83.4125")
    assert LtpTick(1 << 8 | 6, 834_125).decimal(834_125) == Decimal("83.4125")
    assert LtpTick(1 << 8 | 12, 61_234_500).divisor == 10_000
    assert LtpTick(408065, 157315).decimal(157315) == Decimal("1573.15")
    assert LtpTick(1 << 8 | 200, 1).divisor == 100


def test_indices_are_not_tradable_and_have_a_mode_by_length() -> None:
    """Segment 9 is not tradable; an index tick with a timestamp is full, without one quote."""
    quote = IndexTick(256265, 1, 2, 3, 4, 5, -6)
    full = dataclasses.replace(quote, exchange_timestamp=1_625_461_887)
    assert not quote.tradable
    assert (quote.mode, full.mode) == (Mode.QUOTE, Mode.FULL)
    assert quote.exchange_at is None
    assert full.exchange_at == datetime(2021, 7, 5, 5, 11, 27, tzinfo=UTC)


def test_depth_levels_come_from_the_raw_integers() -> None:
    """bids/asks are built from `depth`, and depth_values is their inverse."""
    bids = tuple(DepthLevel(i, 100 + i, 1) for i in range(5))
    asks = tuple(DepthLevel(i, 200 + i, 2) for i in range(5))
    tick = FullTick(408065, *[0] * 15, depth_values(bids, asks))
    assert (tick.bids, tick.asks) == (bids, asks)


@given(any_tick)
def test_fast_constructor_makes_ordinary_frozen_instances(tick: Tick) -> None:
    """An instance from fast_constructor is of the real class, equal, hashable and frozen."""
    cls = type(tick)
    made = fast_constructor(cls)(*dataclasses.astuple(tick, tuple_factory=tuple))
    assert type(made) is cls
    assert made == tick
    assert hash(made) == hash(tick)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.last_price = 1  # type: ignore[misc]
