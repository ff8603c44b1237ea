"""Trailing stops over HTTP (issue 14), on both stores: terms in, terms and state out, the
stop moving with real ticks from the simulator, firing once; every wrong term a 422 naming
its field, and nothing written for it.

INFY's tick is 0.10 in the simulator's master; NIFTY 50 is an index (no grid: 1 wire unit).
"""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import func, select

from hmt.core.types import Leg
from hmt.kite.tags import broker_tag
from hmt.store.tables import gtt_orders, trail_states
from tests.support.eventually import eventually
from tests.support.system import System, running_system

INFY = {"instrument_token": 408065, "exchange": "NSE", "tradingsymbol": "INFY"}
NIFTY = {"instrument_token": 256265, "exchange": "NSE", "tradingsymbol": "NIFTY 50"}


def _sell(**fields: Any) -> dict[str, Any]:
    return {
        **INFY,
        "transaction_type": "SELL",
        "quantity": 1,
        "product": "CNC",
        "order_type": "MARKET",
        **fields,
    }


def trailing(trail: dict[str, Any], **condition: Any) -> dict[str, Any]:
    """A single trailing SELL stop on INFY."""
    return {
        "trigger_type": "single",
        "legs": [{"condition": {"trail": trail, **condition}, "orders": [_sell()]}],
    }


async def _post(system: System, body: Any) -> Any:
    return await system.client.post("/triggers", json=body, headers=system.auth())


async def _count(system: System, table: Any) -> int:
    async def work(conn: Any) -> int:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())

    result: int = await system.runtime.db.transaction(work, write=False)
    return result


async def test_a_trailing_stop_shows_its_terms_moves_live_and_fires_once(database_url: str) -> None:
    async with running_system(database_url) as system:
        system.push(408065, "1500.00")
        created = await _post(system, trailing({"kind": "price", "offset": "5.05", "step": "0.20"}))
        assert created.status_code == 201, created.text
        record = created.json()
        condition = record["legs"][0]["condition"]
        assert condition["price"] is None
        assert condition["direction"] == "at_or_below"
        trail = condition["trail"]
        assert {k: trail[k] for k in ("kind", "offset", "step", "activation", "reference")} == {
            "kind": "price",
            "offset": "5.05",
            "step": "0.2",
            "activation": None,
            "reference": "ltp",
        }
        assert (trail["tick"], trail["side"]) == ("0.1", "SELL")
        assert record["trigger_price_1"] is None

        system.push(408065, "1510.00")

        async def moved() -> bool:
            got = (await system.trigger(record["id"]))["legs"][0]["condition"]["trail"]
            return got["state"] is not None and got["state"]["best"] == "1510"

        await eventually(moved, within=10)
        state = (await system.trigger(record["id"]))["legs"][0]["condition"]["trail"]["state"]
        # 1510 - 5.05 = 1504.95, rounded down to the tick: 1504.90; the first stop sets
        # the step's grid.
        assert state["stop"] == "1504.9"
        assert state["live"] is True
        system.push(408065, "1510.30")  # the stop would move 0.3: the step lets it move 0.2
        await eventually(
            lambda: (
                system.runtime.engine.book.trail_state(record["id"], Leg.FIRST) == (151030, 150510)
            )
        )
        listed = (await system.client.get("/triggers", headers=system.auth())).json()
        assert listed[0]["legs"][0]["condition"]["trail"]["state"]["stop"] == "1505.1"

        system.push(408065, "1505.20")  # above the stop: nothing
        system.push(408065, "1505.10")  # at the stop: fires
        placed = await system.settled(record["id"])
        assert placed["status"] == "placed"
        assert placed["triggered_price"] == "1505.1"
        assert len(system.orders_tagged(broker_tag(record["id"], Leg.FIRST))) == 1
        system.push(408065, "1400.00")
        await eventually(lambda: system.runtime.engine.stats.ticks_processed >= 6)
        assert len(system.orders_tagged(broker_tag(record["id"], Leg.FIRST))) == 1


async def test_a_trailing_stop_beside_a_fixed_target_and_its_edits(database_url: str) -> None:
    """An oco of a trailing stop (basis points, activation) and a fixed target; an edit of
    the quantity keeps the stop where it is, an edit of the trail starts it afresh."""
    async with running_system(database_url) as system:
        system.push(408065, "1500.00")
        body = {
            "trigger_type": "oco",
            "legs": [
                {
                    "condition": {"trail": {"kind": "bps", "offset": 100, "activation": "1505.00"}},
                    "orders": [_sell()],
                },
                {"condition": {"price": "1600.00"}, "orders": [_sell()]},
            ],
        }
        created = await _post(system, body)
        assert created.status_code == 201, created.text
        record = created.json()
        assert record["legs"][1]["condition"]["price"] == "1600"
        assert record["legs"][0]["condition"]["trail"]["offset"] == "100"
        engine = system.runtime.engine
        system.push(408065, "1504.90")  # below the activation: no stop
        await eventually(lambda: engine.stats.ticks_processed >= 2)
        assert engine.book.trail_state(record["id"], Leg.FIRST) == (None, None)
        system.push(408065, "1510.00")  # 1% below 1510 is 1494.90
        await eventually(
            lambda: engine.book.trail_state(record["id"], Leg.FIRST) == (151000, 149490)
        )

        edit = {"legs": [{"orders": [_sell(quantity=2)]}, {}]}
        edited = await system.client.patch(
            f"/triggers/{record['id']}", json=edit, headers=system.auth()
        )
        assert edited.status_code == 200, edited.text
        assert engine.book.trail_state(record["id"], Leg.FIRST) == (151000, 149490)

        edit = {"legs": [{"condition": {"trail": {"kind": "ticks", "offset": 30}}}, {}]}
        edited = await system.client.patch(
            f"/triggers/{record['id']}", json=edit, headers=system.auth()
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["legs"][0]["condition"]["trail"]["kind"] == "ticks"
        assert engine.book.trail_state(record["id"], Leg.FIRST) == (None, None)

        system.push(408065, "1600.00")  # the target
        placed = await system.settled(record["id"])
        assert (placed["status"], placed["triggered_leg"]) == ("placed", 2)


async def test_every_wrong_trail_is_a_422_naming_its_field(database_url: str) -> None:
    async with running_system(database_url) as system:
        base = trailing({"kind": "price", "offset": "5.00"})
        cases: list[tuple[dict[str, Any], str, str]] = []

        def case(change: Any, field: str, rule: str) -> None:
            body = copy.deepcopy(base)
            change(body)
            cases.append((body, field, rule))

        cond = "legs[0].condition"
        case(
            lambda b: b["legs"][0]["condition"]["trail"].update(offset="0"),
            f"{cond}.trail.offset",
            "greater_than",
        )
        case(
            lambda b: b["legs"][0]["condition"]["trail"].update(kind="bps", offset="10000"),
            f"{cond}.trail.offset",
            "bps_range",
        )
        case(
            lambda b: b["legs"][0]["condition"]["trail"].update(kind="ticks", offset="1.5"),
            f"{cond}.trail.offset",
            "integer",
        )
        case(
            lambda b: b["legs"][0]["condition"]["trail"].update(activation="1500.05"),
            f"{cond}.trail.activation",
            "tick_size",
        )
        case(
            lambda b: b["legs"][0]["condition"]["trail"].update(step="0.15"),
            f"{cond}.trail.step",
            "tick_size",
        )
        case(
            lambda b: b["legs"][0]["condition"]["trail"].update(reference="ask"),
            f"{cond}.trail.reference",
            "side",
        )
        case(lambda b: b["legs"][0]["condition"].update(price="1500.00"), cond, "one_condition")
        case(
            lambda b: b["legs"][0]["condition"].update(direction="at_or_above"),
            f"{cond}.direction",
            "trail_side",
        )
        case(
            lambda b: b["legs"][0]["condition"]["trail"].update(kind="yards"),
            f"{cond}.trail.kind",
            "enum",
        )
        case(
            lambda b: b["legs"][0]["condition"]["trail"].update(extra=1),
            f"{cond}.trail.extra",
            "extra_forbidden",
        )

        def two_trails(b: dict[str, Any]) -> None:
            b["trigger_type"] = "oco"
            b["legs"].append(copy.deepcopy(b["legs"][0]))

        case(two_trails, "legs[1].condition.trail", "trail_pair")

        def same_way_target(b: dict[str, Any]) -> None:
            b["trigger_type"] = "oco"
            b["legs"].append(
                {"condition": {"price": "1400.00", "direction": "at_or_below"}, "orders": [_sell()]}
            )

        case(same_way_target, "legs[1].condition.direction", "oco_direction")

        def time_beside(b: dict[str, Any]) -> None:
            b["trigger_type"] = "oco"
            b["legs"].append(
                {"condition": {"at": "2099-01-01T10:00:00+05:30"}, "orders": [_sell()]}
            )

        case(time_beside, "legs[1].condition.at", "trail_pair")

        def watched_index(b: dict[str, Any]) -> None:  # orders on another instrument
            b["watch"] = NIFTY

        case(watched_index, f"{cond}.direction", "required")

        for body, field, rule in cases:
            response = await _post(system, body)
            assert response.status_code == 422, (field, response.text)
            found = {(e["field"], e["rule"]) for e in response.json()["errors"]}
            assert any(f == field and r.startswith(rule) for f, r in found), (field, rule, found)
        assert await _count(system, gtt_orders) == 0
        assert await _count(system, trail_states) == 0

        # On an index (no tick grid) any whole-paisa offset is fine, and a stated
        # direction says which way the stop trails.
        on_index = trailing({"kind": "price", "offset": "12.35"}, direction="at_or_below")
        on_index["watch"] = NIFTY
        created = await _post(system, on_index)
        assert created.status_code == 201, created.text
        assert created.json()["legs"][0]["condition"]["trail"]["tick"] == "0.01"
