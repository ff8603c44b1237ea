"""Validation names the field and the rule for every way a trigger can be wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from hmt.core.errors import InvalidTrigger
from hmt.core.lifecycle import Status
from hmt.core.prices import to_decimal, to_units
from hmt.core.types import OrderType, Side, TriggerType
from hmt.core.validation import check, validate
from tests.support.factories import make_oco, make_trigger

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


def test_tick_size_multiples() -> None:
    """Prices off the tick grid are refused when the tick size is known."""
    assert rules(make_trigger(trigger_price_1=160_003), tick_size=5) == {
        ("trigger_price_1", "tick_size")
    }
    assert rules(make_trigger(trigger_price_1=160_005), tick_size=5) == set()
    assert rules(make_trigger(trigger_price_1=160_003)) == set()


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
