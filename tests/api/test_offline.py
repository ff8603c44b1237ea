"""Triggers from a file in the API's request format, refused as the API's 422 would name them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hmt.api.offline import parse_triggers
from hmt.core.errors import InvalidTrigger
from hmt.core.instruments import Instrument
from hmt.core.types import Exchange, InstrumentToken, TriggerType

INFY = InstrumentToken(408065)
NIFTY = InstrumentToken(256265)
MASTER = {
    INFY: Instrument(INFY, Exchange.NSE, "INFY", 100, 5, 1),
    NIFTY: Instrument(NIFTY, Exchange.NSE, "NIFTY 50", 100, 5, 0, tradable=False),
}
V1: dict[str, Any] = {
    "instrument_token": 408065,
    "exchange": "NSE",
    "tradingsymbol": "INFY",
    "trigger_type": "single",
    "transaction_type": "BUY",
    "trigger_price_1": "1600.05",
    "quantity": 10,
    "product": "CNC",
}


def problems(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidTrigger) as caught:
        parse_triggers(json.dumps(document), MASTER)
    return [(e.field, e.rule) for e in caught.value.errors]


def test_a_body_a_list_and_the_bulk_envelope_are_read_with_stable_ids() -> None:
    assert [t.id for t in parse_triggers(json.dumps(V1), MASTER)] == ["t1"]
    got = parse_triggers(json.dumps({"triggers": [V1, {**V1, "trigger_price_1": "1500"}]}), MASTER)
    assert [(t.id, t.trigger_price_1) for t in got] == [("t1", 160005), ("t2", 150000)]


def test_every_bad_field_of_every_item_is_named_like_the_bulk_422() -> None:
    got = problems([V1, {**V1, "quantity": 0, "trigger_type": "both"}, {**V1, "paused": "x"}])
    assert ("triggers[1].quantity", "greater_than_equal") in got
    assert ("triggers[1].trigger_type", "enum") in got
    assert ("triggers[2].paused", "bool_parsing") in got
    assert not [field for field, _ in got if field.startswith("triggers[0]")]


def test_the_master_refuses_unknown_and_mismatched_instruments_and_off_tick_prices() -> None:
    assert problems([{**V1, "instrument_token": 1}]) == [
        ("triggers[0].instrument_token", "unknown")
    ]
    assert problems([{**V1, "tradingsymbol": "TCS"}]) == [("triggers[0].tradingsymbol", "mismatch")]
    assert ("triggers[0].trigger_price_1", "tick_size") in problems(
        [{**V1, "trigger_price_1": "1600.01"}]
    )


def test_a_v2_body_is_checked_order_by_order() -> None:
    body = {
        "trigger_type": "oco",
        "watch": {"instrument_token": 256265, "exchange": "NSE", "tradingsymbol": "NIFTY 50"},
        "legs": [
            {
                "condition": {"price": "24000", "direction": "at_or_below"},
                "orders": [{**_order(), "instrument_token": 5}],
            },
            {"condition": {"price": "25000", "direction": "at_or_above"}, "orders": [_order()]},
        ],
    }
    assert problems(body) == [("triggers[0].legs[0].orders[0].instrument_token", "unknown")]
    body["legs"][0]["orders"] = [_order()]
    (trigger,) = parse_triggers(json.dumps(body), MASTER)
    assert (trigger.trigger_type, trigger.watched) == (TriggerType.OCO, NIFTY)


def _order() -> dict[str, Any]:
    return {
        "instrument_token": 408065,
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "SELL",
        "quantity": 10,
        "product": "MIS",
    }


def test_not_json_is_named_with_its_position() -> None:
    with pytest.raises(InvalidTrigger, match="line 1 column 2"):
        parse_triggers("[x", MASTER)
