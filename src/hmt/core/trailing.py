"""The trailing stop as a value: where its stop sits after each reference price.

A SELL stop protects a long: its stop is the best (highest) reference seen
since activation less the offset. A BUY stop protects a short: the lowest
reference plus the offset. It fires as a stop: SELL when the LTP is at or
below the stop, BUY when at or above (docs/triggers.md, "Trailing stops").

Everything is an integer in wire units of the watched instrument. Rounding is
to the tick size and always away from the market: the stop is never placed
tighter than the offset asks (a SELL stop rounds down, a BUY stop up), and a
basis-point distance is rounded up. This module is the rule's definition,
one stop at a time; `hmt.core.trailbook` keeps many of them so that a new
high costs amortized O(log n), and is checked against this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple

from hmt.core.types import Direction, Side

BPS_PER_UNIT: Final = 10_000


class Reference(StrEnum):
    """Which price moves a trail's best (its stop always fires on the LTP).

    BID is the best bid, for a SELL stop only (what a long could sell at);
    ASK the best offer, for a BUY stop only. Only a full-mode tick carries
    them (its depth); every other tick moves such a trail by its LTP instead
    (docs/triggers.md, "Trailing stops").
    """

    LTP = "ltp"
    BID = "bid"
    ASK = "ask"


class Offset(StrEnum):
    """What a trail's offset counts."""

    PRICE = "price"  # wire units
    BPS = "bps"  # basis points of the best reference (1 bps = 0.01 %)
    TICKS = "ticks"  # ticks of the watched instrument


@dataclass(frozen=True, slots=True)
class Trail:
    """A trailing stop's terms (`LegSpec.trail`).

    `side` is the order's side: SELL trails below the best price, BUY above
    the lowest. `tick` is the watched instrument's tick size in wire units (1
    for an index, whose levels have no grid). `activation`: no trailing (and
    no stop) before the reference reaches it (SELL at or above, BUY at or
    below); None starts trailing at the first reference seen. `step`: the stop
    moves only in whole steps (a multiple of the tick); None moves it by any
    whole tick. `reference`: the price that moves the best (`Reference`).
    """

    side: Side
    kind: Offset
    offset: int
    tick: int
    activation: int | None = None
    step: int | None = None
    reference: Reference = Reference.LTP

    def __post_init__(self) -> None:
        if self.tick < 1:
            raise ValueError(f"trail.tick must be at least 1 wire unit, not {self.tick}")
        if self.offset < 1:
            raise ValueError(f"trail.offset must be at least 1, not {self.offset}")
        if self.kind is Offset.BPS and self.offset >= BPS_PER_UNIT:
            raise ValueError(f"trail.offset in bps must be below 10000 (100%), not {self.offset}")
        if self.activation is not None and self.activation < 1:
            raise ValueError(f"trail.activation must be a positive price, not {self.activation}")
        if self.step is not None and (self.step < self.tick or self.step % self.tick):
            raise ValueError(
                f"trail.step must be a whole number of ticks ({self.tick}), not {self.step}"
            )
        wrong = Reference.ASK if self.side is Side.SELL else Reference.BID
        if self.reference is wrong:
            raise ValueError(
                f"trail.reference {self.reference.value} does not fit a {self.side.value} stop "
                f"(a SELL stop trails the bid, a BUY stop the ask)"
            )

    @property
    def direction(self) -> Direction:
        """The way the stop fires: a SELL stop on a fall, a BUY stop on a rise."""
        return Direction.AT_OR_BELOW if self.side is Side.SELL else Direction.AT_OR_ABOVE

    def distance(self, best: int) -> int:
        """How far from `best` the stop sits before tick rounding (never less than asked)."""
        if self.kind is Offset.PRICE:
            return self.offset
        if self.kind is Offset.TICKS:
            return self.offset * self.tick
        return -(-abs(best) * self.offset // BPS_PER_UNIT)

    def level(self, best: int) -> int:
        """Where the stop would sit for `best`, on the tick grid, away from the market."""
        tick = self.tick
        if self.side is Side.SELL:
            raw = best - self.distance(best)
            return raw - raw % tick
        raw = best + self.distance(best)
        return raw + (-raw) % tick

    def touched(self, ref: int) -> bool:
        """Whether `ref` activates the trail."""
        if self.activation is None:
            return True
        return ref >= self.activation if self.side is Side.SELL else ref <= self.activation

    def start(self) -> TrailState:
        """The state of a trail just armed: not yet active, no stop."""
        return _IDLE

    def advance(self, state: TrailState, ref: int) -> TrailState:
        """The state after one more reference price (the same state if nothing moved)."""
        if state.best is None or state.stop is None:
            if not self.touched(ref):
                return state
            return TrailState(ref, self.level(ref))
        sell = self.side is Side.SELL
        if (ref <= state.best) if sell else (ref >= state.best):
            return state
        level = self.level(ref)
        stop = state.stop
        gain = level - stop if sell else stop - level
        if self.step is not None:
            gain -= gain % self.step
        if gain <= 0:
            return TrailState(ref, stop)
        return TrailState(ref, stop + gain if sell else stop - gain)

    def fires(self, state: TrailState, ltp: int) -> bool:
        """Whether a stop in `state` fires at `ltp` (never before activation)."""
        stop = state.stop
        if stop is None:
            return False
        return ltp <= stop if self.side is Side.SELL else ltp >= stop


class TrailState(NamedTuple):
    """Where a trail stands: the best reference since activation and the stop.

    Both None until activation. The stop only tightens: a SELL stop only rises,
    a BUY stop only falls. This is what the engine persists and resumes from.
    """

    best: int | None = None
    stop: int | None = None


_IDLE: Final = TrailState()


def advance(trail: Trail, state: TrailState, ref: int) -> TrailState:
    """`trail.advance(state, ref)`: the state after one more reference price."""
    return trail.advance(state, ref)


def fires(trail: Trail, state: TrailState, ltp: int) -> bool:
    """`trail.fires(state, ltp)`: whether the stop fires at `ltp`."""
    return trail.fires(state, ltp)
