"""Paper fills and statuses: every order type, both sides, Kite's rejections and limits."""

from __future__ import annotations

from typing import Any

import pytest

from hmt.sim.broker import Broker
from hmt.sim.errors import KiteError
from hmt.sim.limits import OrderLimits
from hmt.sim.orders import NO_PROTECTION
from hmt.sim.prices import Market
from hmt.sim.universe import Universe
from tests.sim.support import INFY, NIFTY

BUY_SELL = ["BUY", "SELL"]


class Clock:
    """A hand-moved clock, so rate windows are tested without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def market() -> Market:
    return Market(Universe(), clock=lambda: 1_767_000_000.0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def broker(market: Market, clock: Clock) -> Broker:
    market.push_price(INFY, "1500")
    return Broker(
        market.universe,
        market,
        seed=1,
        user_id="SIM001",
        monotonic=clock,
        clock=lambda: 1_767_000_000.0,
    )


def place(broker: Broker, side: str, order_type: str, **extra: Any) -> dict[str, Any]:
    form = {
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": side,
        "order_type": order_type,
        "quantity": "3",
        "product": "CNC",
    }
    form.update({k: str(v) for k, v in extra.items()})
    order_id = broker.place("regular", form)
    return row(broker, order_id)


def row(broker: Broker, order_id: str) -> dict[str, Any]:
    return next(r for r in broker.book() if r["order_id"] == order_id)


def statuses(broker: Broker, order_id: str) -> list[str]:
    return [r["status"] for r in broker.history(order_id)]


@pytest.mark.parametrize("side", BUY_SELL)
def test_market_order_fills_at_last_price_and_shows_as_protected_limit(
    broker: Broker, side: str
) -> None:
    """A MARKET order with protection completes at the LTP, booked as LIMIT tagged mktp."""
    order = place(broker, side, "MARKET", market_protection=2, tag="hmt1")
    assert order["status"] == "COMPLETE"
    assert order["average_price"] == 1500
    assert order["filled_quantity"] == 3
    assert order["order_type"] == "LIMIT"
    assert order["price"] == (1530 if side == "BUY" else 1470)
    assert order["tag"] == "hmt1"
    assert order["tags"] == ["hmt1", "mktp", "mktp:2.00"]
    assert statuses(broker, order["order_id"]) == [
        "PUT ORDER REQ RECEIVED",
        "VALIDATION PENDING",
        "OPEN PENDING",
        "OPEN",
        "COMPLETE",
    ]


@pytest.mark.parametrize("protection", [None, "0"])
@pytest.mark.parametrize("order_type", ["MARKET", "SL-M"])
def test_market_and_slm_without_protection_are_refused(
    broker: Broker, order_type: str, protection: str | None
) -> None:
    """Since April 2026 Kite refuses MARKET and SL-M orders without market protection."""
    extra = {"trigger_price": "1510"} if order_type == "SL-M" else {}
    if protection is not None:
        extra["market_protection"] = protection
    with pytest.raises(KiteError) as caught:
        place(broker, "BUY", order_type, **extra)
    assert (caught.value.error_type, caught.value.status) == ("InputException", 400)
    assert caught.value.message == NO_PROTECTION
    assert broker.book() == []


def test_automatic_protection_is_applied(broker: Broker) -> None:
    """market_protection=-1 (automatic) is accepted and tagged with the percentage used."""
    order = place(broker, "BUY", "MARKET", market_protection=-1)
    assert order["status"] == "COMPLETE"
    assert "mktp" in order["tags"]


@pytest.mark.parametrize(
    ("side", "price", "later", "fill"),
    [("BUY", "1490", "1480", 1490), ("SELL", "1510", "1520", 1510)],
)
def test_limit_rests_until_crossed_then_fills_at_its_price(
    broker: Broker, market: Market, side: str, price: str, later: str, fill: int
) -> None:
    """A LIMIT away from the market is OPEN; when the LTP crosses it, it fills at the limit."""
    order = place(broker, side, "LIMIT", price=price)
    assert order["status"] == "OPEN"
    assert order["pending_quantity"] == 3
    market.push_price(INFY, "1500")
    assert row(broker, order["order_id"])["status"] == "OPEN"
    market.push_price(INFY, later)
    done = row(broker, order["order_id"])
    assert done["status"] == "COMPLETE"
    assert done["average_price"] == fill
    assert done["pending_quantity"] == 0
    assert done["exchange_order_id"] is not None
    assert len(broker.order_trades(order["order_id"])) == 1


@pytest.mark.parametrize(("side", "price"), [("BUY", "1510"), ("SELL", "1490")])
def test_marketable_limit_fills_at_the_last_price(broker: Broker, side: str, price: str) -> None:
    """A LIMIT that crosses the market on entry fills at the LTP (the better price)."""
    order = place(broker, side, "LIMIT", price=price)
    assert order["status"] == "COMPLETE"
    assert order["average_price"] == 1500


@pytest.mark.parametrize(
    ("side", "trigger", "price", "crossing", "fill"),
    [("BUY", "1520", "1525", "1520", 1520), ("SELL", "1480", "1475", "1480", 1480)],
)
def test_sl_waits_for_its_trigger_then_works_as_limit(
    broker: Broker, market: Market, side: str, trigger: str, price: str, crossing: str, fill: int
) -> None:
    """SL is TRIGGER PENDING until the LTP reaches the trigger, then fills as a LIMIT."""
    order = place(broker, side, "SL", trigger_price=trigger, price=price)
    assert order["status"] == "TRIGGER PENDING"
    market.push_price(INFY, "1500")
    assert row(broker, order["order_id"])["status"] == "TRIGGER PENDING"
    market.push_price(INFY, crossing)
    done = row(broker, order["order_id"])
    assert done["status"] == "COMPLETE"
    assert done["average_price"] == fill
    assert statuses(broker, order["order_id"])[-3:] == ["TRIGGER PENDING", "OPEN", "COMPLETE"]


@pytest.mark.parametrize(
    ("side", "trigger", "gap", "rests"),
    [("BUY", "1520", "1530", 1525), ("SELL", "1480", "1470", 1475)],
)
def test_sl_that_gaps_past_its_limit_stays_open(
    broker: Broker, market: Market, side: str, trigger: str, gap: str, rests: int
) -> None:
    """A trigger hit by a gap beyond the limit leaves the order OPEN at its limit price."""
    order = place(broker, side, "SL", trigger_price=trigger, price=str(rests))
    market.push_price(INFY, gap)
    assert row(broker, order["order_id"])["status"] == "OPEN"


@pytest.mark.parametrize(
    ("side", "trigger", "crossing"), [("BUY", "1520", "1521"), ("SELL", "1480", "1479")]
)
def test_slm_fills_at_the_price_that_triggers_it(
    broker: Broker, market: Market, side: str, trigger: str, crossing: str
) -> None:
    """SL-M (with protection) waits for the trigger, then fills at that tick's price."""
    order = place(broker, side, "SL-M", trigger_price=trigger, market_protection=-1)
    assert order["status"] == "TRIGGER PENDING"
    assert order["order_type"] == "SL-M"
    market.push_price(INFY, crossing)
    done = row(broker, order["order_id"])
    assert done["status"] == "COMPLETE"
    assert done["average_price"] == float(crossing)


@pytest.mark.parametrize(
    ("side", "trigger", "message"),
    [
        ("BUY", "1490", "Trigger price for stoploss buy orders should be higher than the last"),
        ("SELL", "1510", "Trigger price for stoploss sell orders should be lower than the last"),
    ],
)
def test_sl_on_the_wrong_side_of_the_market_is_rejected(
    broker: Broker, side: str, trigger: str, message: str
) -> None:
    """A stop whose trigger already holds is REJECTED with Kite's wording."""
    order = place(broker, side, "SL", trigger_price=trigger, price=trigger)
    assert order["status"] == "REJECTED"
    assert order["status_message"].startswith(message)
    assert statuses(broker, order["order_id"]) == [
        "PUT ORDER REQ RECEIVED",
        "VALIDATION PENDING",
        "REJECTED",
    ]


def test_off_grid_price_is_rejected_by_rms(broker: Broker) -> None:
    """A price off the tick grid is accepted by the API and REJECTED by the risk checks."""
    order = place(broker, "BUY", "LIMIT", price="1490.05")
    assert order["status"] == "REJECTED"
    assert "tick size 0.1" in order["status_message"]


def test_ioc_limit_that_cannot_fill_is_cancelled(broker: Broker) -> None:
    """An IOC order that does not fill on entry is CANCELLED at once."""
    order = place(broker, "BUY", "LIMIT", price="1400", validity="IOC")
    assert order["status"] == "CANCELLED"
    assert order["cancelled_quantity"] == 3


def test_cancel_and_modify(broker: Broker, market: Market) -> None:
    """Cancel ends an open order; modify goes through Kite's states and may fill it."""
    first = place(broker, "BUY", "LIMIT", price="1400")
    broker.cancel("regular", first["order_id"])
    cancelled = row(broker, first["order_id"])
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["status_message"] is None
    assert statuses(broker, first["order_id"])[-2:] == ["CANCEL PENDING", "CANCELLED"]
    with pytest.raises(KiteError, match="cannot be cancelled"):
        broker.cancel("regular", first["order_id"])

    second = place(broker, "BUY", "LIMIT", price="1400", tag="keep1")
    broker.modify("regular", second["order_id"], {"price": "1450", "quantity": "5"})
    modified = row(broker, second["order_id"])
    assert modified["status"] == "OPEN"
    assert modified["modified"] is True
    assert (modified["price"], modified["quantity"], modified["tag"]) == (1450, 5, "keep1")
    assert statuses(broker, second["order_id"])[-4:] == [
        "MODIFY VALIDATION PENDING",
        "MODIFY PENDING",
        "MODIFIED",
        "OPEN",
    ]
    broker.modify("regular", second["order_id"], {"price": "1500"})
    assert row(broker, second["order_id"])["status"] == "COMPLETE"
    with pytest.raises(KiteError, match="cannot be modified"):
        broker.modify("regular", second["order_id"], {"price": "1400"})


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("transaction_type", "HOLD", "`transaction_type`"),
        ("quantity", "0", "`quantity`"),
        ("quantity", "two", "`quantity`"),
        ("product", "XYZ", "`product`"),
        ("price", "", "`price`"),
        ("price", "abc", "`price`"),
        ("tag", "not-alphanumeric", "`tag`"),
        ("tag", "x" * 21, "`tag`"),
        ("tradingsymbol", "NOPE", "NSE:NOPE"),
    ],
)
def test_bad_fields_are_input_errors_naming_the_field(
    broker: Broker, field: str, value: str, needle: str
) -> None:
    """Each bad field gives a 400 InputException whose message names it; nothing is booked."""
    form = {
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "BUY",
        "order_type": "LIMIT",
        "quantity": "1",
        "product": "CNC",
        "price": "1500",
    }
    form[field] = value
    with pytest.raises(KiteError) as caught:
        broker.place("regular", form)
    assert caught.value.error_type == "InputException"
    assert needle in caught.value.message
    assert broker.book() == []


def test_indices_and_unmodelled_varieties_are_refused(broker: Broker) -> None:
    """An index cannot be traded, and only the regular variety is modelled."""
    form = {
        "exchange": "NSE",
        "tradingsymbol": "NIFTY 50",
        "transaction_type": "BUY",
        "order_type": "LIMIT",
        "quantity": "1",
        "product": "CNC",
        "price": "25000",
    }
    with pytest.raises(KiteError, match="index"):
        broker.place("regular", form)
    with pytest.raises(KiteError, match="regular variety"):
        broker.place("amo", {**form, "tradingsymbol": "INFY"})
    with pytest.raises(KiteError, match="Invalid `variety`"):
        broker.place("bogus", form)
    assert NIFTY in broker.market.quotes


def test_funds_check_rejects_with_kites_margin_message(market: Market) -> None:
    """With funds set, a BUY beyond them is REJECTED; a cancel gives the block back."""
    market.push_price(INFY, "1500")
    broker = Broker(market.universe, market, seed=1, user_id="SIM001", funds=1_000_000)
    too_big = place(broker, "BUY", "LIMIT", price="1400", quantity=100)
    assert too_big["status"] == "REJECTED"
    assert too_big["status_message"] == (
        "Insufficient funds. Required margin is 140000.00 but available margin is 10000.00. "
        "Check the orderbook for open orders."
    )
    assert too_big["status_message_raw"].startswith("RMS:Margin Exceeds")
    fits = place(broker, "BUY", "LIMIT", price="1400", quantity=5)
    assert fits["status"] == "OPEN"
    assert broker.funds == 1_000_000 - 700_000
    broker.cancel("regular", fits["order_id"])
    assert broker.funds == 1_000_000
    bought = place(broker, "BUY", "MARKET", market_protection=-1, quantity=2)
    assert bought["status"] == "COMPLETE"
    assert broker.funds == 1_000_000 - 300_000


def test_order_rate_limits_answer_429_per_second_and_minute(market: Market, clock: Clock) -> None:
    """Beyond 10 orders in a second (and the per-minute cap) Kite answers 429."""
    broker = Broker(
        market.universe,
        market,
        seed=1,
        user_id="SIM001",
        monotonic=clock,
        limits=OrderLimits(per_second=10, per_minute=15, per_day=3000),
    )
    for _ in range(10):
        place(broker, "BUY", "LIMIT", price="1400")
    with pytest.raises(KiteError) as caught:
        place(broker, "BUY", "LIMIT", price="1400")
    assert (caught.value.status, caught.value.error_type) == (429, "NetworkException")
    clock.now += 1.0
    for _ in range(5):
        place(broker, "BUY", "LIMIT", price="1400")
    with pytest.raises(KiteError, match="Too many requests"):
        place(broker, "BUY", "LIMIT", price="1400")
    clock.now += 60.0
    place(broker, "BUY", "LIMIT", price="1400")
    assert len(broker.book()) == 16


def test_order_ids_are_19_digit_strings_fixed_by_the_seed(market: Market) -> None:
    """Ids look like Kite's newer ones (19 digits, above 2**53) and repeat for a seed."""

    def ids(seed: int) -> list[str]:
        broker = Broker(market.universe, market, seed=seed, user_id="SIM001")
        return [place(broker, "BUY", "LIMIT", price="1400")["order_id"] for _ in range(3)]

    first = ids(5)
    assert first == ids(5)
    assert first != ids(6)
    assert all(len(i) == 19 and i.isdigit() and int(i) > 2**53 for i in first)
    assert first == sorted(first)


def test_updates_go_out_on_state_changes_not_on_placement(broker: Broker, market: Market) -> None:
    """Listeners hear COMPLETE / CANCELLED / triggers, not the placement of an open order."""
    heard: list[str] = []
    broker.listeners.append(lambda r: heard.append(r["status"]))
    order = place(broker, "BUY", "LIMIT", price="1400")
    assert heard == []
    market.push_price(INFY, "1400")
    assert heard == ["COMPLETE"]
    assert row(broker, order["order_id"])["status"] == "COMPLETE"


@pytest.mark.parametrize(
    ("side", "trigger", "limit", "gap"),
    [("BUY", "1520", "1525", "1530"), ("SELL", "1480", "1475", "1470")],
)
def test_triggered_ioc_stop_fills_at_once_or_is_cancelled(
    broker: Broker, market: Market, side: str, trigger: str, limit: str, gap: str
) -> None:
    """An IOC SL waits for its trigger; a gap past its limit then cancels it, while an
    IOC SL-M fills at the triggering price."""
    sl = place(broker, side, "SL", trigger_price=trigger, price=limit, validity="IOC")
    slm = place(broker, side, "SL-M", trigger_price=trigger, market_protection=-1, validity="IOC")
    assert sl["status"] == slm["status"] == "TRIGGER PENDING"
    market.push_price(INFY, gap)
    cancelled = row(broker, sl["order_id"])
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["cancelled_quantity"] == 3
    assert statuses(broker, sl["order_id"])[-3:] == ["TRIGGER PENDING", "OPEN", "CANCELLED"]
    filled = row(broker, slm["order_id"])
    assert filled["status"] == "COMPLETE"
    assert filled["average_price"] == float(gap)


@pytest.mark.parametrize(
    ("order_type", "extra", "needle"),
    [
        ("SL", {"price": "1525"}, "Missing `trigger_price`"),
        ("SL", {"trigger_price": "1520"}, "Missing `price`"),
        ("SL-M", {"market_protection": "-1"}, "Missing `trigger_price`"),
    ],
)
def test_stops_without_their_prices_are_input_errors(
    broker: Broker, order_type: str, extra: dict[str, str], needle: str
) -> None:
    """Kite's API refuses a stop without the prices its type needs: 400, nothing booked."""
    with pytest.raises(KiteError) as caught:
        place(broker, "BUY", order_type, **extra)
    assert caught.value.error_type == "InputException"
    assert caught.value.status == 400
    assert needle in caught.value.message
    assert broker.book() == []


@pytest.mark.parametrize(("side", "limit"), [("BUY", "1515"), ("SELL", "1485")])
def test_sl_limit_beyond_its_trigger_is_rejected(broker: Broker, side: str, limit: str) -> None:
    """An SL whose limit is on the wrong side of its trigger is REJECTED by the RMS."""
    trigger = "1520" if side == "BUY" else "1480"
    order = place(broker, side, "SL", trigger_price=trigger, price=limit)
    assert order["status"] == "REJECTED"
    assert "Limit price for stoploss" in order["status_message"]
