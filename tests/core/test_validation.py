"""Validation names the field and the rule for every way a trigger can be wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from hmt.core.errors import InvalidTrigger
from hmt.core.instruments import Instrument
from hmt.core.lifecycle import Status
from hmt.core.prices import to_decimal, to_units
from hmt.core.types import Exchange, InstrumentToken, OrderType, Product, Side, TriggerType
from hmt.core.validation import check, unknown_instrument, validate
from tests.support.factories import INFY, make_oco, make_trigger

NOW = datetime(2026, 11, 24, 9, 15, tzinfo=UTC)


def rules(trigger, **kwargs) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(e.field, e.rule) for e in check(trigger, **kwargs)}


def test_valid_triggers_pass() -> None:
    """A plain single and a well-ordered oco of each side are valid."""
    assert rules(make_trigger()) == set()
    assert rules(make_oco(Side.SELL, 240_000, 280_000)) == set()
    assert rules(make_oco(Side.BUY, 280_000, 240_000)) == set()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"quantity": 0}, ("quantity", "minimum")),
        ({"price_divisor": 0}, ("price_divisor", "positive")),
        ({"trigger_price_1": 0}, ("trigger_price_1", "positive")),
        ({"trigger_price_1": -5}, ("trigger_price_1", "positive")),
        ({"trigger_price_2": 100}, ("trigger_price_2", "forbidden")),
        ({"limit_price_1": 100}, ("limit_price_1", "forbidden")),
        ({"order_type": OrderType.LIMIT}, ("limit_price_1", "required")),
        ({"order_type": OrderType.LIMIT, "limit_price_1": 0}, ("limit_price_1", "positive")),
        ({"trigger_type": TriggerType.OCO}, ("trigger_price_2", "required")),
        ({"tradingsymbol": " "}, ("tradingsymbol", "required")),
        ({"instrument_token": 0}, ("instrument_token", "positive")),
        ({"status": Status.PLACED}, ("status", "initial")),
        ({"expires_at": datetime(2026, 1, 1)}, ("expires_at", "timezone")),  # noqa: DTZ001
        ({"expires_at": NOW - timedelta(seconds=1)}, ("expires_at", "future")),
    ],
)
def test_each_rule_is_named(overrides, expected) -> None:  # type: ignore[no-untyped-def]
    """Each broken rule is reported with its field and rule name."""
    assert expected in rules(make_trigger(**overrides), now=NOW)


def test_oco_prices_must_not_overlap() -> None:
    """SELL needs stop < target, BUY needs stop > target; equal prices are refused too."""
    assert ("trigger_price_2", "oco_order") in rules(make_oco(Side.SELL, 280_000, 240_000))
    assert ("trigger_price_2", "oco_order") in rules(make_oco(Side.BUY, 240_000, 280_000))
    assert ("trigger_price_2", "oco_order") in rules(make_oco(Side.SELL, 250_000, 250_000))


def test_limit_oco_needs_both_limits() -> None:
    """A LIMIT oco needs a limit price for each leg."""
    oco = make_oco(Side.SELL, 240_000, 280_000, order_type=OrderType.LIMIT, limit_price_1=239_000)
    assert rules(oco) == {("limit_price_2", "required")}
    single = make_trigger(limit_price_2=5, order_type=OrderType.LIMIT, limit_price_1=160_000)
    assert rules(single) == {("limit_price_2", "forbidden")}


INFY_LISTED = Instrument(
    id=INFY, exchange=Exchange.NSE, tradingsymbol="INFY", price_divisor=100, tick_size=5, lot_size=1
)
OPTION = Instrument(
    id=InstrumentToken(12073986),
    exchange=Exchange.NFO,
    tradingsymbol="BANKNIFTY18JAN23500CE",
    price_divisor=100,
    tick_size=5,
    lot_size=40,
)
NIFTY = Instrument(
    id=InstrumentToken(256265),
    exchange=Exchange.NSE,
    tradingsymbol="NIFTY 50",
    price_divisor=100,
    tick_size=0,
    lot_size=0,
    tradable=False,
)


def on_option(**overrides):  # type: ignore[no-untyped-def]
    fields = {
        "instrument_token": OPTION.id,
        "exchange": Exchange.NFO,
        "tradingsymbol": OPTION.tradingsymbol,
        "quantity": 80,
        "product": Product.NRML,
        "trigger_price_1": 250_000,
    }
    return make_trigger(**{**fields, **overrides})


def test_tick_size_multiples() -> None:
    """Prices off the instrument's tick grid are refused, each price by name; none without one."""
    assert rules(make_trigger(trigger_price_1=150_003), instrument=INFY_LISTED) == {
        ("trigger_price_1", "tick_size")
    }
    assert rules(make_trigger(trigger_price_1=150_005), instrument=INFY_LISTED) == set()
    assert rules(make_trigger(trigger_price_1=150_003)) == set()
    limit = make_oco(
        Side.SELL,
        150_000,
        160_001,
        order_type=OrderType.LIMIT,
        limit_price_1=149_999,
        limit_price_2=160_000,
    )
    assert rules(limit, instrument=INFY_LISTED) == {
        ("trigger_price_2", "tick_size"),
        ("limit_price_1", "tick_size"),
    }


def test_the_tick_size_error_says_the_tick_and_the_nearest_prices() -> None:
    """A trader reads the tick in rupees and the two valid prices around theirs."""
    (error,) = check(make_trigger(trigger_price_1=150_003), instrument=INFY_LISTED)
    assert error.message == (
        "1500.03 is not a multiple of INFY's tick size 0.05: "
        "the nearest prices are 1500.00 and 1500.05"
    )


def test_quantity_must_be_a_multiple_of_the_lot_size() -> None:
    """An F&O quantity off its lot size is refused; lot multiples pass; cash equity has lot 1."""
    assert rules(on_option(quantity=50), instrument=OPTION) == {("quantity", "lot_size")}
    assert rules(on_option(quantity=80), instrument=OPTION) == set()
    assert rules(make_trigger(quantity=7), instrument=INFY_LISTED) == set()
    (error,) = check(on_option(quantity=1), instrument=OPTION)
    assert error.message == "must be a multiple of the lot size (40)"


def test_token_symbol_and_exchange_must_name_the_listed_instrument() -> None:
    """Another symbol or another exchange than the master lists for the token is refused."""
    assert rules(make_trigger(tradingsymbol="NOSUCH"), instrument=INFY_LISTED) == {
        ("tradingsymbol", "mismatch")
    }
    assert rules(make_trigger(tradingsymbol="RELIANCE"), instrument=INFY_LISTED) == {
        ("tradingsymbol", "mismatch")
    }
    assert rules(make_trigger(exchange=Exchange.BSE), instrument=INFY_LISTED) == {
        ("exchange", "mismatch")
    }
    (error,) = check(make_trigger(tradingsymbol="NOSUCH"), instrument=INFY_LISTED)
    assert error.message == "instrument 408065 is NSE:INFY, not NOSUCH"
    assert rules(make_trigger(tradingsymbol="INFY"), instrument=INFY_LISTED) == set()


def test_prices_must_be_in_the_instruments_unit() -> None:
    """A trigger whose divisor is not its instrument's is refused, naming `price_divisor`."""
    assert rules(make_trigger(price_divisor=10_000), instrument=INFY_LISTED) == {
        ("price_divisor", "mismatch")
    }
    assert rules(make_trigger(price_divisor=10_000)) == set()  # no instrument: nothing to compare


def test_an_index_is_not_tradable_and_another_ids_entry_proves_nothing() -> None:
    """An index is refused; an instrument for another id reports the trigger's id unknown."""
    index = make_trigger(instrument_token=NIFTY.id, tradingsymbol="NIFTY 50")
    assert rules(index, instrument=NIFTY) == {("instrument_token", "tradable")}
    assert rules(make_trigger(), instrument=OPTION) == {("instrument_token", "unknown")}
    assert unknown_instrument(5).field == "instrument_token"


def test_validate_raises_with_every_error() -> None:
    """`validate` raises one error carrying all broken rules, and its text names them."""
    with pytest.raises(InvalidTrigger) as info:
        validate(make_trigger(quantity=0, trigger_price_1=0))
    assert {e.field for e in info.value.errors} == {"quantity", "trigger_price_1"}
    assert "quantity: must be at least 1 [minimum]" in str(info.value)
    trigger = make_trigger()
    assert validate(trigger, now=NOW) is trigger


def test_prices_convert_exactly() -> None:
    """Decimal prices become wire units exactly, and over-precise ones are refused."""
    assert to_units("1600.05", 100) == 160_005
    assert to_units(Decimal("83.2525"), 10_000_000) == 832_525_000
    assert to_decimal(160_005, 100) == Decimal("1600.05")
    for bad, rule in [("1600.055", "precision"), ("abc", "number"), ("NaN", "number")]:
        with pytest.raises(InvalidTrigger) as info:
            to_units(bad, 100, field="trigger_price_1")
        assert [(e.field, e.rule) for e in info.value.errors] == [("trigger_price_1", rule)]
