"""Trailing stops in the engine (issue 14): their states written, resumed, and kept across
the book's changes.

The book (`TriggerBook`) moves every trailing stop on the tick path; this
keeps what it must not lose. `flush` writes the states that changed since
the last write (the supervisor calls it every HMT_TRAIL_FLUSH_MS, `stop`
once more); `resume` puts a new book's legs back where they were, from the
states this process last saw, else as last written. A crash loses at most
the moves of the last flush interval, and a resumed stop is exactly a
written one: never looser than the last write (docs/engine.md, "Trailing
stops").

A leg is keyed by (trigger id, leg number) with its terms: a state is only
resumed by a leg whose terms are the same, so an edit of the trail starts
it afresh while any other edit (or a pause and a resume) keeps its stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Protocol

import structlog

from hmt.core.book import TriggerBook
from hmt.core.model import Trigger
from hmt.core.trailing import Trail, TrailState
from hmt.core.types import Leg

log = structlog.get_logger("hmt.engine.trails")

Key = tuple[str, int]  # (trigger id, leg number)
# Moved legs compared per turn of the loop while flushing; distinct trails' spellings kept.
FLUSH_STEP = 2_000
TERMS_KEPT = 65_536


class Written(Protocol):
    """A written state as the store reads it back (`hmt.store.trails.Written`)."""

    @property
    def terms(self) -> str: ...

    @property
    def state(self) -> TrailState: ...


class TrailPort(Protocol):
    """The store's side: `hmt.store.trails.TrailStates` with the terms' spelling."""

    async def read(self, trigger_ids: Iterable[str] | None = None) -> Mapping[Key, Written]: ...

    async def save(self, states: Mapping[Key, tuple[str, TrailState]], now: datetime) -> None: ...

    def terms(self, trigger: Trigger, leg: Leg) -> str: ...


class TrailKeeper:
    """The last written and the last seen state of every trailing leg this engine held."""

    def __init__(self, port: TrailPort | None) -> None:
        self._port = port
        self._written: dict[Key, tuple[str, TrailState]] = {}  # as the store has it
        self._seen: dict[Key, tuple[str, TrailState]] = {}  # taken out of a book since
        self._terms: dict[Trail | None, str] = {}  # the store's spelling of each trail
        self.flushes = 0  # flushes that wrote something
        self.written_states = 0  # states written in all

    @property
    def enabled(self) -> bool:
        return self._port is not None

    async def load(self) -> int:
        """Read every written state (start-up); how many there are."""
        if self._port is None:
            return 0
        stored = await self._port.read()
        self._written = {key: (w.terms, w.state) for key, w in stored.items()}
        return len(stored)

    def capture(self, book: TriggerBook, trigger: Trigger) -> None:
        """Remember the states of `trigger`'s trailing legs before it leaves `book`."""
        if self._port is None or not trigger.leg_specs:
            return
        for leg in trigger.legs:
            if trigger.trail(leg) is None:
                continue
            state = book.trail_state(trigger.id, leg)
            if state is not None and state.stop is not None:
                self._seen[(trigger.id, int(leg))] = (self._terms_of(trigger, leg), state)

    def capture_all(self, book: TriggerBook) -> None:
        """Remember every held trailing leg's state (a book about to be replaced)."""
        if self._port is None:
            return
        for trigger, leg, state in book.trail_states():
            if state.stop is not None:
                self._seen[(trigger.id, int(leg))] = (self._terms_of(trigger, leg), state)

    def resume(self, book: TriggerBook, trigger: Trigger) -> None:
        """Put `trigger`'s trailing legs (just added to `book`) where they last were."""
        if self._port is None or not trigger.leg_specs:
            return
        for leg in trigger.legs:
            if trigger.trail(leg) is None:
                continue
            key = (trigger.id, int(leg))
            known = self._seen.get(key) or self._written.get(key)
            if known is None or known[1].stop is None:
                continue
            terms, state = known
            if terms != self._terms_of(trigger, leg):
                continue  # the trail was edited: it starts afresh
            try:
                book.resume_trail(trigger.id, leg, state)
            except ValueError:
                log.warning("trail_not_resumed", trigger_id=trigger.id, leg=int(leg))

    def resume_all(self, book: TriggerBook) -> None:
        """Put every trailing leg of a new `book` where it last was."""
        if self._port is None:
            return
        holding = {trigger.id: trigger for trigger, _, _ in book.trail_states()}
        for trigger in holding.values():
            self.resume(book, trigger)

    async def flush(self, book: TriggerBook, now: datetime) -> int:
        """Write the states that changed since the last write; how many were written.

        Only the legs the book says moved since the last flush are compared
        (`TriggerBook.moved_trails`: nothing on instruments that made no new best), in
        steps of FLUSH_STEP with the loop let in between. What the book holds now wins
        over what was seen leaving an earlier one. Nothing is marked written unless the
        write committed: a failed write's states are kept and written by the next.
        """
        if self._port is None:
            return 0
        written = self._written
        changed: dict[Key, tuple[str, TrailState]] = {
            key: value for key, value in self._seen.items() if written.get(key) != value
        }
        for n, (trigger, leg) in enumerate(book.moved_trails(), 1):
            if n % FLUSH_STEP == 0:
                await asyncio.sleep(0)  # ticks go on meanwhile: each state is read when due
            state = book.trail_state(trigger.id, leg)
            if state is None or state.stop is None:
                continue  # fired, or taken out (and remembered by `capture`) meanwhile
            key: Key = (trigger.id, int(leg))
            value = (self._terms_of(trigger, leg), state)
            if written.get(key) == value:
                changed.pop(key, None)
                continue
            changed[key] = value
        if not changed:
            return 0
        try:
            await self._port.save(changed, now)
        except BaseException:
            self._seen.update(changed)  # the book will not report them as moved again
            raise
        written.update(changed)
        for key in changed:
            self._seen.pop(key, None)
        self.flushes += 1
        self.written_states += len(changed)
        return len(changed)

    def _terms_of(self, trigger: Trigger, leg: Leg) -> str:
        """The leg's terms as the store spells them, made once per distinct trail."""
        assert self._port is not None
        trail = trigger.trail(leg)
        text = self._terms.get(trail)
        if text is None:
            if len(self._terms) >= TERMS_KEPT:
                self._terms.clear()
            text = self._terms[trail] = self._port.terms(trigger, leg)
        return text
