"""The time book: the legs that fire at a time, soonest first.

A time leg (`LegSpec.at`) has no price, so it is not in the `TriggerBook`; it
waits here. `due(now)` hands back every leg whose time has come and removes
its trigger first, both legs of an oco at once (the other leg may be a price
leg: the caller takes the trigger out of its `TriggerBook` as for any fire).
The clock is the caller's: `now` is an argument, `next_at` says when to ask.

A heap of (time, sequence, leg) with lazy deletion: `remove` forgets the
trigger and the heap drops its entries when they surface, so removal is
O(1) and `due` is O(k log n) for k legs due. The heap is compacted when
dead entries outnumber live ones.
"""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import Final

from hmt.core.errors import DuplicateTrigger
from hmt.core.model import Fired, Trigger
from hmt.core.types import Cause, Leg, TriggerId

# Below this many heap entries, dead ones are not worth a compaction.
_COMPACT_AT: Final = 64


class TimeBook:
    """Active triggers with at least one time leg, by the time each leg fires."""

    __slots__ = ("_by_id", "_by_seq", "_heap", "_next_seq")

    def __init__(self) -> None:
        # (when, seq, leg): seq orders equal times by arrival and names the
        # trigger's registration, so an entry left by a removed (or removed
        # and added again) trigger is recognised as dead.
        self._heap: list[tuple[datetime, int, Leg]] = []
        self._by_id: dict[TriggerId, int] = {}
        self._by_seq: dict[int, Trigger] = {}
        self._next_seq = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, trigger_id: object) -> bool:
        return trigger_id in self._by_id

    def get(self, trigger_id: TriggerId) -> Trigger | None:
        seq = self._by_id.get(trigger_id)
        return None if seq is None else self._by_seq[seq]

    def add(self, trigger: Trigger) -> bool:
        """Hold `trigger`'s time legs; False (and nothing held) if it has none.

        `DuplicateTrigger` if its id is here already; `ValueError` for a time
        without a zone (it could not be compared with the clock). Either
        leaves the book as it was.
        """
        legs = [(leg, at) for leg in trigger.legs if (at := trigger.fire_at(leg)) is not None]
        if not legs:
            return False
        if trigger.id in self._by_id:
            raise DuplicateTrigger(f"trigger {trigger.id} is already in the time book")
        for leg, at in legs:
            if at.utcoffset() is None:
                raise ValueError(
                    f"trigger {trigger.id}: legs[{leg - 1}].condition.at has no time zone"
                )
        seq = self._next_seq
        self._next_seq = seq + 1
        self._by_id[trigger.id] = seq
        self._by_seq[seq] = trigger
        for leg, at in legs:
            heapq.heappush(self._heap, (at, seq, leg))
        return True

    def remove(self, trigger_id: TriggerId) -> Trigger | None:
        """Forget a trigger; None if it was not here. Its heap entries die lazily."""
        seq = self._by_id.pop(trigger_id, None)
        if seq is None:
            return None
        trigger = self._by_seq.pop(seq)
        if len(self._heap) > _COMPACT_AT and len(self._heap) > 4 * len(self._by_seq):
            self._compact()
        return trigger

    def next_at(self) -> datetime | None:
        """When the soonest leg here fires; None when nothing is held."""
        heap, by_seq = self._heap, self._by_seq
        while heap and heap[0][1] not in by_seq:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def due(self, now: datetime) -> tuple[Fired, ...]:
        """Every leg whose time is at or before `now`, its trigger removed before this returns.

        Soonest first (equal times: in the order added, first leg first); one
        `Fired` per trigger, cause TIME, ltp 0 (no price fired it). An oco's
        other leg goes with it, whatever its kind: a time leg dies here, a
        price leg is the caller's to take out of its `TriggerBook`.
        """
        heap, by_seq, by_id = self._heap, self._by_seq, self._by_id
        fired: list[Fired] = []
        while heap and heap[0][0] <= now:
            _, seq, leg = heapq.heappop(heap)
            trigger = by_seq.pop(seq, None)
            if trigger is None:
                continue  # removed, or the other leg of an oco that fired
            del by_id[trigger.id]
            fired.append(Fired(trigger, leg, 0, Cause.TIME))
        return tuple(fired)

    def _compact(self) -> None:
        by_seq = self._by_seq
        self._heap = [entry for entry in self._heap if entry[1] in by_seq]
        heapq.heapify(self._heap)
