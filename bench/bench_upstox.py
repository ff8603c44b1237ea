"""Upstox feed decode throughput: hmt's protobuf wire decoder beside the official SDK's classes."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from bench.report import table
from hmt.upstox.feed_codec import decode_frame
from hmt.upstox.prices import to_units

ENTRIES = 100


def _frames(rng: random.Random) -> dict[str, bytes] | None:
    """One LTPC-mode and one full-mode FeedResponse of ENTRIES instruments, built by the SDK."""
    try:
        from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as pb  # a dev dependency
    except ImportError:
        return None
    ltpc, full = pb.FeedResponse(type=1, currentTs=1), pb.FeedResponse(type=1, currentTs=1)
    for i in range(ENTRIES):
        key = f"NSE_FO|{40_000 + i}"
        price = rng.randrange(10_000, 5_000_000) / 100
        item = ltpc.feeds[key].ltpc
        item.ltp, item.ltt, item.ltq, item.cp = price, 1_764_547_200_000 + i, 75, price - 1
        market = full.feeds[key].fullFeed.marketFF
        market.ltpc.ltp, market.ltpc.ltt, market.ltpc.cp = price, 1_764_547_200_000 + i, price - 1
        for level in range(5):
            market.marketLevel.bidAskQuote.add(
                bidQ=rng.randrange(1, 5000), bidP=price - level * 0.05,
                askQ=rng.randrange(1, 5000), askP=price + level * 0.05,
            )  # fmt: skip
        for interval in ("1d", "I1"):
            market.marketOHLC.ohlc.add(
                interval=interval, open=price, high=price + 1, low=price - 1, close=price,
                vol=rng.randrange(10**6), ts=1_764_547_200_000,
            )  # fmt: skip
        market.atp, market.vtt, market.oi, market.tbq, market.tsq = price, 10**6, 5e5, 1e5, 1e5
    return {"ltpc": ltpc.SerializeToString(), "full": full.SerializeToString()}


def _sdk_decoders() -> list[tuple[str, Callable[[bytes], object]]]:
    from google.protobuf import json_format
    from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as pb

    parse = pb.FeedResponse.FromString

    def streamer(frame: bytes) -> object:
        # What the SDK's MarketDataStreamerV3 does with every message.
        return json_format.MessageToDict(parse(frame))

    def prices(frame: bytes) -> object:
        out = []
        for key, item in parse(frame).feeds.items():
            member = item.WhichOneof("FeedUnion")
            if member == "ltpc":
                out.append((key, item.ltpc.ltp))
            elif member == "fullFeed":
                inner = item.fullFeed.WhichOneof("FullFeedUnion")
                out.append((key, getattr(item.fullFeed, inner).ltpc.ltp))
        return out

    return [
        ("SDK: FromString + MessageToDict (its streamer)", streamer),
        ("SDK: FromString, then each entry's ltp", prices),
    ]


def _ours(frame: bytes) -> object:
    return decode_frame(frame).prices


def _ours_units(frame: bytes) -> object:
    return [(key, to_units(ltp, 100)) for key, ltp in decode_frame(frame).prices]


def _rate(decode: Callable[[bytes], object], frame: bytes, calls: int, rounds: int) -> float:
    """Median entries per second over `rounds` rounds of `calls` calls, after a warm-up."""
    for _ in range(max(calls // 20, 5)):
        decode(frame)
    rates = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(calls):
            decode(frame)
        rates.append(calls * ENTRIES / ((time.perf_counter_ns() - started) / 1e9))
    return statistics.median(rates)


def run(quick: bool) -> str:
    frames = _frames(random.Random(20261201))
    title = "## Upstox feed decode throughput"
    if frames is None:
        return f"{title}\n\nupstox-python-sdk is not installed: no frames and no baseline."
    import google.protobuf

    rounds, calls = (3, 20) if quick else (7, 400)
    cases = [
        *_sdk_decoders(),
        ("hmt `decode_frame` (key, rupees)", _ours),
        ("hmt `decode_frame` + `to_units` (key, integer units)", _ours_units),
    ]
    rows = []
    for mode, frame in frames.items():
        base = _rate(cases[0][1], frame, calls, rounds)
        for name, decode in cases:
            rate = base if decode is cases[0][1] else _rate(decode, frame, calls, rounds)
            rows.append((mode, name, f"{rate:,.0f}", f"{1e6 / rate:.2f}", f"{rate / base:.1f}x"))
    sizes = ", ".join(f"{mode} {len(frame):,} B" for mode, frame in frames.items())
    return "\n".join([
        title,
        "",
        f"How measured: one FeedResponse of {ENTRIES} instruments built with the SDK's "
        f"generated classes ({sizes}; full mode carries 5 depth levels and 2 OHLC bars "
        "per instrument), decoded in a loop; median of "
        f"{rounds} rounds, time.perf_counter_ns; protobuf {google.protobuf.__version__} "
        f"({_backend()}). The same frames and the same run for every row. The SDK rows use "
        "protobuf's compiled parser; hmt's decoder is pure Python and reads only the last "
        "prices (docs/upstox/FEED.md).",
        "",
        table(["mode", "decoder", "entries/s", "us/entry", "vs SDK streamer"], rows),
    ])  # fmt: skip


def _backend() -> str:
    try:
        from google.protobuf.internal import api_implementation
    except ImportError:
        return "unknown backend"
    return f"{api_implementation.Type()} backend"
