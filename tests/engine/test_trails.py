"""The engine's keeper of trailing stops (issue 14) with the real store on SQLite: only moved
states are written, a failed write keeps them for the next, and a leg taken out of the book
and put back with the same terms resumes (other terms start afresh)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hmt.core.book import TriggerBook
from hmt.core.model import LegSpec, Trigger
from hmt.core.trailing import Offset, Trail, TrailState
from hmt.core.types import Leg, Side
from hmt.engine.trails import TrailKeeper
from hmt.store import migrate
from hmt.store.db import Database, create_engine
from hmt.store.trails import TrailStates, Written
from tests.support.factories import INFY
from tests.support.trailing import make_trailing

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
TRAIL = Trail(Side.SELL, Offset.PRICE, 50, 5)


@pytest.fixture
async def states(tmp_path: Path) -> AsyncIterator[TrailStates]:
    engine = create_engine(f"sqlite:///{tmp_path / 'hmt.db'}")
    await migrate.upgrade(engine)
    try:
        yield TrailStates(Database(engine))
    finally:
        await engine.dispose()


class Failing:
    """The store's port with its writes refused while `down`."""

    def __init__(self, real: TrailStates) -> None:
        self.real, self.down, self.saves = real, False, 0

    async def read(
        self, trigger_ids: Iterable[str] | None = None
    ) -> Mapping[tuple[str, int], Written]:
        return await self.real.read(trigger_ids)

    async def save(
        self, states: Mapping[tuple[str, int], tuple[str, TrailState]], now: datetime
    ) -> None:
        self.saves += 1
        if self.down:
            raise ConnectionError("the database is away")
        await self.real.save(states, now)

    def terms(self, trigger: Trigger, leg: Leg) -> str:
        return self.real.terms(trigger, leg)


async def test_only_moved_states_are_written_and_a_failed_write_is_kept(
    states: TrailStates,
) -> None:
    port = Failing(states)
    keeper = TrailKeeper(port)
    book = TriggerBook()
    one, two = make_trailing(TRAIL), make_trailing(dataclasses.replace(TRAIL, offset=100))
    book.add(one)
    book.add(two)
    assert await keeper.flush(book, NOW) == 0  # nothing active: nothing written
    book.on_tick(INFY, 1_000)
    assert await keeper.flush(book, NOW) == 2
    assert await keeper.flush(book, NOW) == 0  # nothing moved since
    saves = port.saves
    book.on_tick(INFY, 990)  # no new best
    assert await keeper.flush(book, NOW) == 0
    assert port.saves == saves, "nothing changed: no write at all"
    book.on_tick(INFY, 1_010)
    port.down = True
    with pytest.raises(ConnectionError):
        await keeper.flush(book, NOW)
    port.down = False
    assert await keeper.flush(book, NOW) == 2  # kept, though the book says nothing moved
    written = await states.read()
    assert written[(one.id, 1)].state == (1_010, 960)
    assert written[(two.id, 1)].state == (1_010, 910)


async def test_a_leg_put_back_resumes_unless_its_terms_changed(states: TrailStates) -> None:
    keeper = TrailKeeper(states)
    book = TriggerBook()
    trigger = make_trailing(TRAIL)
    book.add(trigger)
    book.on_tick(INFY, 1_000)
    keeper.capture(book, trigger)
    book.remove(trigger.id)
    book.add(trigger)  # the same row again (an edit of something else, a resume)
    assert book.trail_state(trigger.id, Leg.FIRST) == (None, None)
    keeper.resume(book, trigger)
    assert book.trail_state(trigger.id, Leg.FIRST) == (1_000, 950)
    edited = dataclasses.replace(
        trigger, leg_specs=(LegSpec(trail=dataclasses.replace(TRAIL, offset=20)),)
    )
    keeper.capture(book, trigger)
    book.remove(trigger.id)
    book.add(edited)
    keeper.resume(book, edited)
    assert book.trail_state(trigger.id, Leg.FIRST) == (None, None)  # afresh
    # After a restart: a new keeper reads what was written.
    assert await keeper.flush(book, NOW) == 1  # the captured state of the old terms
    fresh, again = TrailKeeper(states), TriggerBook()
    again.add(trigger)
    await fresh.load()
    fresh.resume_all(again)
    assert again.trail_state(trigger.id, Leg.FIRST) == (1_000, 950)
