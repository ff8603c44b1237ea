"""Prices: the market's state per instrument and the models that move it.

Three ways to move a price, all ending in `Market.trade`: a seeded geometric
random walk on the tick grid, replay of a CSV of timestamp, token, ltp
[, volume], and a manual push. Prices are integers in wire units throughout.
"""

from __future__ import annotations

import asyncio
import csv
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

from hmt.sim.universe import Instrument, Universe

IST = timezone(timedelta(hours=5, minutes=30))
# Trading seconds in a year (252 days of 6h15m): scales annual volatility to one trade.
TRADING_SECONDS_PER_YEAR = 252 * 6.25 * 3600
DEPTH_LEVELS = 5
# Prices and volumes travel as uint32 ticker fields: anything larger cannot be sent.
MAX_WIRE = 0xFFFF_FFFF


@dataclass(slots=True)
class Quote:
    """The market's view of one instrument after its latest trade."""

    instrument: Instrument
    last: int
    open: int
    high: int
    low: int
    close: int
    last_qty: int = 0
    volume: int = 0
    turnover: int = 0  # sum of price * quantity, for the average traded price
    buy_qty: int = 0
    sell_qty: int = 0
    trade_time: int = 0  # epoch seconds of the last trade
    seq: int = 0  # trades so far: lets a listener tell two equal prices apart

    @property
    def token(self) -> int:
        return self.instrument.token

    @property
    def average(self) -> int:
        """Volume-weighted average traded price, in wire units."""
        return self.turnover // self.volume if self.volume else self.last

    def depth(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """Five bid and five ask levels (quantity, price, orders) around the last price.

        Synthetic but stable: the best ask is the last price, bids sit below it,
        and quantities vary with volume so successive ticks differ.
        """
        tick, lot = self.instrument.tick, max(1, self.instrument.lot_size)
        base = self.volume // 7
        bids, asks = [], []
        for level in range(DEPTH_LEVELS):
            bid_qty = lot * (1 + (base + 37 * level) % 500)
            ask_qty = lot * (1 + (base + 53 * level + 11) % 500)
            bids.append((bid_qty, max(tick, self.last - (level + 1) * tick), 1 + bid_qty % 9))
            asks.append((ask_qty, self.last + level * tick, 1 + ask_qty % 9))
        return bids, asks


Listener = Callable[[Quote], None]


class PriceError(ValueError):
    """A price that the instrument cannot trade at."""


def parse_price(text: str | int | float | Decimal, instrument: Instrument) -> int:
    """Rupees (any exact decimal form) to wire units, on the instrument's tick grid."""
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise PriceError(f"price {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise PriceError(f"price {text!r} must be a positive number")
    # Bounded before multiplying: 1e999999999 * divisor overflows Decimal's context.
    if value > MAX_WIRE or (units := value * instrument.divisor) > MAX_WIRE:
        raise PriceError(f"price {text!r} is beyond the largest price the ticker can carry")
    if units != units.to_integral_value():
        raise PriceError(f"price {text} has more decimals than {instrument.tradingsymbol} allows")
    if int(units) % instrument.tick:
        tick = Decimal(instrument.tick) / instrument.divisor
        raise PriceError(f"price {text} is not a multiple of the tick size {tick}")
    return int(units)


class Market:
    """The last trade of every instrument, and who to tell when one changes."""

    def __init__(self, universe: Universe, clock: Callable[[], float] = time.time) -> None:
        self.universe = universe
        self.clock = clock
        self.listeners: list[Listener] = []
        self.quotes: dict[int, Quote] = {}
        self.reset()

    def reset(self) -> None:
        """Every instrument back at its previous close, with no trades today."""
        self.quotes = {
            i.token: Quote(i, last=i.close, open=i.close, high=i.close, low=i.close, close=i.close)
            for i in self.universe
        }

    def quote(self, token: int) -> Quote | None:
        return self.quotes.get(token)

    def trade(
        self,
        token: int,
        price: int,
        qty: int | None = None,
        volume: int | None = None,
        at: float | None = None,
    ) -> Quote:
        """Record a trade at `price` (wire units) and tell every listener."""
        q = self.quotes.get(token)
        if q is None:
            raise PriceError(f"instrument token {token} is not in the simulator's universe")
        if price <= 0:
            raise PriceError(f"price {price} for {token} must be positive")
        if volume is not None:  # replayed cumulative volume
            qty = max(0, volume - q.volume) if qty is None else qty
            q.turnover += price * qty
            q.volume = max(volume, q.volume)
        else:
            qty = qty if qty is not None else max(1, q.instrument.lot_size) * (1 + q.seq % 25)
            q.turnover += price * qty
            q.volume += qty
        if q.seq == 0:
            q.open = q.high = q.low = price
        q.last, q.last_qty, q.seq = price, qty, q.seq + 1
        q.high, q.low = max(q.high, price), min(q.low, price)
        q.buy_qty += qty * 3
        q.sell_qty += qty * 2
        q.trade_time = int(at if at is not None else self.clock())
        for listener in self.listeners:
            listener(q)
        return q

    def push_price(self, token: int, price: str | int | float | Decimal) -> Quote:
        """Manual control: trade `token` at `price` rupees now (on the tick grid)."""
        instrument = self.universe.get(token)
        if instrument is None:
            raise PriceError(f"instrument token {token} is not in the simulator's universe")
        return self.trade(token, parse_price(price, instrument))


@dataclass(slots=True)
class _Walker:
    instrument: Instrument
    rng: random.Random
    sigma: float
    due: float = 0.0


class RandomWalk:
    """A seeded geometric random walk on each instrument's tick grid.

    Each instrument has its own generator seeded from (seed, token), so its
    price path depends only on the seed and how many trades it has made, not
    on timing or on the other instruments.
    """

    def __init__(
        self, market: Market, seed: int, *, speed: float = 1.0, tokens: Iterable[int] | None = None
    ) -> None:
        self.market = market
        self.speed = speed
        self.held: set[int] = set()  # tokens a script moves instead (sim/gaps.py)
        chosen = set(tokens) if tokens is not None else None
        self._walkers = [
            _Walker(
                i,
                random.Random(f"{seed}:{i.token}"),
                i.volatility * math.sqrt(1.0 / (i.tick_rate * TRADING_SECONDS_PER_YEAR)),
            )
            for i in market.universe
            if chosen is None or i.token in chosen
        ]

    def next_price(self, walker: _Walker, last: int) -> int:
        """One step: a lognormal move rounded to the tick grid, never below one tick."""
        tick = walker.instrument.tick
        z = walker.rng.gauss(0.0, 1.0)
        moved = last * math.exp(walker.sigma * z - walker.sigma * walker.sigma / 2)
        return max(tick, round(moved / tick) * tick)

    def step(self, seconds: float) -> int:
        """Advance the walk by `seconds` of simulated time; returns trades made."""
        made = 0
        quotes = self.market.quotes
        for w in self._walkers:
            w.due += w.instrument.tick_rate * seconds * self.speed
            count = int(w.due)
            w.due -= count
            if w.instrument.token in self.held:
                continue
            for _ in range(count):
                token = w.instrument.token
                self.market.trade(token, self.next_price(w, quotes[token].last))
            made += count
        return made

    def burst(self, trades: int) -> int:
        """Make `trades` trades round-robin across the walked instruments (benchmarks)."""
        quotes, walkers = self.market.quotes, self._walkers
        for n in range(trades):
            w = walkers[n % len(walkers)]
            token = w.instrument.token
            self.market.trade(token, self.next_price(w, quotes[token].last))
        return trades

    async def run(self, interval: float = 0.05) -> None:
        """Walk in real time until cancelled."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            self.step(now - last)
            last = now


class ReplayError(ValueError):
    """A bad row in a replay file; the message names the line and the field."""

    def __init__(self, line: int, field: str, problem: str) -> None:
        super().__init__(f"replay line {line}, field {field}: {problem}")
        self.line, self.field = line, field


@dataclass(frozen=True, slots=True)
class ReplayRow:
    """One trade to replay."""

    at: float  # epoch seconds
    token: int
    price: int  # wire units
    volume: int | None = None
    line: int = field(default=0, compare=False)


def _parse_time(text: str, line: int) -> float:
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ReplayError(line, "timestamp", f"{text!r} is not a finite time")
        return seconds
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReplayError(
            line, "timestamp", f"{text!r} is neither epoch seconds nor an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:  # Kite's own timestamps are IST wall-clock times
        moment = moment.replace(tzinfo=IST)
    return moment.timestamp()


def _parse_row(cells: list[str], line: int, universe: Universe) -> ReplayRow:
    if len(cells) not in (3, 4):
        raise ReplayError(line, "row", f"expected 3 or 4 fields, found {len(cells)}")
    at = _parse_time(cells[0].strip(), line)
    try:
        token = int(cells[1].strip())
    except ValueError:
        raise ReplayError(line, "token", f"{cells[1]!r} is not an integer") from None
    instrument = universe.get(token)
    if instrument is None:
        raise ReplayError(line, "token", f"{token} is not in the simulator's universe")
    try:
        value = Decimal(cells[2].strip())
    except InvalidOperation:
        raise ReplayError(line, "ltp", f"{cells[2]!r} is not a number") from None
    # Bounded before multiplying: 1e999999999 * divisor overflows Decimal's context.
    if value.is_finite() and (value > MAX_WIRE or value * instrument.divisor > MAX_WIRE):
        raise ReplayError(line, "ltp", f"{cells[2]!r} is beyond the largest wire price")
    units = value * instrument.divisor if value.is_finite() else Decimal(-1)
    if units <= 0 or units != units.to_integral_value():
        raise ReplayError(line, "ltp", f"{cells[2]!r} is not a positive price in paise")
    volume = None
    if len(cells) == 4 and cells[3].strip():
        try:
            volume = int(cells[3].strip())
        except ValueError:
            raise ReplayError(line, "volume", f"{cells[3]!r} is not an integer") from None
        if not 0 <= volume <= MAX_WIRE:
            raise ReplayError(line, "volume", f"{volume} is not in 0..{MAX_WIRE}")
    return ReplayRow(at, token, int(units), volume, line)


def parse_replay(text: str, universe: Universe) -> list[ReplayRow]:
    """Rows of `timestamp,token,ltp[,volume]`; an optional header line is skipped."""
    rows: list[ReplayRow] = []
    for line, cells in enumerate(csv.reader(text.splitlines()), start=1):
        if not cells or not "".join(cells).strip() or cells[0].lstrip().startswith("#"):
            continue
        if line == 1 and cells[0].strip().lower() == "timestamp":
            continue
        row = _parse_row(cells, line, universe)
        if rows and row.at < rows[-1].at:
            raise ReplayError(line, "timestamp", "goes back in time from the previous row")
        rows.append(row)
    return rows


def load_replay(path: Path, universe: Universe) -> list[ReplayRow]:
    """Read and check a replay file before anything is served."""
    return parse_replay(path.read_text(encoding="utf-8"), universe)


class Replay:
    """Plays rows into the market at their recorded pace (scaled by `speed`)."""

    def __init__(self, market: Market, rows: list[ReplayRow], *, speed: float = 1.0) -> None:
        self.market, self.rows, self.speed = market, rows, speed
        self.played = 0

    async def run(self) -> None:
        """Replay every row once, keeping the original gaps between them."""
        if not self.rows:
            return
        start, first = time.monotonic(), self.rows[0].at
        for row in self.rows:
            wait = (row.at - first) / self.speed - (time.monotonic() - start)
            if wait > 0:
                await asyncio.sleep(wait)
            self.market.trade(row.token, row.price, volume=row.volume, at=row.at)
            self.played += 1
