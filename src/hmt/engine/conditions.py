"""What v2's conditions need the engine to remember: day ranges, blind spots, dormant triggers.

- `DayRanges`: each watched instrument's day high and low as last seen (from
  LTPs, quote/full ticks' OHLC, or the quote API), per IST day, with the set
  changed since the last save.
- `BlindSpot`: an instrument's range when the engine went blind (the ticker
  dropped or stalled, or the engine restarted), kept until the first look at
  the instrument afterwards, which is compared with it (docs/engine.md,
  "Missed touches").
- `Dormant`: triggers whose `not_before` is still ahead, in neither book,
  with the next time one of them is due.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from hmt.core.gaps import DayRange
from hmt.core.model import Trigger
from hmt.core.types import TriggerId
from hmt.engine.instruments import IST


def ist_day(now: datetime) -> date:
    """The trading day a day range belongs to: the date in India."""
    return now.astimezone(IST).date()


class DayRanges:
    """The day's high and low per instrument, as this engine has seen them.

    `values` maps a token to a two-item list [high, low], changed in place on
    the tick path (one dictionary look-up and a comparison per tick).
    """

    __slots__ = ("changed", "day", "values")

    def __init__(self) -> None:
        self.values: dict[int, list[int]] = {}
        self.changed: set[int] = set()
        self.day: date | None = None

    def get(self, token: int) -> DayRange | None:
        seen = self.values.get(token)
        return None if seen is None else DayRange(seen[0], seen[1])

    def widen(self, token: int, high: int, low: int) -> None:
        """Take in a high and low (an OHLC): the range only grows."""
        if high <= 0 or low <= 0:  # no trade yet today: the broker sends zeros
            return
        seen = self.values.get(token)
        if seen is None:
            self.values[token] = [high, low]
        elif high > seen[0] or low < seen[1]:
            seen[0], seen[1] = max(seen[0], high), min(seen[1], low)
        else:
            return
        self.changed.add(token)

    def load(self, day: date, stored: Mapping[int, tuple[int, int]]) -> None:
        self.day = day
        self.values = {token: [high, low] for token, (high, low) in stored.items()}
        self.changed = set()

    def roll(self, day: date) -> bool:
        """A new day forgets yesterday's ranges; True if it did."""
        if self.day == day:
            return False
        self.day, self.values, self.changed = day, {}, set()
        return True

    def take_changed(self) -> dict[int, tuple[int, int]]:
        """The ranges changed since the last call, to save."""
        changed, self.changed = self.changed, set()
        values = self.values
        return {token: (values[token][0], values[token][1]) for token in changed if token in values}

    def forget(self, tokens: Iterable[int]) -> None:
        for token in tokens:
            self.values.pop(token, None)


@dataclass(slots=True)
class BlindSpot:
    """One instrument's range when the engine went blind, and why it did."""

    before: DayRange
    kind: str  # "reconnect", "stall" or "restart"
    since: datetime  # when it was noticed (a restart: the engine's start)
    reason: str
    # Armed while blind: whether the crossing came before or after it is unknown, and
    # a day high set before a trigger was armed is not a missed touch.
    armed_during: set[TriggerId] = field(default_factory=set)

    def describe(self, now: datetime) -> dict[str, str]:
        return {
            "kind": self.kind,
            "since": self.since.isoformat(),
            "until": now.isoformat(),
            "reason": self.reason,
        }


class Dormant:
    """Triggers waiting for their `not_before`, in neither book."""

    __slots__ = ("_due", "_triggers")

    def __init__(self) -> None:
        self._triggers: dict[TriggerId, Trigger] = {}
        self._due: list[tuple[datetime, TriggerId]] = []

    def __len__(self) -> int:
        return len(self._triggers)

    def add(self, trigger: Trigger) -> None:
        assert trigger.not_before is not None
        self._triggers[trigger.id] = trigger
        heapq.heappush(self._due, (trigger.not_before, trigger.id))

    def remove(self, trigger_id: TriggerId) -> Trigger | None:
        return self._triggers.pop(trigger_id, None)

    def __iter__(self) -> Iterator[Trigger]:
        return iter(list(self._triggers.values()))

    def __contains__(self, trigger_id: object) -> bool:
        return trigger_id in self._triggers

    def next_at(self) -> datetime | None:
        due = self._due
        while due and self._stale(due[0]):
            heapq.heappop(due)
        return due[0][0] if due else None

    def due(self, now: datetime) -> list[TriggerId]:
        """The triggers whose `not_before` has come, taken out."""
        ready: list[TriggerId] = []
        due = self._due
        while due and due[0][0] <= now:
            entry = heapq.heappop(due)
            if not self._stale(entry):
                del self._triggers[entry[1]]
                ready.append(entry[1])
        return ready

    def _stale(self, entry: tuple[datetime, TriggerId]) -> bool:
        trigger = self._triggers.get(entry[1])
        return trigger is None or trigger.not_before != entry[0]
