"""Trailing stops in the book: per-tick cost on one rising instrument, 10 -> 100k stops,
beside a naive scan (every stop advanced and checked on every tick) and NautilusTrader's
own order emulator holding the same stops, all in the same run; and the no-fire tick of
an instrument without trailing stops, with and without 100k of them on another.

NautilusTrader is the `bench` extra (`make bench` installs it); without it its column
says so and the rest still runs.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

from bench import bench_book
from bench.report import table
from hmt.core.book import TriggerBook
from hmt.core.model import LegSpec, Trigger
from hmt.core.rules import direction
from hmt.core.trailing import Offset, Trail, TrailState
from hmt.core.types import (
    Direction,
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
# Issue 14's third instrument: trailing stops elsewhere while INFY keeps fixed triggers only.
OTHER = InstrumentToken(738561)  # RELIANCE
OTHER_START = 250_000
# Nautilus's emulator is loaded one `SubmitOrder` at a time and each costs O(orders held)
# (the section's text says why): 10k orders take 15-20 s, 100k about half an hour.
NAUTILUS_MAX = 10_000

if TYPE_CHECKING:
    from nautilus_trader.model.orders import Order

    from bench.nautilus_emulator import NautilusEmulator


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


def make_triggers(
    trails: list[Trail],
    rng: random.Random,
    token: InstrumentToken = TOKEN,
    symbol: str = "INFY",
) -> list[Trigger]:
    user = UserId("bench")
    return [
        Trigger(
            id=TriggerId(str(uuid.UUID(int=rng.getrandbits(128), version=4))),
            user_id=user,
            instrument_token=token,
            exchange=Exchange.NSE,
            tradingsymbol=symbol,
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


def load_nautilus() -> type[NautilusEmulator] | str:
    """The emulator driver, or why it cannot run (the `bench` extra is not installed)."""
    try:
        from bench.nautilus_emulator import NautilusEmulator
    except ImportError:
        return "not measured: nautilus-trader is not installed (the `bench` extra)"
    return NautilusEmulator


def nautilus_rising(
    driver: type[NautilusEmulator], trails: list[Trail], ticks: int, repeats: int
) -> tuple[float, float]:
    """Nautilus's per-tick median on the same rising prices, and its load time in s.

    Checks afterwards that the emulator still holds every order (none fired) and that
    each stop sits where ours would without its step, give or take one tick (Nautilus
    rounds a basis-point distance its own way).
    """
    emulator = driver("INFY", TICK, START)
    emulator.hold([emulator.trail(trail) for trail in trails])
    emulator.prepare(range(START, START + TICK * (ticks * repeats + 1), TICK))
    ns, last = rising_ns(emulator.on_tick, START, ticks, repeats)
    if emulator.held() != len(trails):
        raise AssertionError(f"Nautilus released {len(trails) - emulator.held()} stops")
    for trail, stop in zip(trails, emulator.stops(), strict=True):
        ours = replace(trail, step=None).level(last)
        if abs(stop - ours) > TICK:
            raise AssertionError(f"Nautilus's stop {stop} for {trail} at {last}, ours {ours}")
    return ns, emulator.load_s


def rising(sizes: list[int], ticks: int, repeats: int, nautilus_max: int) -> str:
    rows = []
    baseline = None
    driver = load_nautilus()
    per_order_ns = None
    for n in sizes:
        rng = random.Random(SEED + n)
        trails = make_trails(n, rng)
        triggers = make_triggers(trails, rng)
        book = TriggerBook()
        book.add_many(triggers)
        book.on_tick(TOKEN, START)  # every stop becomes active
        book_ns, _ = rising_ns(book.on_tick, START, ticks, repeats)
        naive = NaiveTrails(triggers)
        naive.on_tick(TOKEN, START)
        naive_ticks = max(1, min(ticks, 200_000 // n))
        naive_ns, _ = rising_ns(naive.on_tick, START, naive_ticks, 3)
        del book, naive, triggers
        gc.collect()
        if isinstance(driver, str):
            nautilus, versus = driver, ""
        elif n > nautilus_max:
            projected = f", ~{per_order_ns * n / 1e9:,.1f} s/tick projected" if per_order_ns else ""
            nautilus = (
                f"not run: loading {n:,} orders is quadratic in the emulator (see above)"
                + projected
            )
            versus = ""
        else:
            nautilus_ns, load_s = nautilus_rising(
                driver, trails, max(2, min(ticks, 20_000 // n)), 3
            )
            per_order_ns = nautilus_ns / n
            nautilus = f"{nautilus_ns:,.0f} (loaded in {load_s:,.1f} s)"
            versus = f"{nautilus_ns / book_ns:,.0f}x"
            gc.collect()
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
                nautilus,
                versus,
                "yes" if met else f"no: {book_ns:,.0f} ns, {ratio:.2f}x",
            ]
        )
    return table(
        [
            "trailing stops on the instrument",
            "book ns/tick (median)",
            "vs 10 stops",
            "naive scan ns/tick",
            "naive / book",
            "NautilusTrader emulator ns/tick",
            "Nautilus / book",
            "target: <= 5 us at 100k and <= 2x the 10-stop cost",
        ],
        rows,
    )


def nautilus_orders(emulator: NautilusEmulator, triggers: list[Trigger]) -> list[Order]:
    """Each leg as the emulator holds it: a stop where the leg fires on a move against the
    side (SELL on a fall, BUY on a rise), a market-if-touched order otherwise (a target)."""
    orders = []
    for trigger in triggers:
        for leg in trigger.legs:
            against = (direction(trigger, leg) is Direction.AT_OR_BELOW) == (
                trigger.side is Side.SELL
            )
            make = emulator.stop if against else emulator.if_touched
            orders.append(make(trigger.side, trigger.threshold(leg)))
    return orders


def nautilus_no_fire(
    driver: type[NautilusEmulator] | str, triggers: list[Trigger], repeats: int
) -> str:
    """Nautilus's no-fire tick on INFY holding the same legs, as a table cell."""
    if isinstance(driver, str):
        return driver
    emulator = driver("INFY", TICK, bench_book.LTP)
    orders = nautilus_orders(emulator, triggers)
    emulator.hold(orders)
    ns = bench_book.per_call_ns(emulator.on_tick, max(3, 30_000 // len(orders)), repeats)
    if emulator.held() != len(orders):
        raise AssertionError(f"Nautilus released {len(orders) - emulator.held()} orders")
    return f"{ns:,.0f} ({len(orders):,} orders)"


def untouched(fixed: int, trailing: int, repeats: int) -> str:
    """INFY's no-fire tick with fixed triggers only, with and without trailing elsewhere."""
    rng = random.Random(SEED + 14)
    infy = bench_book.make_triggers(fixed, rng)
    others = make_triggers(make_trails(trailing, rng), rng, OTHER, "RELIANCE")
    alone, beside = TriggerBook(), TriggerBook()
    alone.add_many(infy)
    beside.add_many(infy)
    beside.add_many(others)
    beside.on_tick(OTHER, OTHER_START)  # every trailing stop is active
    ltp = bench_book.LTP
    assert not alone.on_tick(TOKEN, ltp)
    assert not beside.on_tick(TOKEN, ltp)
    today, now = bench_book.interleaved_ns(
        [(alone.on_tick, TOKEN, ltp), (beside.on_tick, TOKEN, ltp)],
        calls=10_000,
        repeats=repeats,
    )
    del alone, beside, others
    gc.collect()
    nautilus = nautilus_no_fire(load_nautilus(), infy, 5)
    return table(
        [
            "fixed triggers on INFY",
            "trailing stops on RELIANCE",
            "INFY tick ns, no trailing anywhere",
            "INFY tick ns, trailing on RELIANCE",
            "ratio",
            "NautilusTrader emulator, INFY tick ns (no trailing)",
            "target: <= 1.1x (today's no-fire cost)",
        ],
        [
            [
                f"{fixed:,}",
                f"{trailing:,}",
                f"{today:,.0f}",
                f"{now:,.0f}",
                f"{now / today:.2f}x",
                nautilus,
                bench_book.verdict(now / today <= 1.1, f"{now / today:.2f}x"),
            ]
        ],
    )


def run(quick: bool) -> str:
    sizes = [10, 1_000, 10_000] if quick else [10, 1_000, 10_000, 100_000]
    ticks, repeats = (2_000, 5) if quick else (20_000, 15)
    nautilus_max = 1_000 if quick else NAUTILUS_MAX
    fixed, trailing = (1_000, 10_000) if quick else (10_000, 100_000)
    untouched_repeats = 31 if quick else 101
    return "\n\n".join(
        [
            "## Trailing stops (`hmt.core.trailbook`)",
            "How measured: `bench/bench_trailing.py`, seed "
            f"{SEED}. n trailing SELL stops on one instrument (offsets a third each in "
            "rupees, bps and ticks, one in five stepped), all active; then a price rising "
            "one tick per tick, so every tick is a new high that moves every stop. Book: "
            f"median over {repeats} batches of {ticks:,} `TriggerBook.on_tick` calls. Naive "
            "scan: each stop advanced and checked on every tick (`Trail` itself), same "
            "stops, 3 batches of fewer ticks at large n.",
            "NautilusTrader (the `bench` extra, never a dependency of hmt): its "
            "`OrderEmulator` holding the same stops as `TRAILING_STOP_MARKET` orders "
            "(same side, offset kind and offset; Nautilus has no step, so a stepped stop "
            "is an unstepped one there), emulated on the last price, with the message bus, "
            "cache (no database), portfolio and risk engine a Nautilus node wires around "
            "it. Each tick is a prebuilt `TradeTick` handed to `OrderEmulator.on_trade_tick` "
            "(the data engine's hop is left out), which runs its matching core over every "
            "held order and then recomputes every trailing stop, issuing an `OrderUpdated` "
            "event (applied to the order, cached, sent to the risk engine, published) for "
            "each that moved. Same rising prices, median of 3 batches of "
            "min(ticks, 20,000 / n) ticks; afterwards the run checks that no order was "
            "released and that each Nautilus stop is within one tick of ours (unstepped). "
            "Loading is not timed in the ns/tick figure but shown beside it: each "
            "`SubmitOrder` copies the emulator's dict of held commands twice and re-sorts "
            "the matching core's list, so loading n orders costs O(n^2); "
            f"Nautilus is run up to {nautilus_max:,} orders, and above that its per-order "
            "cost at the largest size run is projected, not measured.",
            rising(sizes, ticks, repeats, nautilus_max),
            "### An instrument without trailing stops",
            "INFY holds only fixed triggers (`bench_book`'s no-fire set: half BUY above, "
            "half SELL below, a tenth oco); the same triggers in two books, one of them "
            "also holding trailing SELL stops on RELIANCE, all active. No-fire ticks on "
            f"INFY at 1,500.00, median over {untouched_repeats} batches of 10,000 "
            "`on_tick` calls, the two books taken in turn. NautilusTrader: its emulator "
            "(wired as above) holding the same legs on INFY, a stop as `STOP_MARKET` and "
            "an oco's target as `MARKET_IF_TOUCHED`, the same no-fire `TradeTick`; median "
            "of 5 batches of a few ticks (its matching core checks every held order on "
            "every tick). It is not run beside trailing stops on another instrument: "
            "each instrument has its own matching core, and loading 100k orders would "
            "take most of half an hour.",
            untouched(fixed, trailing, untouched_repeats),
        ]
    )
