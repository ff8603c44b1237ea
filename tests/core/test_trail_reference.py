"""Issue 14's engine-facing core: trails on the bid or the ask, and the blind-spot rule.

Legs trailing the bid (SELL) or the ask (BUY) are moved by `TriggerBook.on_depth` and
checked against the LTP on every tick; with `depth` set an LTP-only tick leaves them
where they are. Checked against `Trail.advance` one stop at a time. The blind-spot rule
(`trail_gaps.touched`) against its statement.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hmt.core.book import TriggerBook
from hmt.core.gaps import DayRange
from hmt.core.trail_gaps import touched
from hmt.core.trailing import Offset, Reference, Trail, TrailState
from hmt.core.types import Leg, Side
from tests.support.factories import INFY
from tests.support.trailing import make_trailing


def test_a_reference_must_fit_the_side() -> None:
    Trail(Side.SELL, Offset.PRICE, 10, 5, reference=Reference.BID)
    Trail(Side.BUY, Offset.PRICE, 10, 5, reference=Reference.ASK)
    with pytest.raises(ValueError, match="reference"):
        Trail(Side.SELL, Offset.PRICE, 10, 5, reference=Reference.ASK)
    with pytest.raises(ValueError, match="reference"):
        Trail(Side.BUY, Offset.PRICE, 10, 5, reference=Reference.BID)


quotes = st.lists(
    st.tuples(st.integers(50, 150), st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=40
)


@given(
    offset=st.integers(1, 20),
    step=st.none() | st.integers(1, 3).map(lambda k: 5 * k),
    ticks=quotes,
)
@settings(max_examples=150, deadline=None)
def test_bid_and_ask_trails_follow_the_depth_and_fire_on_the_ltp(
    offset: int, step: int | None, ticks: list[tuple[int, int, int]]
) -> None:
    """Each tick is an LTP (`on_tick`) then its depth (`on_depth`): the bid is under the
    LTP, the ask over it. A bid trail and an LTP trail of the same terms side by side,
    and an ask trail, each moved as `Trail.advance` says with its own reference."""
    sell_bid = Trail(Side.SELL, Offset.PRICE, offset * 5, 5, step=step, reference=Reference.BID)
    sell_ltp = Trail(Side.SELL, Offset.PRICE, offset * 5, 5, step=step)
    buy_ask = Trail(Side.BUY, Offset.PRICE, offset * 5, 5, step=step, reference=Reference.ASK)
    made = [make_trailing(trail) for trail in (sell_bid, sell_ltp, buy_ask)]
    book = TriggerBook()
    book.depth = True
    for trigger in made:
        book.add(trigger)
    model = dict.fromkeys((t.id for t in made), TrailState())
    fired_model: set[str] = set()
    fired: set[str] = set()
    for base, down, up in ticks:
        ltp, bid, ask = base * 5, (base - down) * 5, (base + up) * 5
        fired |= {f.trigger.id for f in book.on_tick(INFY, ltp)}
        fired |= {f.trigger.id for f in book.on_depth(INFY, ltp, bid, ask)}
        for trigger, trail in zip(made, (sell_bid, sell_ltp, buy_ask), strict=True):
            if trigger.id in fired_model:
                continue
            # The LTP-only tick: an LTP trail moves and fires; a depth trail only fires.
            if trail.reference is Reference.LTP:
                model[trigger.id] = trail.advance(model[trigger.id], ltp)
            if trail.fires(model[trigger.id], ltp):
                fired_model.add(trigger.id)
                continue
            ref = {Reference.BID: bid, Reference.ASK: ask, Reference.LTP: ltp}[trail.reference]
            model[trigger.id] = trail.advance(model[trigger.id], ref)
            if trail.fires(model[trigger.id], ltp):
                fired_model.add(trigger.id)
        assert fired == fired_model
        for trigger in made:
            if trigger.id not in fired:
                assert book.trail_state(trigger.id, Leg.FIRST) == model[trigger.id]


def test_without_depth_a_bid_trail_follows_the_ltp() -> None:
    """LTP or quote mode: no bid exists, the LTP moves the leg (docs/triggers.md)."""
    trail = Trail(Side.SELL, Offset.PRICE, 50, 5, reference=Reference.BID)
    trigger = make_trailing(trail)
    book = TriggerBook()
    book.add(trigger)
    assert book.on_tick(INFY, 1_000) == ()
    assert book.trail_state(trigger.id, Leg.FIRST) == (1_000, 950)
    book.depth = True
    assert book.on_tick(INFY, 1_100) == ()  # with depth: an LTP-only tick does not move it
    assert book.trail_state(trigger.id, Leg.FIRST) == (1_000, 950)


def test_an_empty_side_of_the_depth_leaves_the_stop_where_it_is() -> None:
    trail = Trail(Side.SELL, Offset.PRICE, 50, 5, reference=Reference.BID)
    trigger = make_trailing(trail)
    book = TriggerBook()
    book.depth = True
    book.add(trigger)
    book.on_depth(INFY, 1_000, 995, 1_000)
    assert book.trail_state(trigger.id, Leg.FIRST) == (995, 945)
    book.on_depth(INFY, 1_200, 0, 1_200)  # no bid at all
    assert book.trail_state(trigger.id, Leg.FIRST) == (995, 945)
    (fired,) = book.on_depth(INFY, 945, 0, 950)
    assert fired.trigger.id == trigger.id


@given(
    side=st.sampled_from(Side),
    stop=st.integers(80, 120),
    before=st.tuples(st.integers(100, 130), st.integers(70, 100)),
    after=st.tuples(st.integers(0, 40), st.integers(0, 40)),
)
def test_a_blind_spot_touches_a_stop_only_by_a_new_extreme_past_it(
    side: Side, stop: int, before: tuple[int, int], after: tuple[int, int]
) -> None:
    """SELL: the day's low fell during the blind spot to the stop or below it; BUY: the
    high rose to it or above. The other extreme says nothing."""
    seen = DayRange(*before)
    now = DayRange(seen.high + after[0], seen.low - after[1])
    trail = Trail(side, Offset.PRICE, 5, 1)
    got = touched(trail, stop, seen, now)
    if side is Side.SELL:
        want = now.low if now.low < seen.low and now.low <= stop else None
    else:
        want = now.high if now.high > seen.high and now.high >= stop else None
    assert got == want
    # The high (for a SELL stop) is never a touch, however far it went.
    far = (
        DayRange(seen.high + 1_000, seen.low)
        if side is Side.SELL
        else DayRange(seen.high, seen.low - 1_000)
    )
    assert touched(trail, stop, seen, far) is None


@given(prices=st.lists(st.integers(80, 120), min_size=1, max_size=30))
@settings(max_examples=100, deadline=None)
def test_moved_trails_lists_every_leg_whose_state_changed_and_only_after_it_changed(
    prices: list[int],
) -> None:
    """After each tick, every held leg whose state differs from the one at the previous
    call is listed (a superset is allowed: a class that moved lists all its legs), and a
    tick that changes no state lists nothing."""
    trails = [
        Trail(Side.SELL, Offset.PRICE, 5 * k, 5, activation=a)
        for k, a in ((1, None), (2, 500), (3, None), (4, 550))
    ]
    book = TriggerBook()
    made = [make_trailing(trail) for trail in trails]
    for trigger in made:
        book.add(trigger)
    seen = {t.id: book.trail_state(t.id, Leg.FIRST) for t in made}
    book.moved_trails()
    for price in prices:
        book.on_tick(INFY, price * 5)
        listed = {trigger.id for trigger, _ in book.moved_trails()}
        now = {t.id: book.trail_state(t.id, Leg.FIRST) for t in made}
        changed = {i for i, state in now.items() if state is not None and state != seen[i]}
        assert changed <= listed
        if not changed:
            assert listed == set()
        seen = now
