"""Backtest replay (`hmt.core.replay`): no-fire ticks through the book, and a realistic day,
each beside a naive loop (every trigger of the instrument checked on every tick) in the
same run."""

from __future__ import annotations

import gc
import random
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

from bench.report import table
from hmt.core.calendar import IST
from hmt.core.instruments import Instrument
from hmt.core.model import Trigger
from hmt.core.replay import Replay
from hmt.core.rules import direction, holds
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

SEED = 20261201
TICK = 5
OPEN = datetime(2026, 11, 27, 9, 15, tzinfo=IST)
DAY_SECONDS = 22_500  # 09:15 to 15:30
CHUNK = 100_000  # ticks made, then replayed: only the replay is timed


def tokens(n: int) -> list[InstrumentToken]:
    return [InstrumentToken(10_000 + i) for i in range(n)]


def master(chosen: list[InstrumentToken]) -> dict[int, Instrument]:
    return {t: Instrument(t, Exchange.NSE, f"S{t}", 100, TICK, 1) for t in chosen}


def trigger(rng: random.Random, token: InstrumentToken, start: int, spread: float) -> Trigger:
    """A single or an oco (a third), levels `spread` (a fraction) or less from `start`."""

    def level(sign: int) -> int:
        return max(TICK, round(start * (1 + sign * rng.uniform(0.002, spread)) / TICK) * TICK)

    oco = rng.random() < 1 / 3
    side = rng.choice((Side.BUY, Side.SELL))
    if oco:  # a SELL oco protects a long: stop below, target above
        stop, target = (level(-1), level(1)) if side is Side.SELL else (level(1), level(-1))
    else:
        stop, target = level(1 if side is Side.BUY else -1), None
    return Trigger(
        id=TriggerId(str(uuid.UUID(int=rng.getrandbits(128), version=4))),
        user_id=UserId("bench"),
        instrument_token=token,
        exchange=Exchange.NSE,
        tradingsymbol=f"S{token}",
        trigger_type=TriggerType.OCO if oco else TriggerType.SINGLE,
        side=side,
        trigger_price_1=stop,
        trigger_price_2=target,
        quantity=1,
        product=Product.MIS,
        order_type=OrderType.MARKET,
    )


def walk(
    rng: random.Random, chosen: list[InstrumentToken], per: int, starts: dict[int, int], *,
    bound: float | None,
) -> Iterator[list[tuple[int, datetime, int]]]:  # fmt: skip
    """`per` ticks of each instrument, round robin over the day, in chunks; a step of
    one tick either way, kept within `bound` (a fraction of the start) if given."""
    prices = dict(starts)
    total = per * len(chosen)
    seconds = [OPEN + timedelta(seconds=s) for s in range(DAY_SECONDS + 1)]
    chunk: list[tuple[int, datetime, int]] = []
    n_tokens = len(chosen)
    for n in range(total):
        token = chosen[n % n_tokens]
        price = prices[token] + rng.choice((-TICK, TICK))
        if bound is not None and abs(price - starts[token]) > starts[token] * bound:
            price = prices[token] - (price - prices[token])
        prices[token] = price
        chunk.append((token, seconds[n * DAY_SECONDS // total], price))
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Naive:
    """Every trigger of the instrument checked on every tick; a fired one dropped."""

    def __init__(self, triggers: list[Trigger]) -> None:
        self.by_token: dict[int, list[tuple[Trigger, list[tuple[object, int]]]]] = {}
        for t in triggers:
            legs = [(direction(t, leg), t.threshold(leg)) for leg in t.legs]
            self.by_token.setdefault(t.instrument_token, []).append((t, legs))

    def ticks(self, rows: list[tuple[int, datetime, int]]) -> int:
        fired = 0
        for token, _, price in rows:
            held = self.by_token.get(token)
            if not held:
                continue
            kept = []
            for t, legs in held:
                if any(holds(way, level, price) for way, level in legs):  # type: ignore[arg-type]
                    fired += 1
                else:
                    kept.append((t, legs))
            if len(kept) != len(held):
                self.by_token[token] = kept
        return fired


def timed(
    replay_ticks, chunks: Iterator[list[tuple[int, datetime, int]]], limit: int | None = None
) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Seconds spent in `replay_ticks` over the chunks (their making not counted)."""
    spent, count = 0.0, 0
    gc.disable()
    try:
        for chunk in chunks:
            started = time.perf_counter()
            replay_ticks(chunk)
            spent += time.perf_counter() - started
            count += len(chunk)
            if limit is not None and count >= limit:
                break
    finally:
        gc.enable()
    return spent, count


def scenario(
    n_instruments: int, per: int, n_triggers: int, *, fire: bool, naive_cap: int
) -> list[str]:
    rng = random.Random(SEED + per + n_triggers + fire)
    chosen = tokens(n_instruments)
    starts = {t: TICK * rng.randint(2_000, 60_000) for t in chosen}
    # No fire: every level at least 3% away and prices kept within 1%.
    spread, bound = (0.05, None) if fire else (0.10, 0.01)
    triggers = []
    for k in range(n_triggers):
        token = chosen[k % n_instruments]
        made = trigger(rng, token, starts[token], spread)
        if not fire:  # push every level out past 3%
            made = _away(made, starts[token])
        triggers.append(made)
    replay = Replay(triggers, master(chosen))
    spent, count = timed(replay.ticks, walk(random.Random(SEED), chosen, per, starts, bound=bound))
    result = replay.result()
    fired = sum(1 for o in result.outcomes if o.status == "fired")
    naive = Naive(triggers)
    n_spent, n_count = timed(
        naive.ticks, walk(random.Random(SEED), chosen, per, starts, bound=bound), naive_cap
    )
    rate, n_rate = count / spent, n_count / n_spent
    return [
        f"{n_instruments} x {per:,}",
        f"{n_triggers:,}",
        f"{fired:,}",
        f"{rate:,.0f}",
        f"{n_rate:,.0f}",
        f"{rate / n_rate:,.1f}x",
    ]


def _away(t: Trigger, start: int) -> Trigger:
    from dataclasses import replace

    def out(level: int) -> int:
        far = start * 3 // 100
        return (
            start + max(far, level - start) if level >= start else start - max(far, start - level)
        )

    second = None if t.trigger_price_2 is None else out(t.trigger_price_2)
    return replace(t, trigger_price_1=out(t.trigger_price_1), trigger_price_2=second)


def run(quick: bool) -> str:
    per_nofire, per_day = (20_000, 2_000) if quick else (20_000, 100_000)
    cap = 20_000 if quick else 200_000
    nofire = scenario(50, per_nofire, 10_000, fire=False, naive_cap=cap // 2)
    day = scenario(50, per_day, 10_000, fire=True, naive_cap=cap)
    target = 1_000_000
    rows = [
        ["no-fire ticks", *nofire, "yes" if float(nofire[3].replace(",", "")) >= target else "no"],
        ["realistic day", *day, ""],
    ]
    return "\n\n".join(
        [
            "## Backtest replay (`hmt.core.replay`)",
            "How measured: `bench/bench_backtest.py`, seed "
            f"{SEED}. Triggers (a third ocos, the rest singles, BUY or SELL) on 50 "
            "instruments; each instrument's price a one-tick random walk, ticks round robin "
            "over one trading day's timestamps, made in chunks of "
            f"{CHUNK:,} and only the replay timed (`Replay.ticks`: the engine's "
            "`TriggerBook`, the time book's wake-up check, fills and marks of fired "
            "triggers). No-fire: every level 3% or more away and prices kept within 1%. "
            "Realistic day: levels 0.2-5% away, a one-tick walk (some fire, their orders "
            "fill and are marked to market on every later tick). The naive loop checks "
            "every trigger of the instrument on every tick, over the first ticks of the "
            "same stream (at most 100k / 200k; 10k / 20k with --quick).",
            table(
                [
                    "run",
                    "instruments x ticks each",
                    "triggers",
                    "fired",
                    "replay ticks/s",
                    "naive ticks/s",
                    "replay / naive",
                    "target: no-fire >= 1M ticks/s on one core",
                ],
                rows,
            ),
        ]
    )
