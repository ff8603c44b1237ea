"""The v3 feed codec against the official SDK's generated protobuf classes (the oracle)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as pb

from fuzz import upstox_feed
from hmt.sim.upstox import wire
from hmt.upstox.feed_codec import FeedError, FrameType, Method, Mode, decode_frame, request
from hmt.upstox.prices import divisor_for_tick, tick_from_paise, to_units

KEYS = st.from_regex(r"(NSE_EQ|NSE_FO|BSE_EQ|NSE_INDEX|NCD_FO)\|[A-Z0-9 ]{1,14}", fullmatch=True)
# Prices on a 0.05 grid, as doubles: what Upstox sends for equity.
PRICES = st.integers(min_value=1, max_value=10**8).map(lambda units: units / 100)
MODES = st.sampled_from(["ltpc", "full", "option_greeks", "full_d30"])


def sdk_frame(entries: list[tuple[str, float, str, bool]], kind: int = 1, ts: int = 0) -> bytes:
    """A FeedResponse built with the SDK's classes."""
    response = pb.FeedResponse(type=kind, currentTs=ts)
    for key, ltp, mode, index in entries:
        item = response.feeds[key]
        if mode == "ltpc":
            item.ltpc.ltp = ltp
        elif mode in ("full", "full_d30"):
            target = item.fullFeed.indexFF if index else item.fullFeed.marketFF
            target.ltpc.ltp = ltp
            target.ltpc.cp = ltp - 1
        else:
            item.firstLevelWithGreeks.ltpc.ltp = ltp
            item.firstLevelWithGreeks.optionGreeks.delta = 0.5
    return response.SerializeToString()


def test_each_mode_built_by_the_sdk_decodes_to_its_price() -> None:
    frame = sdk_frame(
        [
            ("NSE_EQ|INE002A01018", 2500.05, "ltpc", False),
            ("NSE_FO|43919", 101.35, "full", False),
            ("NSE_INDEX|Nifty 50", 24123.4, "full", True),
            ("NSE_FO|50001", 12.5, "option_greeks", False),
        ],
        ts=1_700_000_000_000,
    )
    decoded = decode_frame(frame)
    assert decoded.type == FrameType.LIVE_FEED
    assert decoded.current_ts == 1_700_000_000_000
    assert dict(decoded.prices) == {
        "NSE_EQ|INE002A01018": 2500.05,
        "NSE_FO|43919": 101.35,
        "NSE_INDEX|Nifty 50": 24123.4,
        "NSE_FO|50001": 12.5,
    }


@given(st.dictionaries(KEYS, st.tuples(PRICES, MODES, st.booleans()), max_size=30))
def test_sdk_frames_round_trip_through_our_decoder(quotes: dict) -> None:
    entries = [(key, ltp, mode, index) for key, (ltp, mode, index) in quotes.items()]
    decoded = decode_frame(sdk_frame(entries))
    assert dict(decoded.prices) == {key: ltp for key, ltp, _, _ in entries}


@given(
    st.dictionaries(KEYS, st.tuples(PRICES, MODES, st.booleans()), max_size=30),
    st.integers(min_value=0, max_value=2**62),
)
def test_simulator_frames_decode_the_same_with_the_sdk_and_with_ours(quotes: dict, ts: int) -> None:
    frame = wire.feed_response(
        wire.TYPE_LIVE,
        ts,
        [(wire.Quote(key, ltp, index=index), mode) for key, (ltp, mode, index) in quotes.items()],
    )
    theirs = pb.FeedResponse.FromString(frame)
    assert theirs.currentTs == ts
    sdk_prices = {}
    for key, item in theirs.feeds.items():
        member = item.WhichOneof("FeedUnion")
        if member == "ltpc":
            sdk_prices[key] = item.ltpc.ltp
        elif member == "fullFeed":
            inner = item.fullFeed.WhichOneof("FullFeedUnion")
            sdk_prices[key] = getattr(item.fullFeed, inner).ltpc.ltp
        else:
            sdk_prices[key] = item.firstLevelWithGreeks.ltpc.ltp
    expected = {key: ltp for key, (ltp, _, _) in quotes.items()}
    assert sdk_prices == expected
    assert dict(decode_frame(frame).prices) == expected


def test_market_info_frame_has_no_prices_and_the_sdk_reads_its_statuses() -> None:
    frame = wire.market_info(5, {"NSE_EQ": "NORMAL_OPEN", "NSE_FO": "NORMAL_CLOSE"})
    theirs = pb.FeedResponse.FromString(frame)
    assert theirs.type == pb.market_info
    assert dict(theirs.marketInfo.segmentStatus) == {"NSE_EQ": 2, "NSE_FO": 3}
    decoded = decode_frame(frame)
    assert decoded.type == FrameType.MARKET_INFO
    assert decoded.prices == []


def test_unknown_fields_are_skipped() -> None:
    response = pb.FeedResponse(type=1)
    item = response.feeds["NSE_EQ|X"]
    item.fullFeed.marketFF.ltpc.ltp = 10.5
    item.fullFeed.marketFF.marketLevel.bidAskQuote.add(bidQ=5, bidP=10.4, askQ=3, askP=10.6)
    item.fullFeed.marketFF.marketOHLC.ohlc.add(interval="1d", open=10, high=11, low=9, close=10.5)
    item.fullFeed.marketFF.vtt = 12345
    item.fullFeed.marketFF.oi = 7.0
    # A field number this schema does not have (as a newer server might add).
    frame = response.SerializeToString() + b"\xf8\x07\x01"
    assert decode_frame(frame).prices == [("NSE_EQ|X", 10.5)]


@pytest.mark.parametrize(
    "frame",
    [
        b"\x12\x05\x0a\x03AB",  # the map entry is cut short
        b"\x12",  # a key with no value
        b"\x08" + b"\xff" * 11,  # a varint longer than 10 bytes
        b"\x0b",  # a group: not in this schema
        b"\x12\x0c\x0a\x01A\x12\x07\x0a\x05\x09\x00\x00\x00",  # a truncated double
        b"\x12\x04\x0a\x02\xff\xfe",  # a key that is not UTF-8
        b"\x00\x01",  # field number 0
    ],
)
def test_bad_frames_raise_a_feed_error_naming_the_frame(frame: bytes) -> None:
    with pytest.raises(FeedError, match=f"not a FeedResponse \\({len(frame)} bytes\\)"):
        decode_frame(frame)


def test_every_truncation_of_a_good_frame_is_a_feed_error_or_a_prefix() -> None:
    frame = sdk_frame([("NSE_EQ|A", 10.05, "full", False), ("NSE_EQ|B", 20.1, "ltpc", False)])
    for cut in range(len(frame)):
        try:
            decoded = decode_frame(frame[:cut])
        except FeedError:
            continue
        assert set(decoded.prices) <= {("NSE_EQ|A", 10.05), ("NSE_EQ|B", 20.1)}


@given(st.binary(max_size=300))
def test_any_bytes_give_a_frame_or_a_feed_error(data: bytes) -> None:
    try:
        decoded = decode_frame(data)
    except FeedError:
        return
    assert all(isinstance(key, str) and isinstance(ltp, float) for key, ltp in decoded.prices)


def test_a_frame_must_be_bytes() -> None:
    with pytest.raises(FeedError, match="bytes, not str"):
        decode_frame("hello")  # type: ignore[arg-type]


def test_requests_match_the_sdk_feeders_shape() -> None:
    from upstox_client.feeder.market_data_feeder_v3 import MarketDataFeederV3

    sdk = json.loads(MarketDataFeederV3().build_request(["NSE_EQ|A", "NSE_FO|1"], "sub", "full"))
    ours = json.loads(request(Method.SUBSCRIBE, ["NSE_EQ|A", "NSE_FO|1"], Mode.FULL))
    assert set(ours) == set(sdk) == {"guid", "method", "data"}
    assert ours["data"] == sdk["data"]
    assert ours["method"] == sdk["method"]
    unsub = json.loads(request(Method.UNSUBSCRIBE, ["NSE_EQ|A"]))
    assert unsub["data"] == {"instrumentKeys": ["NSE_EQ|A"]}
    parsed = wire.parse_request(request(Method.CHANGE_MODE, ["K"], Mode.LTPC))
    assert (parsed.method, parsed.keys, parsed.mode) == ("change_mode", ("K",), "ltpc")


def test_requests_refuse_what_the_feed_would_refuse() -> None:
    with pytest.raises(ValueError, match="at least one"):
        request(Method.SUBSCRIBE, [], Mode.LTPC)
    with pytest.raises(ValueError, match="needs a mode"):
        request(Method.CHANGE_MODE, ["K"])
    with pytest.raises(ValueError, match="no mode"):
        request(Method.UNSUBSCRIBE, ["K"], Mode.FULL)


@pytest.mark.parametrize(
    ("tick_paise", "divisor", "tick_units"),
    [(5.0, 100, 5), (1.0, 100, 1), (0.25, 10_000, 25), ("0.5", 1_000, 5), (100, 100, 100)],
)
def test_the_divisor_is_the_smallest_power_of_ten_making_the_tick_whole(
    tick_paise: object, divisor: int, tick_units: int
) -> None:
    tick = tick_from_paise(tick_paise)
    assert divisor_for_tick(tick) == divisor
    assert tick * divisor == tick_units


def test_bad_ticks_are_refused() -> None:
    with pytest.raises(ValueError, match="number"):
        tick_from_paise(True)
    with pytest.raises(ValueError, match="number"):
        tick_from_paise("five")
    with pytest.raises(ValueError, match=">= 0"):
        divisor_for_tick(Decimal("-1"))
    with pytest.raises(ValueError, match="finer"):
        divisor_for_tick(Decimal("1e-12"))


@given(st.integers(min_value=-(10**9), max_value=10**11), st.sampled_from([100, 1_000, 10_000]))
def test_units_survive_the_double(units: int, divisor: int) -> None:
    assert to_units(units / divisor, divisor) == units


def test_prices_off_the_grid_or_not_finite_are_feed_errors() -> None:
    with pytest.raises(FeedError, match="finer than 1/100"):
        to_units(10.005, 100)
    with pytest.raises(FeedError, match="finite"):
        to_units(float("nan"), 100)
    with pytest.raises(FeedError, match="finite"):
        to_units(float("inf"), 100)


@given(st.binary(max_size=400))
def test_the_fuzz_harness_invariants_hold_on_any_bytes(data: bytes) -> None:
    upstox_feed.check(data)


def test_the_fuzz_harness_seeds_decode_to_what_they_carry() -> None:
    for seed in upstox_feed.seeds():
        upstox_feed.check(seed)
    live = decode_frame(upstox_feed.seeds()[1])
    assert dict(live.prices) == {
        "NSE_EQ|INE002A01018": 2500.05, "NSE_FO|43919": 24200.1,
        "NSE_INDEX|Nifty 50": 24150.2, "NSE_FO|50001": 12.5,
    }  # fmt: skip
