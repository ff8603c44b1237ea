"""The simulator's frame encoder, pinned to the real .packet fixtures and to kiteconnect."""

from __future__ import annotations

import base64
import struct

import pytest
from kiteconnect import KiteTicker

from hmt.sim.prices import Quote
from hmt.sim.universe import Universe
from hmt.sim.wire import (
    HEARTBEAT,
    PACKET_SIZES,
    Mode,
    frame,
    full_packet,
    index_full_packet,
    index_quote_packet,
    ltp_packet,
    packet,
    quote_packet,
)
from tests.sim.support import INFY, NIFTY
from tests.support.services import kite_fixture

UNIVERSE = Universe()
FIXTURE_DEPTH = (
    [(5, 157340, 1), (140, 157300, 2), (2, 157295, 1), (219, 157290, 7), (50, 157285, 1)],
    [(172, 157370, 3), (44, 157375, 3), (302, 157385, 3), (141, 157390, 2), (724, 157395, 5)],
)


def _packet(name: str) -> bytes:
    return base64.b64decode(kite_fixture(name).read_text())


def _infy(last: int, last_qty: int, average: int, volume: int, buy: int, sell: int) -> Quote:
    instrument = UNIVERSE.get(INFY)
    assert instrument is not None
    return Quote(
        instrument,
        last=last,
        open=156915,
        high=157500,
        low=156105,
        close=156780,
        last_qty=last_qty,
        volume=volume,
        turnover=average * volume,
        buy_qty=buy,
        sell_qty=sell,
        trade_time=1625461887,
    )


def _parse(data: bytes) -> list[dict[str, object]]:
    parsed: list[dict[str, object]] = KiteTicker("key", "token")._parse_binary(data)
    return parsed


def test_quote_packet_is_byte_identical_to_the_fixture() -> None:
    """A quote built from ticker_quote.packet's fields encodes to exactly its 44 bytes."""
    expected = _packet("ticker_quote.packet")
    q = _infy(157315, 1, 157033, 1175986, 256511, 360503)
    assert quote_packet(q) == expected
    assert packet(q, Mode.QUOTE) == expected


def test_full_packet_is_byte_identical_to_the_fixture() -> None:
    """A full quote with the fixture's depth encodes to exactly ticker_full.packet's 184 bytes."""
    expected = _packet("ticker_full.packet")
    q = _infy(157370, 7, 157037, 1192471, 256443, 363009)
    assert full_packet(q, depth_levels=FIXTURE_DEPTH) == expected


def test_ltp_packet_is_the_first_eight_bytes_of_the_quote_fixture() -> None:
    """FACTS 4.1: the quote packet's first 8 bytes are a valid LTP packet (1573.15)."""
    assert ltp_packet(INFY, 157315) == _packet("ticker_quote.packet")[:8]


def test_kiteconnect_decodes_every_mode_of_a_tradable_instrument() -> None:
    """One frame with ltp, quote and full packets decodes to the values put in."""
    q = _infy(157370, 7, 157037, 1192471, 256443, 363009)
    ticks = _parse(frame([packet(q, Mode.LTP), packet(q, Mode.QUOTE), packet(q, Mode.FULL)]))
    assert [t["mode"] for t in ticks] == ["ltp", "quote", "full"]
    assert all(t["instrument_token"] == INFY and t["last_price"] == 1573.7 for t in ticks)
    assert ticks[1]["ohlc"] == {"open": 1569.15, "high": 1575.0, "low": 1561.05, "close": 1567.8}
    assert ticks[2]["volume_traded"] == 1192471
    assert ticks[2]["average_traded_price"] == 1570.37
    depth = ticks[2]["depth"]
    assert isinstance(depth, dict)
    assert len(depth["buy"]) == len(depth["sell"]) == 5


def test_index_packets_have_kites_sizes_and_ohlc_order() -> None:
    """Index quote/full packets are 28/32 bytes, OHLC as high, low, open, close."""
    instrument = UNIVERSE.get(NIFTY)
    assert instrument is not None
    q = Quote(
        instrument,
        last=2_510_005,
        open=2_500_000,
        high=2_520_000,
        low=2_490_000,
        close=2_495_000,
        trade_time=1_700_000_000,
    )
    quote, full = index_quote_packet(q), index_full_packet(q)
    assert (len(quote), len(full)) == (28, 32)
    assert packet(q, Mode.QUOTE) == quote
    assert packet(q, Mode.FULL) == full
    assert struct.unpack(">i", quote[24:28])[0] == 2_510_005 - 2_495_000
    ltp, quote_tick, full_tick = _parse(frame([packet(q, Mode.LTP), quote, full]))
    assert ltp == {
        "tradable": False,
        "mode": "ltp",
        "instrument_token": NIFTY,
        "last_price": 25100.05,
    }
    assert quote_tick["ohlc"] == {
        "high": 25200.0,
        "low": 24900.0,
        "open": 25000.0,
        "close": 24950.0,
    }
    assert full_tick["mode"] == "full"
    assert full_tick["tradable"] is False


def test_a_falling_index_encodes_a_negative_change() -> None:
    """The index change field is signed, so a fall below the close does not overflow."""
    instrument = UNIVERSE.get(NIFTY)
    assert instrument is not None
    q = Quote(instrument, last=2_400_000, open=1, high=1, low=1, close=2_500_000)
    assert struct.unpack(">i", index_quote_packet(q)[24:28])[0] == -100_000


@pytest.mark.parametrize(("index", "mode"), sorted(PACKET_SIZES, key=str))
def test_packet_sizes_match_kites_table(index: bool, mode: Mode) -> None:
    """Every (instrument kind, mode) pair encodes to the length Kite uses for it."""
    instrument = UNIVERSE.get(NIFTY if index else INFY)
    assert instrument is not None
    q = Quote(instrument, last=100, open=100, high=100, low=100, close=100)
    assert len(packet(q, mode)) == PACKET_SIZES[(index, mode)]


def test_frame_layout_and_heartbeat() -> None:
    """A frame is a count then length-prefixed packets; a heartbeat is one byte."""
    assert frame([b"abcdefgh", b"12345678"]) == (
        b"\x00\x02" + b"\x00\x08abcdefgh" + b"\x00\x0812345678"
    )
    assert frame([]) == b"\x00\x00"
    assert len(HEARTBEAT) == 1
    assert _parse(HEARTBEAT) == []


def test_frame_refuses_more_packets_than_the_count_field_holds() -> None:
    """The count is 16 bits; a bigger frame is a programming error, said clearly."""
    with pytest.raises(ValueError, match="65535"):
        frame([b""] * 65536)


def test_counters_beyond_32_bits_are_clamped_not_fatal() -> None:
    """A long run's volume overflowing uint32 still encodes (Kite's fields are 32-bit)."""
    q = _infy(157315, 1, 157033, 2**32 + 5, 2**33, 1)
    assert struct.unpack(">I", quote_packet(q)[16:20])[0] == 5
