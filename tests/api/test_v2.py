"""Trigger model v2 over HTTP: a watched instrument, legs of baskets, time legs, on both stores.

The simulator's master lists NIFTY 50 (an index), INFY (tick 0.10) and the
NFO option BANKNIFTY18JAN23500CE (tick 0.05, lot 40), so every instrument rule
is met with a real master. Each refusal names its field and rule, and the
database is unchanged after it.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from hmt.store.tables import gtt_orders, trigger_events, trigger_orders
from tests.support.system import System, running_system

NIFTY = {"instrument_token": 256265, "exchange": "NSE", "tradingsymbol": "NIFTY 50"}
INFY = {"instrument_token": 408065, "exchange": "NSE", "tradingsymbol": "INFY"}
OPTION = {"instrument_token": 12073986, "exchange": "NFO", "tradingsymbol": "BANKNIFTY18JAN23500CE"}


def _order(instrument: dict[str, Any] = OPTION, **fields: Any) -> dict[str, Any]:
    return {
        **instrument,
        "transaction_type": "BUY",
        "quantity": 40,
        "product": "NRML",
        "order_type": "MARKET",
        **fields,
    }


def _basket() -> dict[str, Any]:
    """When NIFTY 50 falls to 23,800: buy 80 calls at market and sell 40 with a stop."""
    return {
        "watch": NIFTY,
        "trigger_type": "single",
        "legs": [
            {
                "condition": {"price": "23800.00", "direction": "at_or_below"},
                "orders": [
                    _order(quantity=80),
                    _order(
                        transaction_type="SELL",
                        order_type="SL",
                        price="2400.00",
                        trigger_price="2410.00",
                    ),
                ],
            }
        ],
        "on_gap": "skip",
    }


def _future(days: float = 1) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def _rows(system: System) -> tuple[int, int]:
    async def work(conn: Any) -> tuple[int, int]:
        orders = select(func.count()).select_from(gtt_orders)
        events = select(func.count()).select_from(trigger_events)
        return (await conn.execute(orders)).scalar_one(), (await conn.execute(events)).scalar_one()

    result: tuple[int, int] = await system.runtime.db.transaction(work, write=False)
    return result


async def _post(system: System, body: Any, path: str = "/triggers") -> Any:
    return await system.client.post(path, json=body, headers=system.auth())


async def test_a_basket_on_a_watched_index_round_trips(database_url: str) -> None:
    """Create, get, list, edit (a leg's orders replaced as a whole) and cancel a v2 trigger."""
    async with running_system(database_url) as system:
        created = await _post(system, _basket())
        assert created.status_code == 201, created.text
        record = created.json()
        assert record["watch"] == NIFTY
        assert record["on_gap"] == "skip"
        assert record["not_before"] is None
        leg = record["legs"][0]
        assert leg["condition"] == {"price": "23800", "direction": "at_or_below", "at": None}
        assert [o["quantity"] for o in leg["orders"]] == [80, 40]
        stop = leg["orders"][1]
        assert (stop["order_type"], stop["price"], stop["trigger_price"]) == ("SL", "2400", "2410")
        assert all(o["status"] is None and o["attempts"] == 0 for o in leg["orders"])
        # The v1 fields mirror the first order; the threshold is the watched index's.
        assert (record["instrument_token"], record["quantity"]) == (OPTION["instrument_token"], 80)
        assert record["trigger_price_1"] == "23800"
        assert system.runtime.engine.book.get(record["id"]) is not None

        got = await system.trigger(record["id"])
        assert got["legs"] == record["legs"]
        assert got["watch"] == NIFTY
        listed = (await system.client.get("/triggers", headers=system.auth())).json()
        assert [t["legs"] for t in listed] == [record["legs"]]

        edit = {"legs": [{"orders": [_order(quantity=120)]}], "not_before": _future(0.5)}
        edited = await system.client.patch(
            f"/triggers/{record['id']}", json=edit, headers=system.auth()
        )
        assert edited.status_code == 200, edited.text
        changed = edited.json()
        assert [o["quantity"] for o in changed["legs"][0]["orders"]] == [120]
        assert changed["legs"][0]["condition"] == leg["condition"]  # not sent: kept
        assert changed["not_before"] is not None
        assert changed["watch"] == NIFTY
        assert changed["quantity"] == 120

        cancelled = await system.client.delete(f"/triggers/{record['id']}", headers=system.auth())
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert system.runtime.engine.book.get(record["id"]) is None
        kinds = [e["kind"] for e in (await system.trigger(record["id"]))["events"]]
        assert kinds == ["created", "updated", "cancelled"]


async def test_each_order_of_a_fired_basket_shows_its_own_state(database_url: str) -> None:
    """A basket's orders read their rows: one placed, one failed with the broker's words."""
    async with running_system(database_url) as system:
        record = (await _post(system, _basket())).json()
        tags = ["HMTAAAAAAAAAAAAAAAA1", "HMTBBBBBBBBBBBBBBBB1"]

        async def fired(conn: Any) -> None:
            # What the executor leaves after the basket: the rows and the outcome.
            await conn.execute(
                gtt_orders.update()
                .where(gtt_orders.c.id == record["id"])
                .values(status="failed", triggered_leg=1, broker_tag=tags[0], attempts=3)
            )
            await conn.execute(
                trigger_orders.insert(),
                [
                    {
                        "trigger_id": record["id"],
                        "leg": 1,
                        "position": 0,
                        "user_id": "alice",
                        "tag": tags[0],
                        "status": "placed",
                        "order_id": "2601",
                        "attempts": 1,
                        "error_message": None,
                    },
                    {
                        "trigger_id": record["id"],
                        "leg": 1,
                        "position": 1,
                        "user_id": "alice",
                        "tag": tags[1],
                        "status": "failed",
                        "order_id": None,
                        "attempts": 2,
                        "error_message": "Trigger price was rejected",
                    },
                ],
            )

        await system.runtime.db.transaction(fired)
        got = await system.trigger(record["id"])
        states = [
            (o["tag"], o["status"], o["order_id"], o["error_message"], o["attempts"])
            for o in got["legs"][0]["orders"]
        ]
        assert states == [
            (tags[0], "placed", "2601", None, 1),
            (tags[1], "failed", None, "Trigger price was rejected", 2),
        ]


async def test_a_v1_trigger_reads_as_before_plus_its_legs(database_url: str) -> None:
    """v1 fields as before; `legs` shows its one order, `watch` its own instrument."""
    async with running_system(database_url) as system:
        record = await system.create(trigger_price_1="9999.00")
        assert record["trigger_price_1"] == "9999.00" or record["trigger_price_1"] == "9999"
        assert record["watch"] == INFY
        assert record["on_gap"] == "fire"
        (leg,) = record["legs"]
        assert leg["condition"]["direction"] == "at_or_above"  # DESIGN's table: a single BUY
        (one,) = leg["orders"]
        assert (one["instrument_token"], one["quantity"], one["order_type"]) == (
            408065,
            1,
            "MARKET",
        )
        assert one["tag"] is None
        assert one["status"] is None


async def test_a_v2_edit_of_a_v1_trigger_keeps_its_order_and_adds_the_field(
    database_url: str,
) -> None:
    """on_gap on a v1 trigger: the same order and condition, now with the v2 field."""
    async with running_system(database_url) as system:
        record = await system.create(trigger_price_1="9999.00")
        edited = await system.client.patch(
            f"/triggers/{record['id']}", json={"on_gap": "skip"}, headers=system.auth()
        )
        assert edited.status_code == 200, edited.text
        changed = edited.json()
        assert changed["on_gap"] == "skip"
        assert changed["legs"] == record["legs"]
        v1 = ("instrument_token", "transaction_type", "trigger_price_1", "quantity", "order_type")
        assert {k: changed[k] for k in v1} == {k: record[k] for k in v1}
        assert system.runtime.engine.book.get(record["id"]) is not None


async def test_a_time_leg_and_an_oco_of_price_and_time(database_url: str) -> None:
    """A time leg stores its time (shown with its offset) and a null trigger price."""
    async with running_system(database_url) as system:
        at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
        body = {
            "trigger_type": "oco",
            "legs": [
                {
                    "condition": {"price": "1400.00", "direction": "at_or_below"},
                    "orders": [_order(INFY, transaction_type="SELL", quantity=5, product="MIS")],
                },
                {
                    "condition": {"at": at.isoformat()},
                    "orders": [_order(INFY, transaction_type="SELL", quantity=5, product="MIS")],
                },
            ],
            "expires_at": (at + timedelta(days=1)).isoformat(),
        }
        created = await _post(system, body)
        assert created.status_code == 201, created.text
        record = created.json()
        assert record["trigger_price_1"] == "1400"
        assert record["trigger_price_2"] is None
        shown = datetime.fromisoformat(record["legs"][1]["condition"]["at"])
        assert shown == at
        assert shown.utcoffset() is not None
        assert record["legs"][1]["condition"]["price"] is None
        got = await system.trigger(record["id"])
        assert datetime.fromisoformat(got["legs"][1]["condition"]["at"]) == at
        # Legs past the edit's list are dropped: the oco becomes its price leg alone.
        single = await system.client.patch(
            f"/triggers/{record['id']}",
            json={"trigger_type": "single", "legs": [{}]},
            headers=system.auth(),
        )
        assert single.status_code == 200, single.text
        assert single.json()["trigger_type"] == "single"
        assert single.json()["legs"] == record["legs"][:1]
        assert single.json()["trigger_price_2"] is None


async def test_warnings_are_not_errors(database_url: str) -> None:
    """A limit on the far side of its condition and a time on a closed day: 201, warned."""
    async with running_system(database_url) as system:
        far = {
            "trigger_type": "single",
            "legs": [
                {
                    "condition": {"price": "1600.00", "direction": "at_or_above"},
                    "orders": [_order(INFY, quantity=1, order_type="LIMIT", price="1590.00")],
                }
            ],
        }
        created = await _post(system, far)
        assert created.status_code == 201, created.text
        assert any("legs[0].orders[0].price" in w for w in created.json()["warnings"])
        saturday = datetime.now(UTC) + timedelta(days=(5 - datetime.now(UTC).weekday()) % 7 or 7)
        timed = {
            "trigger_type": "single",
            "legs": [
                {
                    "condition": {"at": saturday.replace(hour=9, minute=45).isoformat()},
                    "orders": [_order(INFY, quantity=1)],
                }
            ],
        }
        created = await _post(system, timed)
        assert created.status_code == 201, created.text
        assert any(
            "legs[0].condition.at" in w and "closed" in w for w in created.json()["warnings"]
        )


def _with(path: str, value: Any) -> Any:
    """`_basket()` with the value at `path` (dots and indices) set; `...` deletes it."""
    body = copy.deepcopy(_basket())
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = body
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return body


BAD: list[tuple[Any, str, str]] = [
    (_with("legs.0.orders", [_order()] * 21), "legs[0].orders", "too_long"),
    (_with("legs.0.orders", []), "legs[0].orders", "too_short"),
    (_with("legs.0.condition.direction", ...), "legs[0].condition.direction", "required"),
    (_with("legs.0.orders.0.quantity", 50), "legs[0].orders[0].quantity", "lot_size"),
    (_with("legs.0.orders.0", _order(NIFTY)), "legs[0].orders[0].instrument_token", "tradable"),
    (
        _with("legs.0.orders.0.instrument_token", 999),
        "legs[0].orders[0].instrument_token",
        "unknown",
    ),
    (_with("legs.0.orders.0.tradingsymbol", "X"), "legs[0].orders[0].tradingsymbol", "mismatch"),
    (_with("legs.0.orders.1.price", "2400.01"), "legs[0].orders[1].price", "tick_size"),
    (_with("legs.0.orders.1.price", "2400.001"), "legs[0].orders[1].price", "precision"),
    (_with("legs.0.orders.1.price", ...), "legs[0].orders[1].price", "required"),
    (_with("legs.0.orders.1.trigger_price", ...), "legs[0].orders[1].trigger_price", "required"),
    (
        _with("legs.0.orders.1.trigger_price", "2390.00"),
        "legs[0].orders[1].trigger_price",
        "sl_side",
    ),
    (_with("legs.0.orders.0.price", "10.00"), "legs[0].orders[0].price", "forbidden"),
    (_with("legs.0.orders.0.order_type", "SL-M"), "legs[0].orders[0].trigger_price", "required"),
    (_with("watch.tradingsymbol", "NIFTY BANK"), "watch.tradingsymbol", "mismatch"),
    (_with("watch.instrument_token", 999), "watch.instrument_token", "unknown"),
    (_with("trigger_type", "oco"), "legs", "count"),
    (_with("legs.0.condition", {}), "legs[0].condition", "one_condition"),
    (
        _with("legs.0.condition", {"at": "2020-01-01T09:15:00+05:30"}),
        "legs[0].condition.at",
        "future",
    ),
    (
        _with("legs.0.condition", {"at": "2030-01-01T09:15:00"}),
        "legs[0].condition.at",
        "timezone",
    ),
    (
        _with("not_before", "2030-01-02T00:00:00Z") | {"expires_at": "2030-01-01T00:00:00Z"},
        "not_before",
        "before_expiry",
    ),
    (_with("on_gap", "maybe"), "on_gap", "enum"),
    (
        _with("legs.0.orders.0.price_divisor", 100),
        "legs[0].orders[0].price_divisor",
        "extra_forbidden",
    ),
    (
        {
            **_basket(),
            "trigger_type": "oco",
            "legs": [
                _basket()["legs"][0],
                {
                    "condition": {"price": "23700", "direction": "at_or_above"},
                    "orders": [_order()],
                },
            ],
        },
        "legs[1].condition.price",
        "oco_order",
    ),
    (
        {
            **_basket(),
            "trigger_type": "oco",
            "legs": [_basket()["legs"][0], _basket()["legs"][0]],
        },
        "legs[1].condition.direction",
        "oco_direction",
    ),
]


async def test_every_rule_is_named_and_nothing_is_written(database_url: str) -> None:
    """Each bad v2 body: 422 naming the field and the rule; no row, no event."""
    async with running_system(database_url) as system:
        before = await _rows(system)
        for body, field, rule in BAD:
            response = await _post(system, body)
            assert response.status_code == 422, (field, response.text)
            named = {(e["field"], e["rule"]) for e in response.json()["errors"]}
            assert (field, rule) in named, (field, rule, named)
        assert await _rows(system) == before


async def test_bulk_takes_v2_items_all_or_none(database_url: str) -> None:
    """A v1 item and a v2 item: both written; one bad v2 item: named by index, none written."""
    async with running_system(database_url) as system:
        v1 = {
            **INFY,
            "trigger_type": "single",
            "transaction_type": "BUY",
            "trigger_price_1": "9999.00",
            "quantity": 1,
            "product": "CNC",
        }
        bad = _with("legs.0.orders.0.quantity", 41)
        refused = await _post(system, {"triggers": [v1, bad]}, "/triggers/bulk")
        assert refused.status_code == 422
        fields = {e["field"] for e in refused.json()["errors"]}
        assert fields == {"triggers[1].legs[0].orders[0].quantity"}
        assert await _rows(system) == (0, 0)
        created = await _post(system, {"triggers": [v1, _basket()]}, "/triggers/bulk")
        assert created.status_code == 201, created.text
        records = created.json()["triggers"]
        assert [len(r["legs"][0]["orders"]) for r in records] == [1, 2]
        assert records[1]["watch"] == NIFTY
        assert await _rows(system) == (2, 2)


async def test_edits_of_v2_triggers_are_checked_as_creates(database_url: str) -> None:
    """v1-only fields on a v2 trigger, a bad replacement basket: 422 and the row unchanged."""
    async with running_system(database_url) as system:
        record = (await _post(system, _basket())).json()
        url, me = f"/triggers/{record['id']}", system.auth()
        before = await _rows(system)
        cases = [
            ({"quantity": 80}, "quantity", "v2_trigger"),
            (
                {"legs": [{"orders": [_order(quantity=41)]}]},
                "legs[0].orders[0].quantity",
                "lot_size",
            ),
            (
                {"legs": [{"condition": {"price": "23800"}}]},
                "legs[0].condition.direction",
                "required",
            ),
            ({"trigger_type": "oco"}, "legs", "count"),
            (  # no watch: the option's own price and grid (0.05), not the index's
                {
                    "watch": None,
                    "legs": [{"condition": {"price": "238.03", "direction": "at_or_below"}}],
                },
                "legs[0].condition.price",
                "tick_size",
            ),
        ]
        for body, field, rule in cases:
            response = await system.client.patch(url, json=body, headers=me)
            assert response.status_code == 422, (body, response.text)
            named = {(e["field"], e["rule"]) for e in response.json()["errors"]}
            assert (field, rule) in named, (body, named)
        assert await _rows(system) == before
        assert (await system.trigger(record["id"]))["legs"] == record["legs"]
        shared = await system.client.patch(url, json={"expires_at": _future(3)}, headers=me)
        assert shared.status_code == 200, shared.text
        assert shared.json()["expires_at"] is not None


@pytest.mark.parametrize("order_type", ["SL", "SL-M"])
async def test_the_v1_body_keeps_market_and_limit_only(sqlite_url: str, order_type: str) -> None:
    """Stop orders need a trigger_price, which only a v2 order carries."""
    async with running_system(sqlite_url) as system:
        body = {
            **INFY,
            "trigger_type": "single",
            "transaction_type": "BUY",
            "trigger_price_1": "9999.00",
            "quantity": 1,
            "product": "CNC",
            "order_type": order_type,
        }
        response = await _post(system, body)
        assert response.status_code == 422
        assert response.json()["errors"][0] == {
            "field": "order_type",
            "rule": "v1_order_type",
            "message": response.json()["errors"][0]["message"],
        }
        assert await _rows(system) == (0, 0)
