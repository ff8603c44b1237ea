"""The binary codec: golden fixtures, round trips, malformed input and fuzzing."""

from __future__ import annotations

import base64
import json
import random
import struct
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hmt.kite.ticker_protocol import (
    HEARTBEAT,
    PACKET_SIZES,
    DecodedFrame,
    decode_frame,
    decode_ltps,
    decode_packet,
    encode_frame,
    encode_packet,
    frame_packets,
)
from hmt.kite.ticks import DepthLevel, FrameError, FullTick, LtpTick, Mode, QuoteTick
from tests.support.kite_ticks import any_tick, full_ticks
from tests.support.services import kite_fixture

INFY = 408065


def _packet(name: str) -> bytes:
    return base64.b64decode(kite_fixture(name).read_text())


def _json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(kite_fixture(name).read_text())
    return data


# The mocks use the pre-v4 key names (PROVENANCE.md); ours are the v4 ones.
OLD_NAMES = {
    "last_price": "last_price",
    "last_quantity": "last_traded_quantity",
    "average_price": "average_traded_price",
    "volume": "volume_traded",
    "buy_quantity": "total_buy_quantity",
    "sell_quantity": "total_sell_quantity",
}
PRICES = {"last_price", "average_price"}


def _assert_matches_mock_json(tick: QuoteTick | FullTick, expected: dict[str, Any]) -> None:
    assert tick.instrument_token == expected["instrument_token"]
    assert tick.mode == expected["mode"]
    assert tick.tradable is expected["tradable"]
    for old, new in OLD_NAMES.items():
        value = getattr(tick, new)
        got = tick.decimal(value) if old in PRICES else value
        assert got == Decimal(str(expected[old])), old
    for name, price in expected["ohlc"].items():
        assert tick.decimal(getattr(tick, name)) == Decimal(str(price)), name


def test_quote_fixture_decodes_to_facts_golden_values() -> None:
    """ticker_quote.packet decodes to the raw and rupee values of FACTS.md 4.1 and its JSON."""
    packet = _packet("ticker_quote.packet")
    assert packet.hex() == (
        "00063a010002668300000001000265690011f1b20003e9ff00058037000264f30002673c000261c90002646c"
    )
    tick = decode_packet(packet)
    assert tick == QuoteTick(INFY, 157315, 1, 157033, 1175986, 256511, 360503,
                             156915, 157500, 156105, 156780)  # fmt: skip
    assert isinstance(tick, QuoteTick)
    assert tick.divisor == 100
    assert tick.decimal(tick.last_price) == Decimal("1573.15")
    assert [tick.decimal(p) for p in (tick.open, tick.high, tick.low, tick.close)] == [
        Decimal("1569.15"), Decimal("1575"), Decimal("1561.05"), Decimal("1567.8"),
    ]  # fmt: skip
    _assert_matches_mock_json(tick, _json("ticker_quote.json"))


def test_full_fixture_decodes_to_facts_golden_values() -> None:
    """ticker_full.packet decodes to FACTS.md 4.1: header words, UTC times and the depth table."""
    tick = decode_packet(_packet("ticker_full.packet"))
    assert isinstance(tick, FullTick)
    header = [getattr(tick, name) for name in FullTick.__dataclass_fields__][:16]
    assert header == [408065, 157370, 7, 157037, 1192471, 256443, 363009, 156915,
                      157500, 156105, 156780, 1625461887, 0, 0, 0, 1625461887]  # fmt: skip
    assert tick.mode is Mode.FULL
    assert tick.tradable
    assert tick.last_trade_at == datetime(2021, 7, 5, 5, 11, 27, tzinfo=UTC)
    assert tick.exchange_at == datetime(2021, 7, 5, 5, 11, 27, tzinfo=UTC)
    assert tick.bids == (
        DepthLevel(5, 157340, 1), DepthLevel(140, 157300, 2), DepthLevel(2, 157295, 1),
        DepthLevel(219, 157290, 7), DepthLevel(50, 157285, 1),
    )  # fmt: skip
    assert tick.asks == (
        DepthLevel(172, 157370, 3), DepthLevel(44, 157375, 3), DepthLevel(302, 157385, 3),
        DepthLevel(141, 157390, 2), DepthLevel(724, 157395, 5),
    )  # fmt: skip
    expected = _json("ticker_full.json")
    _assert_matches_mock_json(tick, expected)
    assert tick.last_trade_at == datetime.fromisoformat(expected["last_trade_time"])
    assert tick.exchange_at == datetime.fromisoformat(expected["timestamp"])
    for side, levels in (("buy", tick.bids), ("sell", tick.asks)):
        assert [(lv.quantity, tick.decimal(lv.price), lv.orders) for lv in levels] == [
            (e["quantity"], Decimal(str(e["price"])), e["orders"]) for e in expected["depth"][side]
        ]


def test_ltp_fixture_is_the_first_eight_bytes_of_the_quote_packet() -> None:
    """ticker_ltp.json has no packet: the quote packet's first 8 bytes form it (FACTS.md 4.1)."""
    tick = decode_packet(_packet("ticker_quote.packet")[:8])
    expected = _json("ticker_ltp.json")
    assert tick == LtpTick(INFY, 157315)
    assert tick.mode == expected["mode"]
    assert tick.tradable is expected["tradable"]
    assert tick.decimal(tick.last_price) == Decimal(str(expected["last_price"]))


def test_fixtures_framed_decode_on_both_paths() -> None:
    """Wrapped in a frame, the fixtures give the same ticks on the full path and the fast path."""
    quote, full = _packet("ticker_quote.packet"), _packet("ticker_full.packet")
    frame = frame_packets([quote, full, quote[:8]])
    assert frame[:4] == struct.pack(">HH", 3, 44)
    decoded = decode_frame(frame)
    assert decoded.error is None
    assert [t.mode for t in decoded.ticks] == [Mode.QUOTE, Mode.FULL, Mode.LTP]
    assert decode_ltps(frame) == ([INFY] * 3, [157315, 157370, 157315], None)
    assert encode_frame(decoded.ticks) == frame


@given(st.lists(any_tick, max_size=30))
def test_encode_then_decode_gives_the_ticks_back(ticks: list[Any]) -> None:
    """Any ticks, encoded into a frame, decode to equal ticks, and to their (token, ltp) pairs."""
    frame = encode_frame(ticks)
    assert decode_frame(frame) == DecodedFrame(tuple(ticks), None)
    tokens, ltps, error = decode_ltps(frame)
    assert error is None
    assert list(zip(tokens, ltps, strict=True)) == [
        (t.instrument_token, t.last_price) for t in ticks
    ]


@given(full_ticks, st.integers(1, 400))
def test_same_size_runs_on_the_fast_path(tick: FullTick, count: int) -> None:
    """Frames of one packet size, longer than one precompiled run, decode whole on the fast path."""
    frame = encode_frame([tick] * count)
    assert decode_ltps(frame) == (
        [tick.instrument_token] * count if count > 128 else (tick.instrument_token,) * count,
        [tick.last_price] * count if count > 128 else (tick.last_price,) * count,
        None,
    )


def test_heartbeat_and_empty_frames() -> None:
    """A 1-byte frame is a heartbeat, a 0-byte frame is EMPTY, a 0-packet frame is fine."""
    assert decode_frame(HEARTBEAT) == DecodedFrame((), None, heartbeat=True)
    assert decode_ltps(HEARTBEAT) == ((), (), None)
    assert decode_frame(b"") == DecodedFrame((), FrameError.EMPTY)
    assert decode_ltps(b"")[2] is FrameError.EMPTY
    assert decode_frame(b"\x00\x00") == DecodedFrame((), None)


GOOD = encode_packet(LtpTick(INFY, 157315))
QUOTE = encode_packet(QuoteTick(INFY, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10))


@pytest.mark.parametrize(
    ("frame", "good", "error"),
    [
        (struct.pack(">H", 1), 0, FrameError.TRUNCATED),  # no length prefix
        (struct.pack(">HB", 1, 0), 0, FrameError.TRUNCATED),  # half a length prefix
        (frame_packets([GOOD])[:-1], 0, FrameError.TRUNCATED),  # packet cut short
        (struct.pack(">HH", 2, 8) + GOOD, 1, FrameError.TRUNCATED),  # count says 2, one sent
        (struct.pack(">HH", 1, 60000) + GOOD, 0, FrameError.TRUNCATED),  # length past the end
        (frame_packets([b"\x01" * 12, GOOD]), 1, FrameError.UNKNOWN_PACKET_SIZE),
        (frame_packets([GOOD, b"", QUOTE]), 2, FrameError.UNKNOWN_PACKET_SIZE),
        (frame_packets([GOOD]) + b"\x00\x01", 1, FrameError.TRAILING_BYTES),
        (frame_packets([GOOD, QUOTE]) + GOOD, 2, FrameError.TRAILING_BYTES),
        (frame_packets([GOOD, b"\x02" * 7]) + b"junk", 1, FrameError.UNKNOWN_PACKET_SIZE),
    ],
)
def test_malformed_frames_keep_good_packets_and_name_the_fault(
    frame: bytes, good: int, error: FrameError
) -> None:
    """Each malformed frame yields the packets before the fault and the documented error kind."""
    decoded = decode_frame(frame)
    assert (len(decoded.ticks), decoded.error) == (good, error)
    tokens, ltps, fast_error = decode_ltps(frame)
    assert (len(tokens), len(ltps), fast_error) == (good, good, error)
    assert all(t.instrument_token == INFY for t in decoded.ticks)


def test_same_total_length_but_mixed_sizes_falls_back_to_packet_by_packet() -> None:
    """A frame whose length fits 'all packets the size of the first' but is not, still decodes."""
    # 2 packets: 44 + 8 bytes = 52 + 4 prefixes; "2 x 26" would give the same total.
    frame = frame_packets([QUOTE, GOOD])
    assert len(frame) == 2 + 2 * (2 + 26)
    assert decode_ltps(frame) == ([INFY, INFY], [1, 157315], None)


def test_encoder_names_a_field_that_does_not_fit() -> None:
    """Encoding a negative or too-large value is a ValueError naming the tick, not struct.error."""
    with pytest.raises(ValueError, match=r"LtpTick 408065"):
        encode_packet(LtpTick(INFY, -1))
    bad_depth = FullTick(INFY, *[0] * 15, depth=(0,) * 29)
    with pytest.raises(ValueError, match="30 depth integers"):
        encode_packet(bad_depth)


@given(st.binary(max_size=600))
def test_random_bytes_never_raise(frame: bytes) -> None:
    """Random bytes decode to a result on both paths, never an exception."""
    decoded = decode_frame(frame)
    tokens, ltps, error = decode_ltps(frame)
    assert [t.instrument_token for t in decoded.ticks] == list(tokens)
    assert error == decoded.error
    assert len(tokens) == len(ltps)


@given(st.lists(any_tick, min_size=1, max_size=8), st.data())
def test_truncated_and_concatenated_frames_never_raise(
    ticks: list[Any], data: st.DataObject
) -> None:
    """Cutting a valid frame anywhere or gluing frames together gives good ticks plus an error."""
    frame = encode_frame(ticks)
    cut = data.draw(st.integers(0, len(frame) - 1))
    decoded = decode_frame(frame[:cut])
    assert decoded.ticks == tuple(ticks[: len(decoded.ticks)])
    assert decoded.error is not None or decoded.heartbeat
    glued = decode_frame(frame + frame)
    assert glued.ticks == tuple(ticks)
    assert glued.error is FrameError.TRAILING_BYTES


def test_seeded_garbage_with_valid_headers_never_raises() -> None:
    """Frames with plausible counts and lengths over random bodies never raise (seed printed)."""
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    rng = random.Random(seed)
    sizes = [*sorted(PACKET_SIZES), 0, 1, 7, 9, 183, 185, 65535]
    errors: dict[FrameError | None, int] = {}
    for _ in range(3000):
        parts = [struct.pack(">H", rng.randrange(6))]
        for _ in range(rng.randrange(6)):
            size = rng.choice(sizes)
            parts.append(struct.pack(">H", size) + rng.randbytes(rng.choice([size, size // 2])))
        frame = b"".join(parts)
        error = decode_frame(frame).error
        assert decode_ltps(frame)[2] == error
        errors[error] = errors.get(error, 0) + 1
    print({str(k): v for k, v in errors.items()})
    assert len(errors) >= 4
