"""Trailing stops in the book: per-tick cost on one rising instrument, 10 -> 100k stops,
beside a naive scan (every stop advanced and checked on every tick) in the same run.

NautilusTrader's order emulator (issue 14's third column) is not here: it needs
`nautilus-trader` as a benchmark-only extra, a dependency decision not yet taken.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
import uuid

from bench.report import table
from hmt.core.book import TriggerBook
from hmt.core.model import LegSpec, Trigger
from hmt.core.trailing import Offset, Trail, TrailState
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

TOKEN = InstrumentToken(408065)
START = 150_000  # 1,500.00 in paise; tick 5 paise
TICK = 5
SEED = 20261130


def make_trails(n: int, rng: random.Random) -> list[Trail]:
    """SELL stops under a long, offsets as a trader sets them: a third each in rupees
    (0.50-50.00), in bps (0.1%-5%) and in ticks (1-200); one in five moves in steps (of
    1, 2, 5 or 10 rupees). None has an activation price: all trail from the first tick."""
    out = []
    for i in range(n):
        kind = (Offset.PRICE, Offset.BPS, Offset.TICKS)[i % 3]
        offset = {
            Offset.PRICE: TICK * rng.randint(10, 1_000),
            Offset.BPS: rng.randint(10, 500),
            Offset.TICKS: rng.randint(1, 200),
        }[kind]
        step = rng.choice((100, 200, 500, 1_000)) if rng.random() < 0.2 else None
        out.append(Trail(Side.SELL, kind, offset, TICK, step=step))
    return out


def make_triggers(trails: list[Trail], rng: random.Random) -> list[Trigger]:
    user = UserId("bench")
    return [
        Trigger(
            id=TriggerId(str(uuid.UUID(int=rng.getrandbits(128), version=4))),
            user_id=user,
            instrument_token=TOKEN,
            exchange=Exchange.NSE,
            tradingsymbol="INFY",
            trigger_type=TriggerType.SINGLE,
            side=Side.SELL,
            trigger_price_1=0,
            trigger_price_2=None,
            quantity=1,
            product=Product.CNC,
            order_type=OrderType.MARKET,
            leg_specs=(LegSpec(trail=trail),),
        )
        for trail in trails
    ]


class NaiveTrails:
    """The emulator's way: every stop advanced and checked on every tick (`Trail` itself)."""

    def __init__(self, triggers: list[Trigger]) -> None:
        self.held: list[tuple[Trigger, Trail, TrailState]] = []
        for trigger in triggers:
            trail = trigger.trail(trigger.legs[0])
            assert trail is not None
            self.held.append((trigger, trail, trail.start()))

    def on_tick(self, token: int, ltp: int) -> list[Trigger]:
        fired, kept = [], []
        for trigger, trail, state in self.held:
            state = trail.advance(state, ltp)
            if trail.fires(state, ltp):
                fired.append(trigger)
            else:
                kept.append((trigger, trail, state))
        self.held = kept
        return fired


def rising_ns(on_tick, price: int, ticks: int, repeats: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Median over `repeats` batches of the mean cost of one tick, each a new high."""
    samples = []
    gc.disable()
    try:
        for _ in range(repeats):
            started = time.perf_counter_ns()
            for _ in range(ticks):
                price += TICK
                if on_tick(TOKEN, price):
                    raise AssertionError("a rising price fired a trailing SELL stop")
            samples.append((time.perf_counter_ns() - started) / ticks)
    finally:
        gc.enable()
    return statistics.median(samples), price


def rising(sizes: list[int], ticks: int, repeats: int) -> str:
    rows = []
    baseline = None
    for n in sizes:
        rng = random.Random(SEED + n)
        triggers = make_triggers(make_trails(n, rng), rng)
        book = TriggerBook()
        book.add_many(triggers)
        book.on_tick(TOKEN, START)  # every stop becomes active
        book_ns, _ = rising_ns(book.on_tick, START, ticks, repeats)
        naive = NaiveTrails(triggers)
        naive.on_tick(TOKEN, START)
        naive_ticks = max(1, min(ticks, 200_000 // n))
        naive_ns, _ = rising_ns(naive.on_tick, START, naive_ticks, 3)
        baseline = baseline or book_ns
        ratio = book_ns / baseline
        met = (n < 100_000 or book_ns <= 5_000) and ratio <= 2
        rows.append(
            [
                f"{n:,}",
                f"{book_ns:,.0f}",
                f"{ratio:.2f}",
                f"{naive_ns:,.0f}",
                f"{naive_ns / book_ns:,.0f}x",
                "yes" if met else f"no: {book_ns:,.0f} ns, {ratio:.2f}x",
            ]
        )
        del book, naive, triggers
        gc.collect()
    return table(
        [
            "trailing stops on the instrument",
            "book ns/tick (median)",
            "vs 10 stops",
            "naive scan ns/tick",
            "naive / book",
            "target: <= 5 us at 100k and <= 2x the 10-stop cost",
        ],
        rows,
    )


def run(quick: bool) -> str:
    sizes = [10, 1_000, 10_000] if quick else [10, 1_000, 10_000, 100_000]
    ticks, repeats = (2_000, 5) if quick else (20_000, 15)
    return "\n\n".join(
        [
            "## Trailing stops (`hmt.core.trailbook`)",
            "How measured: `bench/bench_trailing.py`, seed "
            f"{SEED}. n trailing SELL stops on one instrument (offsets a third each in "
            "rupees, bps and ticks, one in five stepped), all active; then a price rising "
            f"one tick per tick, so every tick is a new high that moves every stop. Median "
            f"over {repeats} batches of {ticks:,} `on_tick` calls. The naive scan advances "
            "and checks each stop on every tick (what NautilusTrader's emulator does for "
            "trailing stops), same stops, same run, fewer ticks at large n. NautilusTrader "
            "itself is not measured yet: it needs `nautilus-trader` as a benchmark-only "
            "extra (a dependency decision).",
            rising(sizes, ticks, repeats),
        ]
    )
