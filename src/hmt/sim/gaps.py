"""Scripted gaps in what a ticker client sees: a price jump, and a feed outage.

A jump is one trade at a far price: the next tick a client sees skips every
price in between. An outage blacks the ticker out (nothing is sent, not even
heartbeats, and the trades made meanwhile are never sent later: a real feed
outage loses them) while the instrument trades to a level and back. The
market itself keeps trading, so the day's high and low record the excursion
and resting SL/SL-M orders at the "exchange" trigger on it; after the outage,
quote/full ticks and GET /quote/ohlc show it. The last trade of the path (at
the return price) is made just after the outage ends, so subscribers get one
tick that carries the new high and low.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hmt.sim.prices import Market, Quote, RandomWalk, parse_price
from hmt.sim.ticker import Ticker

SOCKET_CHOICES = ("keep", "drop")
MAX_OUTAGE_SECONDS = 3600.0


class GapError(ValueError):
    """A gap that cannot be scripted; the message names the field."""


@dataclass(slots=True)
class Outage:
    """One scripted outage and what the market did during it."""

    token: int
    level: int  # wire units: the far point of the excursion
    back: int  # wire units: where the price ends, in the first tick after the outage
    seconds: float
    steps: int
    socket: str  # keep: connections stay up and silent; drop: cut, upgrades refused
    path: list[int] = field(default_factory=list)
    trades: int = 0
    done: bool = False

    def to_json(self, market: Market) -> dict[str, Any]:
        q = market.quotes[self.token]
        d = q.instrument.divisor
        return {
            "token": self.token,
            "level": str(Decimal(self.level) / d),
            "back": str(Decimal(self.back) / d),
            "seconds": self.seconds,
            "steps": self.steps,
            "socket": self.socket,
            "trades": self.trades,
            "done": self.done,
            "high": str(Decimal(q.high) / d),
            "low": str(Decimal(q.low) / d),
        }


def excursion(start: int, level: int, back: int, steps: int, tick: int) -> list[int]:
    """`steps` prices on the tick grid: from `start` out to `level`, then to `back`.

    The way out takes half the steps (rounded up) and ends exactly at `level`;
    the rest return and end exactly at `back`.
    """
    out = (steps + 1) // 2
    home = steps - out

    def leg(frm: int, to: int, n: int) -> list[int]:
        return [round((frm + (to - frm) * k / n) / tick) * tick for k in range(1, n + 1)]

    return [max(tick, p) for p in leg(start, level, out) + leg(level, back, home)]


class Gaps:
    """Scripts jumps and outages on the simulator's market and ticker."""

    def __init__(self, market: Market, ticker: Ticker, walk: RandomWalk | None) -> None:
        self.market, self.ticker, self.walk = market, ticker, walk
        self.current: Outage | None = None
        self._task: asyncio.Task[None] | None = None

    def jump(self, token: int, price: str | int | float | Decimal) -> Quote:
        """One trade at `price` now: the next tick is there, with nothing in between."""
        instrument = self.market.universe.get(token)
        if instrument is None:
            raise GapError(f"token: {token} is not in the simulator's universe")
        return self.market.trade(token, parse_price(price, instrument))

    def plan(
        self,
        token: int,
        level: str | int | float | Decimal,
        *,
        seconds: float,
        back: str | int | float | Decimal | None = None,
        steps: int = 10,
        socket: str = "keep",
    ) -> Outage:
        """A checked outage; `back` defaults to the price before it."""
        instrument = self.market.universe.get(token)
        if instrument is None:
            raise GapError(f"token: {token} is not in the simulator's universe")
        if not 0 < seconds <= MAX_OUTAGE_SECONDS:
            raise GapError(f"seconds: above 0 and at most {MAX_OUTAGE_SECONDS:g}")
        if steps < 2:
            raise GapError("steps: at least 2 (out to the level and back)")
        if socket not in SOCKET_CHOICES:
            raise GapError(f"socket: one of {', '.join(SOCKET_CHOICES)}")
        try:
            far = parse_price(level, instrument)
            home = self.market.quotes[token].last if back is None else parse_price(back, instrument)
        except ValueError as exc:
            raise GapError(f"level/back: {exc}") from None
        start = self.market.quotes[token].last
        path = excursion(start, far, home, steps, instrument.tick)
        return Outage(token, far, home, seconds, steps, socket, path)

    def start(self, outage: Outage) -> Outage:
        """Run `outage` in the background (the control API's way); one at a time."""
        if self.active:
            raise GapError("an outage is already running; wait for it to end")
        self.current = outage
        self._task = asyncio.get_running_loop().create_task(self._run(outage))
        return outage

    async def outage(self, outage: Outage) -> Outage:
        """Run `outage` and return when the first tick after it has been made."""
        self.start(outage)
        assert self._task is not None
        await self._task
        return outage

    @property
    def active(self) -> bool:
        return self._task is not None and not self._task.done()

    def cancel(self) -> None:
        """End a running outage now (the feed comes back; the last trade is not made)."""
        if self._task is not None:
            self._task.cancel()
        self.ticker.end_blackout()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.ticker.end_blackout()

    async def _run(self, outage: Outage) -> None:
        held = self.walk.held if self.walk is not None else set()
        held.add(outage.token)  # the walk must not move the scripted instrument
        self.ticker.begin_blackout(drop=outage.socket == "drop")
        try:
            pause = outage.seconds / outage.steps
            *during, last = outage.path
            for price in during:
                await asyncio.sleep(pause)
                self.market.trade(outage.token, price)
                outage.trades += 1
            await asyncio.sleep(pause)
        finally:
            self.ticker.end_blackout()
            held.discard(outage.token)
        self.market.trade(outage.token, last)
        outage.trades += 1
        outage.done = True
