"""The time book: time legs fire at their time, soonest first, once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from hmt.core.book import TriggerBook
from hmt.core.calendar import IST
from hmt.core.errors import DuplicateTrigger
from hmt.core.model import Trigger
from hmt.core.timebook import TimeBook
from hmt.core.types import Cause, Leg, TriggerId
from tests.support.conditions import BASE_TIME, NIFTY, UP, make_v2, v2_triggers
from tests.support.factories import make_trigger

MINUTE = timedelta(minutes=1)


def fired(book: TimeBook, now: datetime) -> list[tuple[str, Leg]]:
    result = book.due(now)
    assert all(f.cause is Cause.TIME and f.ltp == 0 for f in result)
    return [(f.trigger.id, f.leg) for f in result]


def test_legs_fire_at_their_time_soonest_first() -> None:
    """Nothing fires before its time; at `now` every leg due fires, soonest first, and
    `next_at` names the next one."""
    book = TimeBook()
    late, early, middle = (make_v2([BASE_TIME + n * MINUTE]) for n in (3, 1, 2))
    for trigger in (late, early, middle):
        assert book.add(trigger)
    assert book.next_at() == BASE_TIME + MINUTE
    assert fired(book, BASE_TIME) == []
    assert fired(book, BASE_TIME + 2 * MINUTE) == [(early.id, Leg.FIRST), (middle.id, Leg.FIRST)]
    assert book.next_at() == BASE_TIME + 3 * MINUTE
    assert (len(book), late.id in book, early.id in book) == (1, True, False)
    assert fired(book, BASE_TIME + 3 * MINUTE) == [(late.id, Leg.FIRST)], "exactly at its time"
    assert book.next_at() is None


def test_equal_times_fire_in_the_order_added() -> None:
    """Legs due at the same instant fire in the order their triggers were added."""
    book = TimeBook()
    batch = [make_v2([BASE_TIME]) for _ in range(5)]
    for trigger in batch:
        book.add(trigger)
    assert fired(book, BASE_TIME) == [(t.id, Leg.FIRST) for t in batch]


def test_zones_do_not_matter() -> None:
    """15:15 IST and 09:45 UTC are one instant: a leg set in IST fires at that UTC time."""
    book = TimeBook()
    trigger = make_v2([datetime(2026, 12, 1, 15, 15, tzinfo=IST)])
    book.add(trigger)
    assert fired(book, BASE_TIME - timedelta(microseconds=1)) == []
    assert fired(book, BASE_TIME) == [(trigger.id, Leg.FIRST)]


def test_an_oco_fires_one_leg_and_its_sibling_never() -> None:
    """An oco of two time legs fires the sooner; the later one is gone with it."""
    book = TimeBook()
    oco = make_v2([BASE_TIME + 2 * MINUTE, BASE_TIME + MINUTE])
    book.add(oco)
    assert fired(book, BASE_TIME + 5 * MINUTE) == [(oco.id, Leg.SECOND)]
    assert book.next_at() is None
    assert fired(book, BASE_TIME + 10 * MINUTE) == []


def test_an_oco_with_a_price_leg_leaves_both_books_when_either_fires() -> None:
    """Time leg first: the TimeBook fires it and the caller takes the trigger out of the
    price book. Price leg first: the price book fires it and the caller removes it here."""
    prices, times = TriggerBook(), TimeBook()
    by_time = make_v2([BASE_TIME, (100, UP)])
    by_price = make_v2([BASE_TIME, (90, UP)])
    for trigger in (by_time, by_price):
        prices.add(trigger)
        assert times.add(trigger)
    [price_fire] = prices.on_tick(NIFTY, 95)
    assert (price_fire.trigger.id, price_fire.leg) == (by_price.id, Leg.SECOND)
    assert times.remove(by_price.id) == by_price
    assert fired(times, BASE_TIME) == [(by_time.id, Leg.FIRST)]
    assert prices.remove(by_time.id) == by_time
    assert prices.on_tick(NIFTY, 200) == ()
    assert (len(prices), len(times)) == (0, 0)


def test_removed_triggers_never_fire_and_an_edit_fires_at_its_new_time() -> None:
    """remove forgets a trigger (None the second time); added again with a new time, only
    the new time fires it, though its old heap entry is still there."""
    book = TimeBook()
    gone, moved = make_v2([BASE_TIME]), make_v2([BASE_TIME])
    book.add(gone)
    book.add(moved)
    assert book.remove(gone.id) == gone
    assert book.remove(gone.id) is None
    assert book.remove(moved.id) == moved
    book.add(make_v2([BASE_TIME + MINUTE], id=moved.id))
    assert book.next_at() == BASE_TIME + MINUTE
    assert fired(book, BASE_TIME) == []
    assert fired(book, BASE_TIME + MINUTE) == [(moved.id, Leg.FIRST)]


def test_triggers_without_time_legs_are_not_held() -> None:
    """A v1 trigger or a v2 trigger of price legs only: add says False and holds nothing."""
    book = TimeBook()
    assert not book.add(make_trigger())
    assert not book.add(make_v2([(40, UP)]))
    assert len(book) == 0
    assert book.next_at() is None


def test_bad_input_is_refused_and_leaves_the_book_as_it_was() -> None:
    """A duplicate id raises DuplicateTrigger; a time without a zone raises ValueError
    naming the leg; neither leaves a trace."""
    book = TimeBook()
    trigger = make_v2([BASE_TIME])
    book.add(trigger)
    with pytest.raises(DuplicateTrigger):
        book.add(trigger)
    naive = make_v2([BASE_TIME, BASE_TIME.replace(tzinfo=None)])
    with pytest.raises(ValueError, match=r"legs\[1\]\.condition\.at has no time zone"):
        book.add(naive)
    assert naive.id not in book
    assert fired(book, BASE_TIME) == [(trigger.id, Leg.FIRST)]


def test_many_removals_compact_the_heap() -> None:
    """After most triggers are removed the heap is compacted, and what stays fires as due."""
    book = TimeBook()
    batch = [make_v2([BASE_TIME + n * MINUTE]) for n in range(500)]
    for trigger in batch:
        book.add(trigger)
    for trigger in batch[:450]:
        book.remove(trigger.id)
    assert len(book._heap) < 500, "dead entries were dropped"
    assert fired(book, BASE_TIME + 1_000 * MINUTE) == [(t.id, Leg.FIRST) for t in batch[450:]]


class TimeBookVersusOracle(RuleBasedStateMachine):
    """Random add / remove / due sequences against a dict scanned for the soonest leg."""

    added = Bundle("added")

    def __init__(self) -> None:
        super().__init__()
        self.book = TimeBook()
        self.oracle: dict[TriggerId, Trigger] = {}
        self.now = BASE_TIME - 10 * MINUTE
        self.ever_fired: set[TriggerId] = set()

    @rule(target=added, trigger=v2_triggers())
    def add(self, trigger: Trigger) -> TriggerId:
        if self.book.add(trigger):
            self.oracle[trigger.id] = trigger
        else:
            assert all(trigger.fire_at(leg) is None for leg in trigger.legs)
        return trigger.id

    @rule(trigger_id=consumes(added))
    def remove(self, trigger_id: TriggerId) -> None:
        assert self.book.remove(trigger_id) == self.oracle.pop(trigger_id, None)

    @rule(step=st.integers(0, 4))
    def advance(self, step: int) -> None:
        self.now += step * MINUTE
        expected = []
        for trigger in self.oracle.values():
            times = [(at, leg) for leg in trigger.legs if (at := trigger.fire_at(leg))]
            at, leg = min(times)
            if at <= self.now:
                expected.append((at, trigger.id, leg))
        got = self.book.due(self.now)
        assert {(f.trigger.id, f.leg) for f in got} == {(i, leg) for _, i, leg in expected}
        assert [f.trigger.fire_at(f.leg) for f in got] == sorted(at for at, _, _ in expected)
        ids = {f.trigger.id for f in got}
        assert not ids & self.ever_fired, "a trigger fired twice"
        self.ever_fired |= ids
        for trigger_id in ids:
            del self.oracle[trigger_id]

    @invariant()
    def book_holds_what_the_oracle_holds(self) -> None:
        assert len(self.book) == len(self.oracle)
        soonest = [at for t in self.oracle.values() for leg in t.legs if (at := t.fire_at(leg))]
        assert self.book.next_at() == (min(soonest) if soonest else None)


TimeBookVersusOracle.TestCase.settings = settings(
    settings.default, max_examples=max(300, settings.default.max_examples), stateful_step_count=40
)
TestTimeBookVersusOracle = TimeBookVersusOracle.TestCase
