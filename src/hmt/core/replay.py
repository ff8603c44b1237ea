"""The backtest's runner: the engine's own books over a time-ordered price path.

`Replay` holds the very structures the engine's tick path uses (docs/engine.md):
`TriggerBook` for price and trailing legs, `TimeBook` for time legs, triggers
waiting for `not_before`, and `rules.orders_for` for what a fired leg places.
It is fed one price at a time (`tick`) or one candle at a time (`candle`,
walked by `candles.path`), in time order, and never reads a clock: the time is
each price's own. Fired legs place their orders into the fill model
(`fills.Working`); fills are charged by `charges`. Nothing here does I/O: the
adapter (`hmt.backtest`) reads files and writes the report.

What the engine does and a replay does not: there is no ticker to lose, so no
blind spots and no missed touches (`on_gap` never applies); a fired leg's
orders never fail at the broker. What a replay adds: a stop and a target of
one oco both inside one candle's range cannot be ordered by the candle, so the
stop is taken to fire first and the fire is flagged `ambiguous`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Final

from hmt.core.book import TriggerBook
from hmt.core.calendar import IST
from hmt.core.candles import Candle, path
from hmt.core.charges import NONE, Charges, charged_as, charges, schedule_on
from hmt.core.fills import Working, crossing
from hmt.core.gaps import DayRange
from hmt.core.instruments import Instrument
from hmt.core.lifecycle import Status
from hmt.core.model import Fired, OrderIntent, Trigger
from hmt.core.rules import direction, holds, orders_for
from hmt.core.timebook import TimeBook
from hmt.core.types import Cause, Leg, Side, TriggerId

# Later than any price: far enough from datetime.max to move to any zone.
_NEVER: Final = datetime(9000, 1, 1, tzinfo=UTC)
# Marks are kept in 1/SCALE rupee: every Kite price divisor (100, 10^4, 10^7) divides it,
# so a position in any instrument marks in integers.
SCALE: Final = 10**7
_MINUTE: Final = timedelta(minutes=1)


@dataclass(slots=True)
class _Position:
    """One fired trigger's fills on one instrument, for marking: value = qs * last - cs."""

    outcome: Outcome
    qs: int = 0  # signed quantity x SCALE / divisor
    cs: int = 0  # signed quantity x fill price x SCALE / divisor
    part: int = 0  # its value at the last mark


@dataclass(slots=True)
class OrderResult:
    """One order a fired leg placed, and what became of it."""

    intent: OrderIntent
    placed_at: datetime
    status: str = "open"  # open, filled, cancelled (a DAY order at the day's end)
    filled_at: datetime | None = None
    fill_price: int | None = None  # wire units of the order's instrument
    charges: Charges | None = None  # None: no schedule for its exchange
    note: str = ""

    @property
    def signed_quantity(self) -> int:
        return self.intent.quantity if self.intent.side is Side.BUY else -self.intent.quantity


@dataclass(slots=True)
class Outcome:
    """What one trigger did in the replay."""

    trigger: Trigger
    status: str  # fired, expired, active (never fired), paused, dormant (not_before never came)
    leg: Leg | None = None
    cause: Cause | None = None
    fired_at: datetime | None = None
    ltp: int | None = None  # the watched price that fired it (a time leg: the last one seen)
    price: int | None = None  # where the path crossed its level
    ambiguous: bool = False
    orders: list[OrderResult] = field(default_factory=list)
    expired_at: datetime | None = None
    # Marks in 1/SCALE rupee (integers on the tick path; `pnl`, `mae`, `mfe` in rupees).
    value: int = 0  # marked to the last price, before charges
    low: int = 0  # the worst mark after the first fill (<= 0)
    high: int = 0  # the best (>= 0)

    @property
    def pnl(self) -> Decimal:
        return Decimal(self.value) / SCALE

    @property
    def mae(self) -> Decimal:
        return Decimal(self.low) / SCALE

    @property
    def mfe(self) -> Decimal:
        return Decimal(self.high) / SCALE

    @property
    def charges(self) -> Charges:
        total = NONE
        for order in self.orders:
            if order.charges is not None:
                total = total + order.charges
        return total


@dataclass(slots=True)
class Result:
    outcomes: list[Outcome]
    equity: list[tuple[datetime, Decimal]]  # net P&L after charges, at most one point a minute
    last: dict[int, int]  # each instrument's last price
    prices: int  # how many prices were replayed
    first: datetime | None
    final: datetime | None


class Replay:
    """Triggers replayed over prices in time order (see the module's docstring)."""

    def __init__(
        self,
        triggers: Iterable[Trigger],
        instruments: Mapping[int, Instrument],
        *,
        kinds: Mapping[int, str] | None = None,
        slippage_ticks: int = 0,
    ) -> None:
        if slippage_ticks < 0:
            raise ValueError("slippage must be zero or more ticks")
        self.book = TriggerBook()
        self.timebook = TimeBook()
        self._instruments = instruments
        self._kinds = kinds or {}
        self._slippage = slippage_ticks
        self._outcomes: dict[TriggerId, Outcome] = {}
        self._dormant: list[tuple[datetime, int, Trigger]] = []
        self._expiry: list[tuple[datetime, TriggerId]] = []
        self._working: dict[int, list[Working]] = {}
        self._open: list[tuple[Working, OrderResult]] = []
        self._held: dict[int, list[_Position]] = {}  # instrument -> positions in it
        self._positions: dict[tuple[TriggerId, int], _Position] = {}
        self._last: dict[int, int] = {}
        # (minute, marks in 1/SCALE rupee, charges so far): at most one point a minute.
        self._equity: list[tuple[datetime, int, Decimal]] = []
        self._minute_end = _NEVER
        self._marks = 0
        self._charged = Decimal(0)
        self._day_end = _NEVER
        self._wake = _NEVER
        self._prices = 0
        self._first: datetime | None = None
        self._final: datetime | None = None
        self._zone: tzinfo | None = None  # of the prices seen last
        for n, trigger in enumerate(triggers):
            self._outcomes[trigger.id] = Outcome(trigger, "active")
            if trigger.status is Status.PAUSED:
                self._outcomes[trigger.id].status = "paused"
            elif trigger.status is not Status.ACTIVE:
                self._outcomes[trigger.id].status = trigger.status.value
            elif trigger.not_before is not None:
                self._outcomes[trigger.id].status = "dormant"
                heapq.heappush(self._dormant, (trigger.not_before, n, trigger))
            else:
                self._arm(trigger)
        self._rewake()

    # --- feeding ----------------------------------------------------------------------

    def tick(self, token: int, at: datetime, price: int, *, smooth: bool = False) -> None:
        """One price of `token` at `at` (not before the previous one's time).

        `smooth`: the price moved here continuously from the last one (inside a
        candle), so a level between them was crossed at the level itself.
        """
        if at.tzinfo is not self._zone:
            self._rezone(at)
        self._final = at
        self._prices += 1
        if at >= self._wake:
            self._advance(at)
        last = self._last
        prev = last.get(token)
        last[token] = price
        if token in self._working:
            self._work(token, at, prev, price, smooth)
        fired = self.book.on_tick(token, price)
        if fired:
            for leg in fired:
                self._fired(leg, at, prev, smooth)
        if token in self._held:
            self._mark(token, at)

    def ticks(self, prices: Iterable[tuple[int, datetime, int]]) -> int:
        """Replay (token, time, price) in order, a recorded tick stream; how many.

        `tick` inlined: the loop a long replay spends its time in.
        """
        count = 0
        on_tick, last, working, held = self.book.on_tick, self._last, self._working, self._held
        at: datetime | None = None
        for token, at, price in prices:
            if at.tzinfo is not self._zone:
                self._rezone(at)
            if at >= self._wake:
                self._advance(at)
            prev = last.get(token)
            last[token] = price
            if working and token in working:
                self._work(token, at, prev, price, False)
            fired = on_tick(token, price)
            if fired:
                for leg in fired:
                    self._fired(leg, at, prev, False)
            if token in held:
                self._mark(token, at)
            count += 1
        self._prices += count
        if at is not None:
            self._final = at
        return count

    def _rezone(self, at: datetime) -> None:
        """Prices in another zone than before: the wake-up time follows them, since an
        aware comparison across two zones costs some 30 times one within a zone."""
        if self._first is None:
            self._first = at
        self._zone = at.tzinfo
        self._wake = self._wake.astimezone(at.tzinfo)

    def candle(self, token: int, candle: Candle, interval: timedelta) -> None:
        """One candle of `token`, walked open -> nearer extreme -> other -> close.

        The path's four points are placed at the candle's start and a quarter,
        half and three quarters of `interval` into it.
        """
        if candle.at >= self._wake:
            self._advance(candle.at)
        forced = self._ambiguous(token, candle)
        prev: int | None = None
        for k, point in enumerate(path(candle)):
            at = candle.at + interval * k / 4
            self.tick(token, at, point, smooth=k > 0)
            for trigger in list(forced):
                if trigger.expires_at is not None and at >= trigger.expires_at:
                    forced.remove(trigger)  # it expired before the path reached its stop
                    self._outcomes[trigger.id].status = "expired"
                    self._outcomes[trigger.id].expired_at = trigger.expires_at
                    continue
                way = direction(trigger, Leg.FIRST)
                if holds(way, trigger.trigger_price_1, point):
                    forced.remove(trigger)
                    crossed = crossing(way, trigger.trigger_price_1, prev, point, True)
                    fired = Fired(trigger, Leg.FIRST, point)
                    self._fired(fired, at, prev, True, price=crossed, ambiguous=True)
            prev = point

    def result(self) -> Result:
        """Where everything stands after the last price (orders still open stay open)."""
        return Result(
            outcomes=list(self._outcomes.values()),
            equity=[(at, Decimal(marks) / SCALE - paid) for at, marks, paid in self._equity],
            last=dict(self._last),
            prices=self._prices,
            first=self._first,
            final=self._final,
        )

    # --- the books ----------------------------------------------------------------------

    def _arm(self, trigger: Trigger) -> None:
        self._outcomes[trigger.id].status = "active"
        self.book.add(trigger)
        if trigger.leg_specs and any(trigger.fire_at(leg) is not None for leg in trigger.legs):
            self.timebook.add(trigger)
        if trigger.expires_at is not None:
            heapq.heappush(self._expiry, (trigger.expires_at, trigger.id))

    def _rewake(self) -> None:
        due = self._next_due()
        wake = _NEVER if due is None else due
        self._wake = wake if self._zone is None else wake.astimezone(self._zone)

    def _advance(self, now: datetime) -> None:
        """Everything due by `now`, in time order, each at its own time: a trigger armed
        at its not_before, expired at its expires_at, a time leg fired at its time (at
        the last price before it, as the engine's timer would), DAY orders cancelled at
        the day's end. At one instant: arming, then expiry, then time legs."""
        while True:
            due = self._next_due()
            if due is None or due > now:
                break
            if self._dormant and self._dormant[0][0] == due:
                self._arm(heapq.heappop(self._dormant)[2])
            elif self._expiry and self._expiry[0][0] == due:
                at, trigger_id = heapq.heappop(self._expiry)
                outcome = self._outcomes[trigger_id]
                if outcome.status == "active" and self.book.remove(trigger_id) is not None:
                    self.timebook.remove(trigger_id)
                    outcome.status, outcome.expired_at = "expired", at
            elif self.timebook.next_at() == due:
                for fired in self.timebook.due(due):
                    self.book.remove(fired.trigger.id)
                    last = self._last.get(fired.trigger.watched) or 0
                    leg = Fired(fired.trigger, fired.leg, last, Cause.TIME)
                    self._fired(leg, due, None, False)
            else:
                self._cancel_day_orders()
        self._rewake()

    def _next_due(self) -> datetime | None:
        times = []
        if self._dormant:
            times.append(self._dormant[0][0])
        if self._expiry:
            times.append(self._expiry[0][0])
        timed = self.timebook.next_at()
        if timed is not None:
            times.append(timed)
        if self._day_end != _NEVER:
            times.append(self._day_end)
        return min(times) if times else None

    def _ambiguous(self, token: int, candle: Candle) -> list[Trigger]:
        """Ocos whose two price legs both lie inside the candle beyond its open: taken out
        of the book, to fire their stop (the first leg) where the path crosses it."""
        if not self.book.holds(token):
            return []
        legs: dict[TriggerId, list[Leg]] = {}
        found: dict[TriggerId, Trigger] = {}
        crossed = self.book.crossed(
            token, DayRange.at(candle.open), DayRange(candle.high, candle.low)
        )
        for trigger, leg in crossed:
            legs.setdefault(trigger.id, []).append(leg)
            found[trigger.id] = trigger
        forced = []
        for trigger_id, both in legs.items():
            if len(both) == 2:
                self.book.remove(trigger_id)
                self.timebook.remove(trigger_id)
                forced.append(found[trigger_id])
        return forced

    # --- orders and fills ----------------------------------------------------------------

    def _fired(
        self,
        fired: Fired,
        at: datetime,
        prev: int | None,
        smooth: bool,
        *,
        price: int | None = None,
        ambiguous: bool = False,
    ) -> None:
        trigger, leg = fired.trigger, fired.leg
        if trigger.leg_specs:
            self.timebook.remove(trigger.id)
        if price is None and fired.cause is Cause.PRICE:
            if trigger.trail(leg) is None:
                threshold = trigger.threshold(leg)
                price = crossing(direction(trigger, leg), threshold, prev, fired.ltp, smooth)
            else:
                price = fired.ltp  # a trailing stop's level left the book with it
        outcome = self._outcomes[trigger.id]
        outcome.status, outcome.leg, outcome.cause = "fired", leg, fired.cause
        outcome.fired_at, outcome.ambiguous = at, ambiguous
        outcome.ltp = fired.ltp or None
        outcome.price = price
        count = len(trigger.orders(leg))
        tags = [f"{trigger.id}:{int(leg)}:{k}" for k in range(count)]
        for intent in orders_for(trigger, leg, tags):
            self._place(outcome, intent, at, price)
        self._rewake()

    def _place(
        self, outcome: Outcome, intent: OrderIntent, at: datetime, price: int | None
    ) -> None:
        token = intent.instrument_token
        instrument = self._instruments.get(token)
        tick_size = instrument.tick_size if instrument is not None else 1
        work = Working(intent, tick_size, self._slippage)
        order = OrderResult(intent, at)
        outcome.orders.append(order)
        same = token == outcome.trigger.watched and price is not None
        ref = price if same else self._last.get(token)
        if ref is not None:
            filled = work.fill(None, ref, False)
            if filled is not None:
                self._filled(outcome, order, at, filled)
                return
        else:
            order.note = "no price of its instrument yet: waits for the first one"
        self._working.setdefault(token, []).append(work)
        self._open.append((work, order))
        if self._day_end == _NEVER:
            day = at.astimezone(IST).date() + timedelta(days=1)
            self._day_end = datetime(day.year, day.month, day.day, tzinfo=IST)

    def _work(self, token: int, at: datetime, prev: int | None, price: int, smooth: bool) -> None:
        still: list[Working] = []
        for work in self._working.pop(token):
            filled = work.fill(prev, price, smooth)
            if filled is None:
                still.append(work)
                continue
            for n, (open_work, order) in enumerate(self._open):
                if open_work is work:
                    del self._open[n]
                    self._filled(self._outcomes[order.intent.trigger_id], order, at, filled)
                    break
        if still:
            self._working[token] = still

    def _cancel_day_orders(self) -> None:
        for _, order in self._open:
            order.status, order.note = "cancelled", "a DAY order not filled by the day's end"
        self._open.clear()
        self._working.clear()
        self._day_end = _NEVER

    def _filled(self, outcome: Outcome, order: OrderResult, at: datetime, price: int) -> None:
        intent = order.intent
        order.status, order.filled_at, order.fill_price = "filled", at, price
        kind = self._kinds.get(intent.instrument_token, "EQ")
        segment = charged_as(intent.exchange, intent.product, kind)
        if segment is None:
            order.note = f"no charges schedule for {intent.exchange.value}: charged nothing"
        else:
            turnover = Decimal(price) * intent.quantity / intent.price_divisor
            day = at.astimezone(IST).date()
            order.charges = charges(
                schedule_on(day), segment, intent.exchange, intent.side, turnover
            )
            self._charged += order.charges.total
        token = intent.instrument_token
        position = self._positions.get((outcome.trigger.id, token))
        if position is None:
            position = self._positions[(outcome.trigger.id, token)] = _Position(outcome)
            self._held.setdefault(token, []).append(position)
        scaled = order.signed_quantity * (SCALE // intent.price_divisor)
        position.qs += scaled
        position.cs += scaled * price
        self._minute_end = at  # a fill always gets its own point
        self._mark(token, at)

    def _mark(self, token: int, at: datetime) -> None:
        """Mark every position in `token` to its last price; sample the equity."""
        last = self._last[token]
        moved = 0
        for position in self._held[token]:
            value = position.qs * last - position.cs
            change = value - position.part
            if change:
                position.part = value
                outcome = position.outcome
                outcome.value += change
                if outcome.value < outcome.low:
                    outcome.low = outcome.value
                elif outcome.value > outcome.high:
                    outcome.high = outcome.value
                moved += change
        self._marks += moved
        if at < self._minute_end:
            self._equity[-1] = (self._equity[-1][0], self._marks, self._charged)
            return
        minute = at.replace(second=0, microsecond=0)
        if self._equity and self._equity[-1][0] == minute:
            self._equity[-1] = (minute, self._marks, self._charged)
        else:
            self._equity.append((minute, self._marks, self._charged))
        self._minute_end = minute + _MINUTE
