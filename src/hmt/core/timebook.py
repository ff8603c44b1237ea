"""STUB until v2-core lands: the time book and DayRange, per the v2 contract."""

from __future__ import annotations

import heapq
from datetime import datetime
from hmt.core.model import Fired, Trigger
from hmt.core.types import Cause, Leg, TriggerId


class TimeBook:
    def __init__(self) -> None:
        self._by_id: dict[TriggerId, Trigger] = {}
        self._heap: list[tuple[datetime, str, int]] = []

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, trigger: Trigger) -> None:
        self._by_id[trigger.id] = trigger
        for leg in trigger.legs:
            at = trigger.fire_at(leg)
            if at is not None:
                heapq.heappush(self._heap, (at, trigger.id, int(leg)))

    def remove(self, trigger_id: TriggerId) -> Trigger | None:
        return self._by_id.pop(trigger_id, None)

    def next_at(self) -> datetime | None:
        while self._heap and self._heap[0][1] not in self._by_id:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def due(self, now: datetime) -> tuple[Fired, ...]:
        out = []
        while self._heap and self._heap[0][0] <= now:
            at, tid, leg = heapq.heappop(self._heap)
            trigger = self._by_id.pop(TriggerId(tid), None)
            if trigger is not None and trigger.fire_at(Leg(leg)) == at:
                out.append(Fired(trigger, Leg(leg), 0, Cause.TIME))
        return tuple(out)
