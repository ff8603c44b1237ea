"""The trigger book against a brute-force oracle, and its edge cases by hand."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
)

from hmt.core.book import _RISES, BookBuilder, TriggerBook, _v1_rises
from hmt.core.errors import DuplicateTrigger
from hmt.core.gaps import DayRange
from hmt.core.model import Trigger
from hmt.core.rules import direction, legs_holding
from hmt.core.types import Cause, Direction, Leg, Side, TriggerId, TriggerType
from tests.support.conditions import (
    BASE_TIME,
    DOWN,
    NIFTY,
    UP,
    WATCHED,
    make_v2,
    mixed_triggers,
    random_v2_trigger,
)
from tests.support.factories import INFY, RELIANCE, make_oco, make_trigger, triggers


def fired_set(fired) -> set[tuple[str, Leg]]:  # type: ignore[no-untyped-def]
    return {(f.trigger.id, f.leg) for f in fired}


def test_empty_book_fires_nothing() -> None:
    """A tick on an instrument with no triggers fires nothing."""
    assert TriggerBook().on_tick(INFY, 1) == ()


def test_fired_trigger_leaves_the_book_before_the_next_tick() -> None:
    """A second tick at the same price cannot fire the same trigger again."""
    book = TriggerBook()
    trigger = make_trigger(trigger_price_1=100)
    book.add(trigger)
    assert fired_set(book.on_tick(INFY, 100)) == {(trigger.id, Leg.FIRST)}
    assert book.on_tick(INFY, 100) == ()
    assert len(book) == 0
    assert book.instruments() == frozenset()


def test_oco_fires_one_leg_and_drops_the_other() -> None:
    """When one oco leg fires, the other is gone, even if the price crosses it later."""
    book = TriggerBook()
    oco = make_oco(Side.SELL, 90, 110)
    book.add(oco)
    assert book.count_for(INFY) == 2
    assert fired_set(book.on_tick(INFY, 112)) == {(oco.id, Leg.SECOND)}
    assert book.count_for(INFY) == 0
    assert book.on_tick(INFY, 80) == ()


def test_many_fire_on_one_tick_and_others_stay() -> None:
    """Every leg crossed by a jump fires at once; legs not crossed stay armed."""
    book = TriggerBook()
    buys = [make_trigger(trigger_price_1=p) for p in (100, 101, 102, 105)]
    sells = [make_trigger(side=Side.SELL, trigger_price_1=p) for p in (90, 102, 104)]
    book.add_many(buys + sells)
    fired = book.on_tick(INFY, 102)
    assert fired_set(fired) == {(t.id, Leg.FIRST) for t in [*buys[:3], *sells[1:]]}
    assert all(f.ltp == 102 for f in fired)
    assert {t.id for t in book} == {buys[3].id, sells[0].id}
    assert book.on_tick(INFY, 103) == ()


def test_remove_and_add_again() -> None:
    """A removed trigger never fires; one removed and added edited (the engine's refresh)
    fires at its new price only."""
    book = TriggerBook()
    gone, moved = make_trigger(trigger_price_1=100), make_trigger(trigger_price_1=100)
    book.add_many([gone, moved])
    assert book.remove(gone.id) == gone
    assert book.remove(gone.id) is None
    new = make_trigger(id=moved.id, trigger_price_1=200)
    assert book.remove(moved.id) == moved
    book.add(new)
    assert book.get(moved.id) == new
    assert book.on_tick(INFY, 150) == ()
    assert fired_set(book.on_tick(INFY, 200)) == {(moved.id, Leg.FIRST)}


def test_duplicates_are_refused_and_leave_the_book_whole() -> None:
    """Adding an id twice raises; what add_many took before the duplicate stays indexed."""
    book = TriggerBook()
    first, second = make_trigger(trigger_price_1=100), make_trigger(trigger_price_1=100)
    book.add(first)
    with pytest.raises(DuplicateTrigger):
        book.add(first)
    with pytest.raises(DuplicateTrigger):
        book.add_many([second, first])
    assert {t.id for t in book} == {first.id, second.id}
    assert fired_set(book.on_tick(INFY, 100)) == {(first.id, Leg.FIRST), (second.id, Leg.FIRST)}


def test_malformed_oco_leaves_no_trace() -> None:
    """An oco without a second price raises before the book records anything of it."""
    book = TriggerBook()
    broken = make_trigger(trigger_type=TriggerType.OCO)
    with pytest.raises(ValueError, match="no second leg"):
        book.add(broken)
    assert len(book) == 0
    assert broken.id not in book
    assert book.instruments() == frozenset()


def test_instruments_follow_the_book() -> None:
    """The instrument set is what to subscribe to: it grows and shrinks with the legs."""
    book = TriggerBook()
    a, b = make_trigger(), make_trigger(instrument_token=RELIANCE)
    book.add_many([a, b])
    assert book.instruments() == {INFY, RELIANCE}
    book.remove(a.id)
    assert book.instruments() == {RELIANCE}
    assert (book.holds(INFY), book.holds(RELIANCE)) == (False, True)
    book.on_tick(RELIANCE, b.trigger_price_1)  # fires b: its instrument leaves the book
    assert book.instruments() == frozenset()
    assert not book.holds(RELIANCE)


class BookVersusOracle(RuleBasedStateMachine):
    """Random add / remove / replace / tick sequences against a plain list scanned per tick."""

    added = Bundle("added")

    def __init__(self) -> None:
        super().__init__()
        self.book = TriggerBook()
        self.oracle: dict[TriggerId, Trigger] = {}
        self.ever_fired: set[TriggerId] = set()
        self.boundary_hits = 0

    @rule(target=added, trigger=triggers())
    def add(self, trigger: Trigger) -> TriggerId:
        self.book.add(trigger)
        self.oracle[trigger.id] = trigger
        return trigger.id

    @rule(trigger_id=consumes(added))
    def remove(self, trigger_id: TriggerId) -> None:
        assert self.book.remove(trigger_id) == self.oracle.pop(trigger_id, None)

    @rule(trigger_id=added, new=triggers())
    def edit(self, trigger_id: TriggerId, new: Trigger) -> None:
        """An edit as the engine applies it: the old trigger out, the edited one in."""
        if trigger_id not in self.oracle:
            return  # it fired: an edit of a gone trigger is an add, covered above
        replacement = Trigger(**{**_fields(new), "id": trigger_id})
        assert self.book.remove(trigger_id) == self.oracle[trigger_id]
        self.book.add(replacement)
        self.oracle[trigger_id] = replacement

    @rule(token=st.sampled_from([INFY, RELIANCE]), ltp=st.integers(0, 61))
    def tick(self, token: int, ltp: int) -> None:
        expected: set[tuple[str, Leg]] = set()
        for trigger in list(self.oracle.values()):
            if trigger.instrument_token != token:
                continue
            holding = legs_holding(trigger, ltp)
            assert len(holding) <= 1, "a valid oco can never hold both legs"
            if holding:
                expected.add((trigger.id, holding[0]))
                self.boundary_hits += trigger.threshold(holding[0]) == ltp
                del self.oracle[trigger.id]
        fired = self.book.on_tick(token, ltp)
        assert fired_set(fired) == expected
        assert len(fired) == len(expected), "one entry per fired trigger"
        ids = {f.trigger.id for f in fired}
        assert not ids & self.ever_fired, "a trigger fired twice"
        self.ever_fired |= ids

    @invariant()
    def book_equals_the_active_legs(self) -> None:
        assert {t.id: t for t in self.book} == self.oracle
        assert len(self.book) == len(self.oracle)
        expected_instruments = {t.instrument_token for t in self.oracle.values()}
        assert self.book.instruments() == expected_instruments
        for token in (INFY, RELIANCE):
            legs = sum(len(t.legs) for t in self.oracle.values() if t.instrument_token == token)
            assert self.book.count_for(token) == legs


def _fields(trigger: Trigger) -> dict[str, object]:
    return {name: getattr(trigger, name) for name in Trigger.__slots__}


BookVersusOracle.TestCase.settings = settings(
    settings.default,
    max_examples=max(1_000, settings.default.max_examples),
    stateful_step_count=40,
)
TestBookVersusOracle = BookVersusOracle.TestCase


def test_book_against_brute_force_at_scale() -> None:
    """RELIABILITY 2: up to 10,000 triggers and 1,000 ticks per round, on_tick == a full scan.

    Seeded (printed). Triggers sit on a small grid and keep arriving between
    ticks, so the book stays populated and ticks land exactly on thresholds.
    """
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    rounds, compared, mismatches, boundary, fired_total = 5, 0, 0, 0, 0
    for round_ in range(rounds):
        book, oracle = TriggerBook(), {}
        # The first round at the full size; the others at random sizes below it.
        size = 10_000 if round_ == 0 else rng.randrange(1, 10_001)
        ticks = 1_000 if round_ == 0 else rng.randrange(1, 1_001)
        pending = [_random_trigger(rng) for _ in range(size)]
        for tick in range(ticks):
            # Feed the book in slices, so triggers arrive while others are firing.
            for trigger in pending[tick::ticks][: len(pending) // ticks + 1]:
                book.add(trigger)
                oracle[trigger.id] = trigger
            token, ltp = rng.choice((INFY, RELIANCE)), rng.randrange(0, 62)
            expected = set()
            for trigger in [t for t in oracle.values() if t.instrument_token == token]:
                holding = legs_holding(trigger, ltp)
                if holding:
                    expected.add((trigger.id, holding[0]))
                    boundary += trigger.threshold(holding[0]) == ltp
                    del oracle[trigger.id]
            got = fired_set(book.on_tick(token, ltp))
            compared += 1
            mismatches += got != expected
            fired_total += len(got)
        assert {t.id for t in book} == set(oracle)
    print(
        f"\nRELIABILITY 2 seed={seed} rounds={rounds} ticks_compared={compared} "
        f"fired={fired_total} mismatches={mismatches} exact_threshold_hits={boundary}"
    )
    assert mismatches == 0
    assert boundary > 0, "the generator never reached ltp == threshold"


def _random_trigger(rng: random.Random) -> Trigger:
    """A valid trigger on the 1..60 grid, single or oco, either side, either instrument."""
    side = rng.choice((Side.BUY, Side.SELL))
    token = rng.choice((INFY, RELIANCE))
    if rng.random() < 0.5:
        return make_trigger(side=side, instrument_token=token, trigger_price_1=rng.randint(1, 60))
    low, high = sorted(rng.sample(range(1, 61), 2))
    stop, target = (low, high) if side is Side.SELL else (high, low)
    return make_oco(side, stop, target, instrument_token=token)


def test_builder_makes_the_book_add_many_makes() -> None:
    """A book built in batches by BookBuilder fires, tick for tick, as one filled by add_many.

    Seeded (printed): 3,000 random triggers in batches of random sizes, then
    300 random ticks on both books; the same legs fire and the same stay.
    """
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    pending = [_random_trigger(rng) for _ in range(3_000)]
    reference = TriggerBook()
    reference.add_many(pending)
    builder = BookBuilder()
    at = 0
    while at < len(pending):
        step = rng.randrange(1, 400)
        assert builder.add_many(pending[at : at + step]) == len(pending[at : at + step])
        at += step
    built = builder.build()
    assert len(built) == len(reference)
    assert built.instruments() == reference.instruments()
    for token in (INFY, RELIANCE):
        assert built.count_for(token) == reference.count_for(token)
    for _ in range(300):
        token, ltp = rng.choice((INFY, RELIANCE)), rng.randrange(0, 62)
        assert fired_set(built.on_tick(token, ltp)) == fired_set(reference.on_tick(token, ltp)), (
            f"seed={seed}"
        )
    assert {t.id for t in built} == {t.id for t in reference}


def test_builder_refuses_duplicates_and_malformed_triggers() -> None:
    """BookBuilder raises as add_many does; a malformed oco leaves no trace in the built book."""
    builder = BookBuilder()
    first = make_trigger(trigger_price_1=100)
    builder.add_many([first])
    with pytest.raises(DuplicateTrigger):
        builder.add_many([first])
    with pytest.raises(ValueError, match="no second leg"):
        builder.add_many([make_trigger(trigger_type=TriggerType.OCO)])
    book = builder.build()
    assert [t.id for t in book] == [first.id]
    assert fired_set(book.on_tick(INFY, 100)) == {(first.id, Leg.FIRST)}
    assert book.instruments() == frozenset()


def test_builder_keys_a_v1_single_inline_and_leaves_no_trace_of_a_malformed_one() -> None:
    """A v1 single is keyed inline (issue 12's fourth pass): a batch stops at a malformed
    one (no price) with the triggers before it registered, nothing of it."""
    builder = BookBuilder()
    good = [make_trigger(trigger_price_1=100), make_trigger(side=Side.SELL, trigger_price_1=90)]
    broken = make_trigger(trigger_price_1=None)
    with pytest.raises(TypeError):
        builder.add_many([*good, broken, make_trigger(trigger_price_1=95)])
    assert builder.add_many([make_trigger(trigger_price_1=110)]) == 1
    book = builder.build()
    assert len(book) == 3
    assert broken.id not in book
    assert fired_set(book.on_tick(INFY, 90)) == {(good[1].id, Leg.FIRST)}
    assert fired_set(book.on_tick(INFY, 100)) == {(good[0].id, Leg.FIRST)}


def test_v1_directions_found_by_identity_are_the_rules_table() -> None:
    """`_v1_rises` (no enum hashing) answers what DESIGN's table folded says, pair for pair."""
    for (trigger_type, side), rises in _RISES.items():
        assert _v1_rises(trigger_type, side) == rises
    assert len(_RISES) == len(TriggerType) * len(Side)


# --- Trigger model v2: watched instruments, stated directions, time legs ----------------


def test_a_trigger_fires_on_the_instrument_it_watches() -> None:
    """A trigger trading INFY and watching NIFTY fires on NIFTY's price, never on INFY's."""
    book = TriggerBook()
    trigger = make_v2([(23_800, DOWN)], watch=NIFTY)
    book.add(trigger)
    assert book.instruments() == {NIFTY}
    assert (book.count_for(NIFTY), book.count_for(INFY)) == (1, 0)
    assert book.on_tick(INFY, 1) == ()
    assert book.on_tick(NIFTY, 23_801) == ()
    assert fired_set(book.on_tick(NIFTY, 23_800)) == {(trigger.id, Leg.FIRST)}
    assert book.instruments() == frozenset()


def test_a_stated_direction_wins_over_the_table() -> None:
    """A single BUY fires on a rise by the table; stated at_or_below, it fires on a fall."""
    book = TriggerBook()
    table, stated = make_v2([(50, None)]), make_v2([(50, DOWN)])
    book.add_many([table, stated])
    assert fired_set(book.on_tick(NIFTY, 49)) == {(stated.id, Leg.FIRST)}
    assert fired_set(book.on_tick(NIFTY, 50)) == {(table.id, Leg.FIRST)}


def test_time_legs_stay_out_of_the_book() -> None:
    """An oco of a time leg and a price leg is indexed by its price leg only; a trigger of
    time legs only is held (len, in, get, remove) but indexes nothing."""
    book = TriggerBook()
    mixed = make_v2([BASE_TIME, (40, UP)])
    timed = make_v2([BASE_TIME])
    book.add_many([mixed, timed])
    assert len(book) == 2
    assert timed.id in book
    assert book.get(timed.id) == timed
    assert book.count_for(NIFTY) == 1
    assert book.on_tick(NIFTY, 0) == (), "a time leg's threshold (0) is not a price"
    fired = book.on_tick(NIFTY, 41)
    assert [(f.trigger.id, f.leg, f.ltp, f.cause) for f in fired] == [
        (mixed.id, Leg.SECOND, 41, Cause.PRICE)
    ]
    assert book.instruments() == frozenset()
    assert book.remove(timed.id) == timed
    assert len(book) == 0


def test_both_legs_holding_fire_the_first() -> None:
    """With stated directions an oco's legs can both hold at one price: the first fires,
    the second goes with it."""
    book = TriggerBook()
    oco = make_v2([(40, DOWN), (30, UP)])  # both hold anywhere in 30..40
    book.add(oco)
    assert [(f.trigger.id, f.leg) for f in book.on_tick(NIFTY, 35)] == [(oco.id, Leg.FIRST)]
    assert book.count_for(NIFTY) == 0


def test_crossed_finds_the_legs_the_range_moved_past() -> None:
    """Rising legs in (before.high, after.high], falling in [after.low, before.low); the
    book keeps them; a range that did not grow finds nothing."""
    book = TriggerBook()
    up = [make_v2([(p, UP)]) for p in (100, 101, 105, 106)]
    down = [make_v2([(p, DOWN)]) for p in (89, 90, 94, 95)]
    book.add_many(up + down)
    before, after = DayRange(high=100, low=95), DayRange(high=105, low=90)
    got = book.crossed(NIFTY, before, after)
    assert [(t.id, leg) for t, leg in got] == [
        (t.id, Leg.FIRST) for t in (up[1], up[2], down[1], down[2])
    ], "in arrival order"
    assert len(book) == 8
    assert book.crossed(NIFTY, after, after) == []
    assert book.crossed(NIFTY, after, before) == []
    assert book.crossed(INFY, before, after) == []


def _brute_crossed(
    triggers: Iterable[Trigger], token: int, before: DayRange, after: DayRange
) -> list[tuple[str, Leg]]:
    found = []
    for trigger in triggers:
        if trigger.watched != token:
            continue
        for leg in trigger.legs:
            if trigger.fire_at(leg) is not None:
                continue
            price = trigger.threshold(leg)
            if direction(trigger, leg) is Direction.AT_OR_ABOVE:
                hit = before.high < price <= after.high
            else:
                hit = after.low <= price < before.low
            if hit:
                found.append((trigger.id, leg))
    return found


def _ranges() -> st.SearchStrategy[DayRange]:
    return st.tuples(st.integers(0, 61), st.integers(0, 61)).map(
        lambda pair: DayRange(max(pair), min(pair))
    )


@given(
    batch=st.lists(mixed_triggers(), max_size=40, unique_by=lambda t: t.id),
    token=st.sampled_from(WATCHED),
    before=_ranges(),
    after=_ranges(),
)
def test_crossed_against_brute_force(
    batch: list[Trigger], token: int, before: DayRange, after: DayRange
) -> None:
    """`crossed` lists exactly the price legs a scan finds, in arrival order, first leg
    first, and removes nothing."""
    book = TriggerBook()
    book.add_many(batch)
    got = [(t.id, leg) for t, leg in book.crossed(token, before, after)]
    assert got == _brute_crossed(batch, token, before, after)
    assert len(book) == len(batch)


class MixedBookVersusOracle(RuleBasedStateMachine):
    """v1 and v2 triggers (watching another instrument, stated directions, time legs) under
    random add / remove / edit / tick / crossed sequences, against a scan of
    `rules.legs_holding`."""

    added = Bundle("added")

    def __init__(self) -> None:
        super().__init__()
        self.book = TriggerBook()
        self.oracle: dict[TriggerId, Trigger] = {}
        self.ever_fired: set[TriggerId] = set()

    @rule(target=added, trigger=mixed_triggers())
    def add(self, trigger: Trigger) -> TriggerId:
        self.book.add(trigger)
        self.oracle[trigger.id] = trigger
        return trigger.id

    @rule(trigger_id=consumes(added))
    def remove(self, trigger_id: TriggerId) -> None:
        assert self.book.remove(trigger_id) == self.oracle.pop(trigger_id, None)

    @rule(trigger_id=added, new=mixed_triggers())
    def edit(self, trigger_id: TriggerId, new: Trigger) -> None:
        """An edit may turn a v1 trigger into a v2 one or back, or move what it watches."""
        if trigger_id not in self.oracle:
            return
        replacement = Trigger(**{**_fields(new), "id": trigger_id})
        assert self.book.remove(trigger_id) == self.oracle[trigger_id]
        self.book.add(replacement)
        self.oracle[trigger_id] = replacement

    @rule(token=st.sampled_from(WATCHED), ltp=st.integers(0, 61))
    def tick(self, token: int, ltp: int) -> None:
        expected: set[tuple[str, Leg]] = set()
        for trigger in list(self.oracle.values()):
            if trigger.watched != token:
                continue
            holding = legs_holding(trigger, ltp)
            if holding:
                expected.add((trigger.id, holding[0]))
                del self.oracle[trigger.id]
        fired = self.book.on_tick(token, ltp)
        assert fired_set(fired) == expected
        assert len(fired) == len(expected), "one entry per fired trigger"
        ids = {f.trigger.id for f in fired}
        assert not ids & self.ever_fired, "a trigger fired twice"
        self.ever_fired |= ids

    @rule(token=st.sampled_from(WATCHED), before=_ranges(), after=_ranges())
    def crossed(self, token: int, before: DayRange, after: DayRange) -> None:
        got = {(t.id, leg) for t, leg in self.book.crossed(token, before, after)}
        assert got == set(_brute_crossed(self.oracle.values(), token, before, after))

    @invariant()
    def book_equals_the_active_legs(self) -> None:
        assert {t.id: t for t in self.book} == self.oracle
        priced = [t for t in self.oracle.values() if _price_legs(t)]
        assert self.book.instruments() == {t.watched for t in priced}
        for token in WATCHED:
            legs = sum(_price_legs(t) for t in priced if t.watched == token)
            assert self.book.count_for(token) == legs


def _price_legs(trigger: Trigger) -> int:
    return sum(trigger.fire_at(leg) is None for leg in trigger.legs)


MixedBookVersusOracle.TestCase.settings = settings(
    settings.default,
    max_examples=max(1_000, settings.default.max_examples),
    stateful_step_count=40,
)
TestMixedBookVersusOracle = MixedBookVersusOracle.TestCase


def _random_mixed_trigger(rng: random.Random) -> Trigger:
    """One in ten watches another instrument (with stated directions), as BENCHMARKS has it."""
    return random_v2_trigger(rng) if rng.random() < 0.1 else _random_trigger(rng)


def test_mixed_book_against_brute_force_at_scale() -> None:
    """RELIABILITY 2 with v2 triggers mixed in: up to 10,000 triggers (10% watching another
    instrument, some with a time leg) and 1,000 ticks per round; on_tick == a full scan of
    `legs_holding`, and `crossed` == a full scan every 50 ticks. Seeded (printed)."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    rounds, compared, mismatches, boundary, fired_total, crossings = 5, 0, 0, 0, 0, 0
    for round_ in range(rounds):
        book, oracle = TriggerBook(), {}
        size = 10_000 if round_ == 0 else rng.randrange(1, 10_001)
        ticks = 1_000 if round_ == 0 else rng.randrange(1, 1_001)
        pending = [_random_mixed_trigger(rng) for _ in range(size)]
        for tick in range(ticks):
            for trigger in pending[tick::ticks][: len(pending) // ticks + 1]:
                book.add(trigger)
                oracle[trigger.id] = trigger
            token, ltp = rng.choice(WATCHED), rng.randrange(0, 62)
            if tick % 50 == 0:
                low, high = sorted(rng.sample(range(0, 62), 2))
                before = DayRange(high, low)
                after = before.merged(
                    DayRange(high + rng.randrange(0, 10), low - rng.randrange(0, 10))
                )
                got = [(t.id, leg) for t, leg in book.crossed(token, before, after)]
                want = _brute_crossed(oracle.values(), token, before, after)
                mismatches += sorted(got) != sorted(want)
                crossings += len(got)
            expected = set()
            for trigger in [t for t in oracle.values() if t.watched == token]:
                holding = legs_holding(trigger, ltp)
                if holding:
                    expected.add((trigger.id, holding[0]))
                    boundary += trigger.threshold(holding[0]) == ltp
                    del oracle[trigger.id]
            got_fired = fired_set(book.on_tick(token, ltp))
            compared += 1
            mismatches += got_fired != expected
            fired_total += len(got_fired)
        assert {t.id for t in book} == set(oracle)
    print(
        f"\nRELIABILITY 2 (mixed) seed={seed} rounds={rounds} ticks_compared={compared} "
        f"fired={fired_total} crossed={crossings} mismatches={mismatches} "
        f"exact_threshold_hits={boundary}"
    )
    assert mismatches == 0
    assert boundary > 0
    assert crossings > 0


def test_builder_makes_the_book_add_many_makes_with_v2_triggers() -> None:
    """BookBuilder and add_many agree, tick for tick, on a mixed set (seeded, printed)."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    pending = [_random_mixed_trigger(rng) for _ in range(3_000)]
    pending += [make_v2([BASE_TIME]) for _ in range(5)]  # time legs only
    reference = TriggerBook()
    reference.add_many(pending)
    builder = BookBuilder()
    at = 0
    while at < len(pending):
        step = rng.randrange(1, 400)
        assert builder.add_many(pending[at : at + step]) == len(pending[at : at + step])
        at += step
    built = builder.build()
    assert len(built) == len(reference) == len(pending)
    assert built.instruments() == reference.instruments()
    for token in WATCHED:
        assert built.count_for(token) == reference.count_for(token), f"seed={seed}"
    for _ in range(300):
        token, ltp = rng.choice(WATCHED), rng.randrange(0, 62)
        assert fired_set(built.on_tick(token, ltp)) == fired_set(reference.on_tick(token, ltp)), (
            f"seed={seed}"
        )
    assert {t.id for t in built} == {t.id for t in reference}
