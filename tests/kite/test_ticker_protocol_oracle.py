"""The full decoder against the official parser, `kiteconnect.KiteTicker._parse_binary`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kiteconnect import KiteTicker

from hmt.kite.ticker_protocol import decode_frame, encode_frame
from hmt.kite.ticks import FullTick, IndexTick, LtpTick, QuoteTick, Tick
from tests.support.kite_ticks import any_tick, full_ticks

IST = timezone(timedelta(hours=5, minutes=30), "IST")
OFFICIAL = KiteTicker("api_key", "access_token")
INDIA = "IST-5:30"  # POSIX form: needs no tzdata on the host


def _set_zone(zone: str) -> None:
    os.environ["TZ"] = zone
    time.tzset()


@pytest.fixture(autouse=True)
def host_in_india() -> Iterator[None]:
    """Pin the host's zone to IST (no DST), where the official naive datetimes are IST wall time."""
    before = os.environ.get("TZ")
    _set_zone(INDIA)
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def _official_time(naive: datetime | None) -> datetime | None:
    """The official client's naive local datetime, made aware in the pinned zone."""
    assert naive is None or naive.tzinfo is None
    return None if naive is None else naive.replace(tzinfo=IST)


def _price(tick: Tick, units: int) -> float:
    # The official parser divides by a float divisor; int / int true division rounds the same.
    return units / tick.divisor


def _compare(ours: Tick, theirs: dict[str, Any]) -> None:
    """Every field the wire carries; `change` is computed by the official client, so skipped."""
    assert theirs["instrument_token"] == ours.instrument_token
    assert theirs["mode"] == ours.mode.value
    assert theirs["tradable"] is ours.tradable
    assert theirs["last_price"] == _price(ours, ours.last_price)
    if isinstance(ours, LtpTick):
        assert set(theirs) == {"instrument_token", "mode", "tradable", "last_price"}
        return
    ohlc = {k: _price(ours, getattr(ours, k)) for k in ("open", "high", "low", "close")}
    assert theirs["ohlc"] == ohlc
    if isinstance(ours, IndexTick):
        if ours.exchange_timestamp is not None:
            assert _official_time(theirs["exchange_timestamp"]) == ours.exchange_at
        else:
            assert "exchange_timestamp" not in theirs
        return
    assert theirs["last_traded_quantity"] == ours.last_traded_quantity
    assert theirs["average_traded_price"] == _price(ours, ours.average_traded_price)
    assert theirs["volume_traded"] == ours.volume_traded
    assert theirs["total_buy_quantity"] == ours.total_buy_quantity
    assert theirs["total_sell_quantity"] == ours.total_sell_quantity
    if isinstance(ours, QuoteTick):
        assert "depth" not in theirs
        return
    assert isinstance(ours, FullTick)
    assert _official_time(theirs["last_trade_time"]) == ours.last_trade_at
    assert _official_time(theirs["exchange_timestamp"]) == ours.exchange_at
    assert (theirs["oi"], theirs["oi_day_high"], theirs["oi_day_low"]) == (
        ours.oi, ours.oi_day_high, ours.oi_day_low,
    )  # fmt: skip
    for side, levels in (("buy", ours.bids), ("sell", ours.asks)):
        assert theirs["depth"][side] == [
            {"quantity": lv.quantity, "price": _price(ours, lv.price), "orders": lv.orders}
            for lv in levels
        ]


@given(st.lists(any_tick, min_size=1, max_size=20))
def test_full_decode_equals_official_parser_field_by_field(ticks: list[Tick]) -> None:
    """For any frame of any packet kinds and segments, each tick equals the official one."""
    frame = encode_frame(ticks)
    ours = decode_frame(frame)
    theirs = OFFICIAL._parse_binary(frame)
    assert ours.error is None
    assert len(ours.ticks) == len(theirs) == len(ticks)
    for mine, official in zip(ours.ticks, theirs, strict=True):
        _compare(mine, official)


@given(full_ticks)
def test_timestamps_are_aware_utc_whatever_the_host_zone(tick: FullTick) -> None:
    """Our times are the same instant on any host; the official ones are naive and move with TZ."""
    frame = encode_frame([tick])
    _set_zone(INDIA)
    in_india = decode_frame(frame).ticks[0]
    official_india = OFFICIAL._parse_binary(frame)[0]["exchange_timestamp"]
    _set_zone("UTC")
    in_utc = decode_frame(frame).ticks[0]
    official_utc = OFFICIAL._parse_binary(frame)[0]["exchange_timestamp"]
    assert isinstance(in_india, FullTick)
    assert in_india == in_utc
    assert in_india.exchange_at.tzinfo is UTC
    assert in_india.exchange_at == datetime.fromtimestamp(tick.exchange_timestamp, UTC)
    assert official_india.tzinfo is None
    assert official_india - official_utc == timedelta(hours=5, minutes=30)
