"""The replay runner: the engine's books over a price path, with fills, charges, P&L."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from hmt.core.candles import Candle
from hmt.core.instruments import Instrument
from hmt.core.model import LegSpec, OrderSpec
from hmt.core.replay import Replay
from hmt.core.types import (
    Cause,
    Exchange,
    InstrumentToken,
    Leg,
    OrderType,
    Product,
    Side,
)
from tests.support.conditions import make_v2
from tests.support.factories import INFY, make_oco, make_trigger

T0 = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)  # 09:30 IST
S = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
MASTER = {INFY: Instrument(INFY, Exchange.NSE, "INFY", 100, 5, 1)}


def outcome_of(replay: Replay, trigger_id: str):  # type: ignore[no-untyped-def]
    return next(o for o in replay.result().outcomes if o.trigger.id == trigger_id)


def test_a_stop_fires_on_the_tick_past_it_and_fills_with_slippage() -> None:
    stop = make_trigger(side=Side.SELL, trigger_price_1=159_000, product=Product.MIS)
    replay = Replay([stop], MASTER, slippage_ticks=2)
    replay.ticks([(INFY, T0, 160_000), (INFY, T0 + S, 159_500), (INFY, T0 + 2 * S, 158_800)])
    replay.tick(INFY, T0 + 3 * S, 158_000)
    got = outcome_of(replay, stop.id)
    assert (got.status, got.leg, got.cause) == ("fired", Leg.FIRST, Cause.PRICE)
    assert (got.fired_at, got.ltp, got.price) == (T0 + 2 * S, 158_800, 158_800)
    (order,) = got.orders
    assert (order.status, order.fill_price) == ("filled", 158_790)  # two 5-paise ticks
    # Sold 10 at 1587.90, marked at 1580.00: the stop saved ₹79.00 before charges.
    assert got.pnl == Decimal("79")
    # Marked at 1588.00 on the fill itself: the slippage is its first adverse excursion.
    assert (got.mfe, got.mae) == (Decimal("79"), Decimal("-1"))
    assert order.charges is not None
    assert order.charges.stt == Decimal("4.00")


def test_a_candle_crosses_a_level_at_the_level() -> None:
    buy = make_trigger(side=Side.BUY, trigger_price_1=160_000, product=Product.MIS)
    replay = Replay([buy], MASTER)
    replay.candle(INFY, Candle(T0, 159_000, 161_000, 158_900, 160_500), MINUTE)
    got = outcome_of(replay, buy.id)
    assert (got.ltp, got.price, got.orders[0].fill_price) == (161_000, 160_000, 160_000)
    assert got.fired_at == T0 + 2 * MINUTE / 4  # the high is the path's third point
    assert not got.ambiguous


def test_a_stop_and_a_target_in_one_candle_fire_the_stop_and_are_flagged() -> None:
    # A SELL oco protects a long: stop 1580 below, target 1620 above. Open 1610: the
    # target (the nearer high, 1625) comes first on the path, yet the stop fires.
    oco = make_oco(Side.SELL, 158_000, 162_000, product=Product.MIS)
    replay = Replay([oco], MASTER)
    replay.candle(INFY, Candle(T0, 161_000, 162_500, 157_500, 160_000), MINUTE)
    got = outcome_of(replay, oco.id)
    assert (got.leg, got.price, got.ambiguous) == (Leg.FIRST, 158_000, True)
    assert got.fired_at == T0 + 2 * MINUTE / 4
    assert len(replay.book) == 0


def test_one_leg_in_the_candle_is_not_ambiguous() -> None:
    oco = make_oco(Side.SELL, 150_000, 162_000, product=Product.MIS)
    replay = Replay([oco], MASTER)
    replay.candle(INFY, Candle(T0, 161_000, 162_500, 157_500, 160_000), MINUTE)
    got = outcome_of(replay, oco.id)
    assert (got.leg, got.price, got.ambiguous) == (Leg.SECOND, 162_000, False)


def test_a_gap_at_the_open_fires_at_the_open() -> None:
    stop = make_trigger(side=Side.SELL, trigger_price_1=159_000, product=Product.MIS)
    replay = Replay([stop], MASTER)
    replay.candle(INFY, Candle(T0, 160_000, 160_500, 159_500, 160_000), MINUTE)
    replay.candle(INFY, Candle(T0 + MINUTE, 158_000, 158_500, 157_000, 157_500), MINUTE)
    got = outcome_of(replay, stop.id)
    assert (got.fired_at, got.price, got.orders[0].fill_price) == (T0 + MINUTE, 158_000, 158_000)


def test_time_legs_not_before_and_expiry_follow_the_prices_own_clock() -> None:
    timed = make_v2([T0 + 10 * S], watch=None, product=Product.MIS)
    later = make_trigger(side=Side.BUY, trigger_price_1=150_000, not_before=T0 + 5 * S)
    gone = make_trigger(side=Side.BUY, trigger_price_1=170_000, expires_at=T0 + 2 * S)
    replay = Replay([timed, later, gone], MASTER)
    replay.tick(INFY, T0, 160_000)
    assert outcome_of(replay, later.id).status == "dormant"
    replay.tick(INFY, T0 + 3 * S, 160_100)
    assert (outcome_of(replay, gone.id).status, outcome_of(replay, gone.id).expired_at) == (
        "expired",
        T0 + 2 * S,
    )
    replay.tick(INFY, T0 + 6 * S, 160_200)  # `later` is armed now and fires at once
    assert outcome_of(replay, later.id).fired_at == T0 + 6 * S
    replay.tick(INFY, T0 + 12 * S, 160_300)
    got = outcome_of(replay, timed.id)
    # At its own time, as the engine's timer fires it, at the last price before it.
    assert (got.cause, got.fired_at, got.ltp) == (Cause.TIME, T0 + 10 * S, 160_200)
    assert got.orders[0].fill_price == 160_200


def test_what_falls_due_between_two_prices_happens_in_time_order() -> None:
    """A time leg due before its trigger's expiry fires, though both fall due between
    the same two prices; one due after the expiry does not."""
    fires = make_v2([T0 + 3 * S], watch=None, expires_at=T0 + 5 * S)
    expires = make_v2([T0 + 7 * S], watch=None, expires_at=T0 + 5 * S)
    replay = Replay([fires, expires], MASTER)
    replay.tick(INFY, T0, 160_000)
    replay.tick(INFY, T0 + 9 * S, 161_000)
    assert (outcome_of(replay, fires.id).status, outcome_of(replay, fires.id).fired_at) == (
        "fired",
        T0 + 3 * S,
    )
    assert outcome_of(replay, expires.id).status == "expired"


def test_a_limit_rests_until_touched_and_a_day_order_dies_at_the_days_end() -> None:
    def basket(limit: int) -> LegSpec:
        return LegSpec(
            orders=(
                OrderSpec(
                    InstrumentToken(INFY), Exchange.NSE, "INFY", Side.BUY, 5, Product.MIS,
                    OrderType.LIMIT, price=limit,
                ),
            )
        )  # fmt: skip

    touched = make_trigger(trigger_price_1=160_000, leg_specs=(basket(159_000),))
    never = make_trigger(trigger_price_1=160_000, leg_specs=(basket(150_000),))
    replay = Replay([touched, never], MASTER)
    for n, price in enumerate((159_500, 160_000, 159_500, 158_800)):
        replay.tick(INFY, T0 + n * S, price)
    assert outcome_of(replay, touched.id).orders[0].fill_price == 158_800  # a jump past it
    assert outcome_of(replay, never.id).orders[0].status == "open"
    replay.tick(INFY, T0 + timedelta(days=1), 158_000)
    assert outcome_of(replay, never.id).orders[0].status == "cancelled"


def test_paused_triggers_are_not_replayed() -> None:
    from hmt.core.lifecycle import Status

    paused = make_trigger(status=Status.PAUSED)
    replay = Replay([paused], MASTER)
    replay.tick(INFY, T0, 170_000)
    assert outcome_of(replay, paused.id).status == "paused"
    assert replay.result().prices == 1


def test_the_equity_curve_is_net_of_charges_once_a_minute() -> None:
    buy = make_trigger(side=Side.BUY, trigger_price_1=160_000, product=Product.MIS)
    replay = Replay([buy], MASTER)
    replay.tick(INFY, T0, 160_000)  # bought 10 at 1600
    replay.tick(INFY, T0 + 10 * S, 161_000)
    replay.tick(INFY, T0 + MINUTE, 159_000)
    got = outcome_of(replay, buy.id)
    (first, second) = replay.result().equity
    cost = got.charges.total
    assert first == (T0, Decimal(100) - cost)  # the minute's last mark: +₹100
    assert second == (T0 + MINUTE, Decimal(-100) - cost)
    assert (got.mae, got.mfe) == (Decimal(-100), Decimal(100))


def test_a_trailing_stop_trails_the_path_and_fires_on_the_way_down() -> None:
    """Trailing legs (issue 14) are the book's: the replay moves them like the engine."""
    from hmt.core.trailing import Offset, Trail

    trail = Trail(Side.SELL, Offset.PRICE, 1_000, 5)  # ₹10 under the best price
    trailing = make_trigger(
        side=Side.SELL, trigger_price_1=0, product=Product.MIS, leg_specs=(LegSpec(trail=trail),)
    )
    replay = Replay([trailing], MASTER)
    for n, price in enumerate((160_000, 161_000, 162_000, 161_500, 161_100)):
        replay.tick(INFY, T0 + n * S, price)
    assert outcome_of(replay, trailing.id).status == "active"  # stop at 1610.00
    state = replay.book.trail_state(trailing.id, Leg.FIRST)
    assert state is not None
    assert state.stop == 161_000
    replay.tick(INFY, T0 + 5 * S, 160_900)
    got = outcome_of(replay, trailing.id)
    assert (got.status, got.fired_at, got.orders[0].fill_price) == ("fired", T0 + 5 * S, 160_900)


@st.composite
def candle_and_levels(draw: st.DrawFn) -> tuple[Candle, int, int]:
    low = draw(st.integers(1_000, 2_000)) * 5
    high = low + draw(st.integers(0, 200)) * 5
    o, c = (draw(st.integers(low // 5, high // 5)) * 5 for _ in range(2))
    stop = draw(st.integers(low // 5 - 20, high // 5 + 20)) * 5
    target = draw(st.integers(low // 5 - 20, high // 5 + 20)) * 5
    return Candle(T0, o, high, low, c), stop, target


@given(candle_and_levels())
def test_a_single_fires_in_a_candle_iff_its_level_is_in_its_range_at_the_level(
    drawn: tuple[Candle, int, int],
) -> None:
    candle, level, _ = drawn
    stop = make_trigger(side=Side.SELL, trigger_price_1=level, product=Product.MIS)
    replay = Replay([stop], MASTER)
    replay.candle(INFY, candle, MINUTE)
    got = outcome_of(replay, stop.id)
    assert (got.status == "fired") == (level >= candle.low)
    if got.status == "fired":
        # At the open when the open is already at or past it; else exactly at the level.
        assert got.price == (candle.open if candle.open <= level else level)


@given(candle_and_levels())
def test_an_oco_is_ambiguous_iff_both_levels_lie_beyond_the_open_inside_the_range(
    drawn: tuple[Candle, int, int],
) -> None:
    candle, stop, target = drawn
    oco = make_oco(Side.SELL, min(stop, target), max(stop, target) + 5, product=Product.MIS)
    low, high = oco.trigger_price_1, oco.threshold(Leg.SECOND)
    replay = Replay([oco], MASTER)
    replay.candle(INFY, candle, MINUTE)
    got = outcome_of(replay, oco.id)
    both = candle.low <= low < candle.open < high <= candle.high
    assert got.ambiguous == both
    if both:
        assert (got.leg, got.price) == (Leg.FIRST, low)
