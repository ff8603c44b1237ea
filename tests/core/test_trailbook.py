"""Trailing legs in the book, against every stop advanced one by one (`Trail.advance`)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hmt.core.book import _NO_FALL, _NO_RISE, BookBuilder, TriggerBook
from hmt.core.model import Trigger
from hmt.core.rules import direction, holds
from hmt.core.trailbook import Trails
from hmt.core.trailing import Offset, Trail, TrailState
from hmt.core.types import Leg, Side, TriggerId
from tests.support.conditions import DOWN, UP
from tests.support.factories import INFY, RELIANCE, make_trigger
from tests.support.trailing import make_trailing, random_trail, trails

# One operation on a `Trails`: add a trail (fresh, or resumed after some references),
# discard the i-th held leg, or a tick (reference, ltp).
Op = (
    st.tuples(st.just("add"), trails(tick=5), st.lists(st.integers(1, 400), max_size=4))
    | st.tuples(st.just("discard"), st.integers(0, 50))
    | st.tuples(st.just("tick"), st.integers(1, 400), st.integers(0, 8))
)


@settings(max_examples=1_500)
@given(ops=st.lists(Op, max_size=80))
def test_trails_against_each_stop_alone(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    """Whatever the mix of adds, resumes, discards and ticks (the reference sometimes a
    little off the LTP), the legs that fire and every stop equal each trail advanced alone."""
    held, model = Trails(), {}
    lseq = 0
    for op in ops:
        if op[0] == "add":
            _, trail, history = op
            state = trail.start()
            for ref in history:
                state = trail.advance(state, ref)
            lseq += 1
            held.add(lseq, trail, state if history else None)
            model[lseq] = (trail, state)
        elif op[0] == "discard":
            if model:
                gone = sorted(model)[op[1] % len(model)]
                held.discard(gone)
                del model[gone]
        else:
            _, ref, skew = op
            ltp = ref + skew - 4
            for key, (trail, state) in model.items():
                model[key] = (trail, trail.advance(state, ref))
            want = {key for key, (trail, state) in model.items() if trail.fires(state, ltp)}
            assert set(held.tick(ref, ltp)) == want
            for key in want:
                del model[key]
        assert dict(held.states()) == {key: state for key, (_, state) in model.items()}


def test_trails_many_on_a_walk_against_each_alone() -> None:
    """RELIABILITY 2 style: 3,000 stops, both sides, every kind, on a seeded random walk
    with new highs and lows, compared after every one of 2,000 ticks (seed printed)."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    held, model = Trails(), {}
    price, fired, moved = 20_000, 0, 0
    for tick in range(2_000):
        for _ in range(rng.randint(0, 3)):
            key = len(model) + fired + 1_000 * tick
            trail = random_trail(rng, tick=5, low=price - 300, high=price + 300)
            held.add(key, trail)
            model[key] = (trail, trail.start())
        price = max(100, price + rng.choice((-15, -10, -5, 0, 5, 5, 10, 15, 20)))
        for key, (trail, state) in model.items():
            after = trail.advance(state, price)
            moved += after != state
            model[key] = (trail, after)
        want = {key for key, (trail, state) in model.items() if trail.fires(state, price)}
        got = set(held.tick(price, price))
        assert got == want, f"seed={seed} tick={tick}"
        for key in want:
            del model[key]
        fired += len(want)
        if tick % 100 == 0:
            assert dict(held.states()) == {k: s for k, (_, s) in model.items()}, f"seed={seed}"
    print(f"\ntrails walk seed={seed} fired={fired} moves={moved} held={len(model)}")
    assert fired > 0
    assert moved > 0


def _brute_fire(
    oracle: dict[TriggerId, Trigger],
    states: dict[tuple[TriggerId, Leg], TrailState],
    token: int,
    ltp: int,
) -> set[tuple[TriggerId, Leg]]:
    """Every trigger watching `token`, checked leg by leg after its trailing stops moved."""
    for (tid, leg), state in states.items():
        trigger = oracle[tid]
        if trigger.watched == token:
            trail = trigger.trail(leg)
            assert trail is not None
            states[(tid, leg)] = trail.advance(state, ltp)
    out = set()
    for trigger in [t for t in oracle.values() if t.watched == token]:
        holding = []
        for leg in trigger.legs:
            trail = trigger.trail(leg)
            if trail is not None:
                ok = trail.fires(states[(trigger.id, leg)], ltp)
            else:
                ok = holds(direction(trigger, leg), trigger.threshold(leg), ltp)
            if ok:
                holding.append(leg)
        if holding:
            out.add((trigger.id, holding[0]))  # both: the first leg fires
            del oracle[trigger.id]
            for leg in trigger.legs:
                states.pop((trigger.id, leg), None)
    return out


def _random_mixed(rng: random.Random, price: int) -> Trigger:
    """A fixed trigger near `price`, a trailing one, or an oco of a trailing stop and a target."""
    token = rng.choice((INFY, RELIANCE))
    roll = rng.random()
    if roll < 0.4:
        side = rng.choice((Side.BUY, Side.SELL))
        return make_trigger(
            side=side, instrument_token=token, trigger_price_1=price + rng.randint(-300, 300)
        )
    trail = random_trail(rng, tick=5, low=price - 300, high=price + 300)
    if roll < 0.7:
        return make_trailing(trail, instrument_token=token)
    away = rng.randint(1, 300)
    target = (price + away, UP) if trail.side is Side.SELL else (price - away, DOWN)
    return make_trailing(
        trail, target=target, trailing_second=rng.random() < 0.3, instrument_token=token
    )


@pytest.mark.parametrize("loader", ["add", "add_many", "builder"])
def test_book_with_trailing_against_brute_force_at_scale(loader: str) -> None:
    """RELIABILITY 2 with trailing stops: 4,000 triggers (fixed, trailing, oco of a
    trailing stop and a target) on two instruments, 1,500 ticks, every tick's fired set
    equal to a leg-by-leg check (seed printed)."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    prices = {INFY: 20_000, RELIANCE: 20_000}
    first = [_random_mixed(rng, 20_000) for _ in range(2_000)]
    if loader == "builder":
        builder = BookBuilder()
        builder.add_many(first)
        book = builder.build()
    else:
        book = TriggerBook()
        if loader == "add_many":
            book.add_many(first)
        else:
            for trigger in first:
                book.add(trigger)
    oracle = {t.id: t for t in first}
    states = {(t.id, leg): TrailState() for t in first for leg in t.legs if t.trail(leg)}
    fired_total, trailing_fired = 0, 0
    trailing_legs = set(states)
    for tick in range(1_500):
        token = rng.choice((INFY, RELIANCE))
        if tick % 3 == 0:
            trigger = _random_mixed(rng, prices[token])
            book.add(trigger)
            oracle[trigger.id] = trigger
            states.update(
                {(trigger.id, leg): TrailState() for leg in trigger.legs if trigger.trail(leg)}
            )
        if tick % 50 == 0 and oracle:
            gone = rng.choice(sorted(oracle))
            assert book.remove(gone) is not None
            trigger = oracle.pop(gone)
            for leg in trigger.legs:
                states.pop((gone, leg), None)
        prices[token] = max(100, prices[token] + rng.choice((-15, -10, -5, 0, 5, 10, 15, 20)))
        ltp = prices[token]
        want = _brute_fire(oracle, states, token, ltp)
        got = {(f.trigger.id, f.leg) for f in book.on_tick(token, ltp)}
        assert got == want, f"seed={seed} tick={tick}"
        fired_total += len(got)
        trailing_fired += len(got & trailing_legs)
        trailing_legs |= set(states)
        for (tid, leg), state in states.items():
            assert book.trail_state(tid, leg) == state, f"seed={seed} tick={tick}"
    assert {t.id for t in book} == set(oracle)
    print(
        f"\nRELIABILITY 2 (trailing, {loader}) seed={seed} fired={fired_total} "
        f"of which trailing stops={trailing_fired}"
    )
    assert trailing_fired > 0
    assert fired_total > trailing_fired


def test_oco_trailing_stop_and_target() -> None:
    """A trailing stop with a fixed target: the stop follows the rise, the target or the
    stop fires, and the other leg goes with it."""
    trail = Trail(Side.SELL, Offset.PRICE, 20, 5)
    book = TriggerBook()
    oco = make_trailing(trail, target=(200, UP))
    book.add(oco)
    assert book.count_for(INFY) == 2
    assert book.on_tick(INFY, 100) == ()
    assert book.trail_state(oco.id, Leg.FIRST) == TrailState(100, 80)
    assert book.on_tick(INFY, 150) == ()
    assert book.trail_state(oco.id, Leg.FIRST) == TrailState(150, 130)
    fired = book.on_tick(INFY, 130)
    assert [(f.trigger.id, f.leg, f.ltp) for f in fired] == [(oco.id, Leg.FIRST, 130)]
    assert len(book) == 0
    assert not book.holds(INFY)
    assert book.on_tick(INFY, 200) == ()


def test_an_instrument_without_trailing_legs_keeps_its_fast_path() -> None:
    """Trailing legs send an instrument's ticks past the fast path; once they are gone its
    bounds are the fixed legs' again, and another instrument's never changed."""
    book = TriggerBook()
    fixed = make_trigger(trigger_price_1=500, instrument_token=RELIANCE)
    book.add(fixed)
    book.add(make_trigger(trigger_price_1=500))
    trailing = make_trailing(Trail(Side.SELL, Offset.TICKS, 2, 5))
    book.add(trailing)
    infy, reliance = book._instruments[INFY], book._instruments[RELIANCE]
    assert (infy.rise_at, infy.fall_at) == (_NO_FALL, _NO_RISE)
    assert (reliance.rise_at, reliance.fall_at) == (500, _NO_FALL)
    assert book.remove(trailing.id) == trailing
    assert infy.trails is None
    assert (infy.rise_at, infy.fall_at) == (500, _NO_FALL)


def test_resume_puts_the_written_stop_back() -> None:
    """After a restart the leg resumes from its written state, never looser; a state its
    terms cannot give is refused and the leg is unchanged."""
    trail = Trail(Side.BUY, Offset.PRICE, 10, 5, step=10)
    book = TriggerBook()
    trigger = make_trailing(trail)
    book.add(trigger)
    assert book.trail_state(trigger.id, Leg.FIRST) == TrailState()
    book.resume_trail(trigger.id, Leg.FIRST, TrailState(90, 100))
    assert book.trail_state(trigger.id, Leg.FIRST) == TrailState(90, 100)
    assert book.on_tick(INFY, 95) == ()  # a higher low: the stop stays
    with pytest.raises(ValueError, match="does not follow"):
        book.resume_trail(trigger.id, Leg.FIRST, TrailState(90, 80))
    assert book.trail_state(trigger.id, Leg.FIRST) == TrailState(90, 100)
    with pytest.raises(ValueError, match="no trailing leg"):
        book.resume_trail(trigger.id, Leg.SECOND, TrailState(90, 100))
    assert [f.trigger.id for f in book.on_tick(INFY, 100)] == [trigger.id]
    assert [(t.id, leg, s) for t, leg, s in book.trail_states()] == []


def test_trail_states_lists_every_held_leg() -> None:
    """What the engine writes periodically: every trailing leg with its stop."""
    book = TriggerBook()
    a = make_trailing(Trail(Side.SELL, Offset.PRICE, 10, 5))
    b = make_trailing(
        Trail(Side.BUY, Offset.PRICE, 10, 5, activation=90), instrument_token=RELIANCE
    )
    book.add_many([a, b])
    book.on_tick(INFY, 100)
    book.on_tick(RELIANCE, 100)
    assert {(t.id, leg, s) for t, leg, s in book.trail_states()} == {
        (a.id, Leg.FIRST, TrailState(100, 90)),
        (b.id, Leg.FIRST, TrailState()),
    }


@st.composite
def _book_ops(draw: st.DrawFn) -> list[tuple]:  # type: ignore[type-arg]
    """Adds (fixed, trailing, oco of a trailing stop and a target), removes, ticks."""
    ops: list[tuple] = []  # type: ignore[type-arg]
    for _ in range(draw(st.integers(1, 40))):
        roll = draw(st.integers(0, 9))
        token = draw(st.sampled_from([INFY, RELIANCE]))
        if roll < 2:
            side = draw(st.sampled_from(Side))
            price = draw(st.integers(1, 400))
            ops.append(
                ("add", make_trigger(side=side, instrument_token=token, trigger_price_1=price))
            )
        elif roll < 5:
            trail = draw(trails(tick=5))
            target = None
            if draw(st.booleans()):
                price = draw(st.integers(1, 400))
                target = (price, UP if trail.side is Side.SELL else DOWN)
            ops.append(
                (
                    "add",
                    make_trailing(
                        trail,
                        target=target,
                        instrument_token=token,
                        trailing_second=draw(st.booleans()),
                    ),
                )
            )
        elif roll < 6:
            ops.append(("remove", draw(st.integers(0, 100))))
        else:
            ops.append(("tick", token, draw(st.integers(1, 400))))
    return ops


@settings(max_examples=1_000)
@given(ops=_book_ops())
def test_book_with_trailing_against_brute_force(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    """Any interleaving of fixed and trailing triggers, removals and ticks on two
    instruments: each tick fires exactly what a leg-by-leg check fires."""
    book, oracle, states = TriggerBook(), {}, {}
    for op in ops:
        if op[0] == "add":
            trigger = op[1]
            book.add(trigger)
            oracle[trigger.id] = trigger
            states.update(
                {(trigger.id, leg): TrailState() for leg in trigger.legs if trigger.trail(leg)}
            )
        elif op[0] == "remove":
            if oracle:
                gone = sorted(oracle)[op[1] % len(oracle)]
                assert book.remove(gone) is not None
                trigger = oracle.pop(gone)
                for leg in trigger.legs:
                    states.pop((gone, leg), None)
        else:
            _, token, ltp = op
            want = _brute_fire(oracle, states, token, ltp)
            assert {(f.trigger.id, f.leg) for f in book.on_tick(token, ltp)} == want
            for (tid, leg), state in states.items():
                assert book.trail_state(tid, leg) == state
    assert {t.id for t in book} == set(oracle)
    assert len(book) == len(oracle)
