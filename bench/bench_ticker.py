"""Ticker decode throughput: hmt's fast and full paths against kiteconnect's parser."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from bench.report import table
from hmt.kite.ticker_protocol import decode_frame, decode_ltps, encode_frame
from hmt.kite.ticks import FullTick, QuoteTick, Tick

PACKETS = 100
SEGMENTS = (1, 2, 3, 4, 5, 7)  # as FACTS.md section 5 measured


def _full(rng: random.Random, i: int) -> FullTick:
    token = rng.randrange(1, 1 << 20) << 8 | SEGMENTS[i % len(SEGMENTS)]
    price = rng.randrange(10_000, 5_000_000)
    head = [price, rng.randrange(1, 500), price, rng.randrange(10**7), rng.randrange(10**6),
            rng.randrange(10**6), price - 50, price + 80, price - 90, price - 20]  # fmt: skip
    depth = tuple(
        n for level in range(10)
        for n in (rng.randrange(1, 5000), price + (level - 5) * 5, rng.randrange(1, 50))
    )  # fmt: skip
    stamp = 1_700_000_000 + i
    return FullTick(token, *head, stamp, rng.randrange(10**6), 0, 0, stamp, depth)


def _quote(tick: FullTick) -> QuoteTick:
    fields = [getattr(tick, name) for name in QuoteTick.__dataclass_fields__]
    return QuoteTick(*fields)


def _rate(decode: Callable[[bytes], object], frame: bytes, calls: int, rounds: int) -> float:
    """Median packets per second over `rounds` rounds of `calls` calls, after a warm-up."""
    for _ in range(max(calls // 20, 5)):
        decode(frame)
    rates = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(calls):
            decode(frame)
        rates.append(calls * PACKETS / ((time.perf_counter_ns() - started) / 1e9))
    return statistics.median(rates)


def _official() -> Callable[[bytes], object] | None:
    try:
        from kiteconnect import KiteTicker  # optional: a dev dependency
    except ImportError:
        return None
    return KiteTicker("api_key", "access_token")._parse_binary  # type: ignore[no-any-return]


def run(quick: bool) -> str:
    rng = random.Random(20261124)
    fulls = [_full(rng, i) for i in range(PACKETS)]
    mixed: list[Tick] = [t if i % 2 else _quote(t) for i, t in enumerate(fulls)]
    frame, mixed_frame = encode_frame(fulls), encode_frame(mixed)
    assert len(decode_frame(frame).ticks) == PACKETS
    rounds = 3 if quick else 7
    slow_calls, fast_calls = (20, 500) if quick else (2_000, 50_000)
    official = _official()
    base = _rate(official, frame, slow_calls, rounds) if official else float("nan")
    rows: list[tuple[str, str, str, str]] = []
    cases: list[tuple[str, Callable[[bytes], object], bytes, int]] = [
        ("kiteconnect 5.x `_parse_binary`, full frame", official or decode_frame, frame,
         slow_calls),
        ("hmt fast path `decode_ltps`, full frame", decode_ltps, frame, fast_calls),
        ("hmt full path `decode_frame`, full frame", decode_frame, frame, slow_calls * 5),
        ("hmt fast path, mixed full/quote frame (packet by packet)", decode_ltps, mixed_frame,
         fast_calls // 5),
    ]  # fmt: skip
    targets = {decode_ltps: 50.0, decode_frame: 5.0}  # issue 3, full-mode frames only
    for name, decode, data, calls in cases:
        rate = base if decode is official else _rate(decode, data, calls, rounds)
        wanted = targets.get(decode) if data is frame else None
        ratio = rate / base
        met = (
            ""
            if wanted is None
            else (
                f">= {wanted:.0f}x: yes"
                if ratio >= wanted
                else f">= {wanted:.0f}x: no: {ratio:.1f}x"
            )
        )
        rows.append((name, f"{rate:,.0f}", f"{1e6 / rate:.2f}", f"{ratio:.1f}x", met))
    if official is None:
        rows[0] = ("kiteconnect not installed: no baseline", "-", "-", "-", "-")
    return "\n".join([
        "## Ticker decode throughput",
        "",
        f"How measured: one binary frame of {PACKETS} full-mode packets (184 B each, "
        f"{len(frame):,} B; segments {', '.join(map(str, SEGMENTS))}), decoded in a loop; "
        f"median of {rounds} rounds, time.perf_counter_ns; every rate measured in this run. "
        "Targets (issue 3): fast path >= 50x the official parser, full decode >= 5x. The fast "
        "path yields (token, ltp) ints only; the full path builds a frozen `FullTick` per "
        "packet with depth decoded on access.",
        "",
        table(["decoder", "packets/s", "us/packet", "vs kiteconnect", "target"], rows),
    ])  # fmt: skip
