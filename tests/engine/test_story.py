"""The terminal's and the notices' words for a fire and its outcome."""

from __future__ import annotations

from hmt.core.model import Fired
from hmt.core.notices import NoticeKind
from hmt.core.rules import order_for
from hmt.core.types import Cause, Leg, OrderType
from hmt.engine import story
from tests.support.factories import make_trigger


def test_a_price_fire_and_its_placed_order() -> None:
    trigger = make_trigger(order_type=OrderType.LIMIT, limit_price_1=160_050)
    line, notice = story.fired(Fired(trigger, Leg.FIRST, 160_005))
    assert line == "fired INFY: BUY 10 at ltp 1600.05 (price, leg 1)"
    assert (notice.kind, notice.user_id, notice.trigger_id) == (
        NoticeKind.FIRED,
        "alice",
        trigger.id,
    )
    intent = order_for(trigger, Leg.FIRST, "HMTTAG")
    line, notice = story.settled(intent, True, "250101000001", None, 3.25, "alice")
    assert line == "placed INFY: BUY 10 LIMIT at 1600.50, order 250101000001, 3.2 ms after the fire"
    assert notice.kind is NoticeKind.PLACED
    assert notice.title == "hmt: placed INFY"


def test_a_failed_order_carries_the_brokers_message() -> None:
    trigger = make_trigger()
    intent = order_for(trigger, Leg.FIRST, "HMTTAG")
    line, notice = story.settled(intent, False, None, "Insufficient funds", None, "alice")
    assert line == "failed INFY: BUY 10 MARKET: Insufficient funds"
    assert notice.kind is NoticeKind.FAILED
    assert "Insufficient funds" in notice.body


def test_gap_and_time_fires_and_a_skipped_gap() -> None:
    trigger = make_trigger()
    _, gap = story.fired(Fired(trigger, Leg.FIRST, 154_000, Cause.GAP))
    assert gap.kind is NoticeKind.GAP_FIRED
    assert gap.title == "hmt: missed touch, fired INFY"
    line, timed = story.fired(Fired(trigger, Leg.FIRST, 0, Cause.TIME))
    assert "at its time" in line
    assert timed.kind is NoticeKind.FIRED
    skipped = story.skipped(trigger, Leg.FIRST)
    assert skipped.kind is NoticeKind.GAP_SKIPPED
    assert "on_gap=skip" in skipped.body
