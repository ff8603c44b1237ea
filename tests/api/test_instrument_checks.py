"""Creates and edits are checked against the broker's instrument master (here the simulator's).

The token, exchange and symbol must name one instrument; prices sit on its
tick grid; an F&O quantity is a whole number of lots. Each refusal is a 422
naming the field and the rule, and nothing is written.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from hmt.sim.simulator import Simulator
from hmt.store import tables
from tests.support.eventually import eventually
from tests.support.system import System, running_system

INFY, RELIANCE, ADANIPORTS = 408065, 738561, 3861249  # ADANIPORTS: tick 0.05 in the fixture
OPTION = 12073986  # NFO BANKNIFTY18JAN23500CE, lot 40, from instruments_all.csv
OPTION_BODY = {
    "instrument_token": OPTION,
    "exchange": "NFO",
    "tradingsymbol": "BANKNIFTY18JAN23500CE",
    "product": "NRML",
    "trigger_price_1": "2600.00",
    "quantity": 80,
}
BASE = {
    "instrument_token": INFY,
    "exchange": "NSE",
    "tradingsymbol": "INFY",
    "trigger_type": "single",
    "transaction_type": "BUY",
    "trigger_price_1": "1700.00",
    "quantity": 1,
    "product": "CNC",
}


async def counts(system: System) -> tuple[int, int]:
    """Rows in the trigger table and the event table."""

    async def work(conn: Any) -> tuple[int, int]:
        triggers = (await conn.execute(select(func.count()).select_from(tables.gtt_orders))).one()
        events = (await conn.execute(select(func.count()).select_from(tables.trigger_events))).one()
        return int(triggers[0]), int(events[0])

    result: tuple[int, int] = await system.runtime.db.transaction(work, write=False)
    return result


async def units(system: System) -> tuple[int, Decimal | None, int | None]:
    """The one trigger row's price divisor, tick size and lot size."""

    async def work(conn: Any) -> Any:
        c = tables.gtt_orders.c
        return (await conn.execute(select(c.price_divisor, c.tick_size, c.lot_size))).one()

    divisor, tick, lot = await system.runtime.db.transaction(work, write=False)
    return divisor, None if tick is None else Decimal(tick), lot


async def refused(system: System, body: dict[str, Any]) -> set[tuple[str, str]]:
    response = await system.client.post("/triggers", json={**BASE, **body}, headers=system.auth())
    assert response.status_code == 422, (body, response.text)
    return {(e["field"], e["rule"]) for e in response.json()["errors"]}


async def test_creates_that_do_not_match_the_master_are_422s_and_write_nothing(
    database_url: str,
) -> None:
    """Wrong symbol, wrong exchange, unknown token, an index, off-tick prices, off-lot quantity."""
    async with running_system(database_url) as system:
        cases: list[tuple[dict[str, Any], tuple[str, str]]] = [
            ({"tradingsymbol": "NOSUCH"}, ("tradingsymbol", "mismatch")),
            ({"tradingsymbol": "RELIANCE"}, ("tradingsymbol", "mismatch")),
            ({"exchange": "BSE"}, ("exchange", "mismatch")),
            ({"instrument_token": 999_999_999}, ("instrument_token", "unknown")),
            (
                {"instrument_token": 256265, "tradingsymbol": "NIFTY 50"},
                ("instrument_token", "tradable"),
            ),
            (
                {
                    "instrument_token": ADANIPORTS,
                    "tradingsymbol": "ADANIPORTS",
                    "transaction_type": "SELL",
                    "trigger_price_1": "1500.03",
                },
                ("trigger_price_1", "tick_size"),
            ),
            (
                {"order_type": "LIMIT", "limit_price_1": "1700.05"},  # INFY's tick is 0.10 here
                ("limit_price_1", "tick_size"),
            ),
            ({**OPTION_BODY, "quantity": 50}, ("quantity", "lot_size")),
        ]
        for body, expected in cases:
            assert expected in await refused(system, body), body
        assert await counts(system) == (0, 0)
        listed = await system.client.get("/triggers", headers=system.auth())
        assert listed.json() == []
        response = await system.client.post(
            "/triggers", json={**BASE, "tradingsymbol": "NOSUCH"}, headers=system.auth()
        )
        (error,) = response.json()["errors"]
        assert error["message"] == "instrument 408065 is NSE:INFY, not NOSUCH"


async def test_bulk_create_checks_each_item_against_the_master(database_url: str) -> None:
    """A bulk create whose items name a symbol not the token's, an off-tick price and an
    off-lot option quantity is one 422 naming each by index, and writes nothing; the
    same items put right are stored with their instruments' units."""
    async with running_system(database_url) as system:
        items = [
            dict(BASE),
            {**BASE, "tradingsymbol": "RELIANCE"},
            {**BASE, "order_type": "LIMIT", "limit_price_1": "1700.05"},
            {**BASE, **OPTION_BODY, "quantity": 50},
            {**BASE, **OPTION_BODY},
        ]
        response = await system.client.post(
            "/triggers/bulk", json={"triggers": items}, headers=system.auth()
        )
        assert response.status_code == 422, response.text
        errors = {(e["field"], e["rule"]) for e in response.json()["errors"]}
        assert errors == {
            ("triggers[1].tradingsymbol", "mismatch"),
            ("triggers[2].limit_price_1", "tick_size"),
            ("triggers[3].quantity", "lot_size"),
        }
        assert await counts(system) == (0, 0)
        assert len(system.runtime.engine.book) == 0

        good = [items[0], items[4]]
        created = await system.client.post(
            "/triggers/bulk", json={"triggers": good}, headers=system.auth()
        )
        assert created.status_code == 201, created.text
        assert await counts(system) == (2, 2)

        async def work(conn: Any) -> Any:
            c = tables.gtt_orders.c
            query = select(c.tradingsymbol, c.price_divisor, c.tick_size, c.lot_size)
            return {row[0]: tuple(row[1:]) for row in await conn.execute(query)}

        stored = await system.runtime.db.transaction(work, write=False)
        assert stored == {
            "INFY": (100, Decimal("0.1"), 1),
            "BANKNIFTY18JAN23500CE": (100, Decimal("0.05"), 40),
        }


async def test_a_matching_create_stores_the_instruments_units(database_url: str) -> None:
    """A whole number of lots on the tick grid is a 201; the row carries divisor, tick and lot."""
    async with running_system(database_url) as system:
        created = await system.create(**OPTION_BODY)
        assert created["quantity"] == 80
        assert await units(system) == (100, Decimal("0.05"), 40)


async def test_edits_are_checked_the_same_way_and_change_nothing(database_url: str) -> None:
    """PATCH to a mismatched symbol, an off-tick price or an off-lot quantity: 422, row intact."""
    async with running_system(database_url) as system:
        created = await system.create(**OPTION_BODY)
        before, rows = await system.trigger(created["id"]), await counts(system)
        cases: list[tuple[dict[str, Any], tuple[str, str]]] = [
            ({"tradingsymbol": "BANKNIFTY18JAN23500PE"}, ("tradingsymbol", "mismatch")),
            ({"instrument_token": INFY}, ("tradingsymbol", "mismatch")),
            ({"exchange": "NSE"}, ("exchange", "mismatch")),
            ({"instrument_token": 999_999_999}, ("instrument_token", "unknown")),
            ({"trigger_price_1": "2600.03"}, ("trigger_price_1", "tick_size")),
            ({"quantity": 100}, ("quantity", "lot_size")),
        ]
        for body, expected in cases:
            response = await system.client.patch(
                f"/triggers/{created['id']}", json=body, headers=system.auth()
            )
            assert response.status_code == 422, (body, response.text)
            assert expected in {(e["field"], e["rule"]) for e in response.json()["errors"]}, body
        assert await system.trigger(created["id"]) == before
        assert await counts(system) == rows
        moved = await system.client.patch(
            f"/triggers/{created['id']}",
            json={
                "instrument_token": INFY,
                "exchange": "NSE",
                "tradingsymbol": "INFY",
                "product": "CNC",
                "quantity": 3,
                "trigger_price_1": "1700.10",
            },
            headers=system.auth(),
        )
        assert moved.status_code == 200, moved.text
        assert (moved.json()["tradingsymbol"], moved.json()["quantity"]) == ("INFY", 3)
        assert await units(system) == (100, Decimal("0.1"), 1)  # INFY's, no longer the option's


async def test_the_master_is_fetched_once_a_day_and_reused(database_url: str) -> None:
    """The start-up fetch serves the creates, edits and searches after it (one /instruments
    request); the next day fetches again."""
    async with running_system(database_url) as system:
        await eventually(lambda: system.runtime.supervisor.warming == 0)
        assert system.sim.counters["rest_instruments"] == 1
        first = await system.create(trigger_price_1="1700.00")
        await system.create(
            instrument_token=RELIANCE, tradingsymbol="RELIANCE", trigger_price_1="1500.00"
        )
        await system.client.patch(
            f"/triggers/{first['id']}", json={"quantity": 2}, headers=system.auth()
        )
        found = await system.client.get("/instruments", params={"q": "INF"}, headers=system.auth())
        assert found.status_code == 200
        assert system.sim.counters["rest_instruments"] == 1
        master = system.runtime.instruments
        today = master.clock()
        master.clock = lambda: today + timedelta(days=1)
        await system.create(trigger_price_1="1800.00")
        assert system.sim.counters["rest_instruments"] == 2


def _no_instrument_list(sim: Simulator) -> dict[str, Any]:
    """Every /instruments request fails, from before the engine starts."""
    sim.faults.add(kind="error", endpoint="instruments", error_type="NetworkException")
    return {}


async def test_without_any_copy_a_stop_loss_is_accepted_unchecked_with_a_warning(
    database_url: str,
) -> None:
    """No copy at all (the start-up fetch failed, as at 06:00 IST with the session expired): a
    stop-loss is still stored, marked unchecked (no tick or lot on the row); Kite's token
    rules still refuse a wrong exchange."""
    async with running_system(database_url, sim_overrides=_no_instrument_list) as system:
        await eventually(lambda: system.runtime.supervisor.warming == 0)
        assert system.sim.counters["rest_instruments"] == 1
        response = await system.client.post(
            "/triggers",
            json={**BASE, "transaction_type": "SELL", "trigger_price_1": "1400.00"},
            headers=system.auth(),
        )
        assert response.status_code == 201, response.text
        (warning,) = response.json()["warnings"]
        assert "unavailable" in warning
        assert "not checked" in warning
        assert system.sim.counters["rest_instruments"] == 1

        async def work(conn: Any) -> Any:
            query = select(tables.gtt_orders.c.price_divisor, tables.gtt_orders.c.tick_size)
            return (await conn.execute(query)).one()

        assert tuple(await system.runtime.db.transaction(work, write=False)) == (100, None)
        assert ("exchange", "mismatch") in await refused(system, {"exchange": "BSE"})
        assert await counts(system) == (1, 1)
        # The failed fetch is not retried on every request.
        assert system.sim.counters["rest_instruments"] == 1


async def test_an_outage_checks_against_the_last_good_copy(database_url: str) -> None:
    """Today's dump cannot be fetched: yesterday's still refuses a wrong symbol and accepts a
    right one, with a warning naming the copy's day."""
    async with running_system(database_url) as system:
        await system.create(trigger_price_1="1700.00")
        master = system.runtime.instruments
        today = master.clock()
        master.clock = lambda: today + timedelta(days=1)
        system.sim.faults.add(kind="error", endpoint="instruments", error_type="NetworkException")
        assert ("tradingsymbol", "mismatch") in await refused(system, {"tradingsymbol": "NOSUCH"})
        response = await system.client.post("/triggers", json=BASE, headers=system.auth())
        assert response.status_code == 201, response.text
        (warning,) = response.json()["warnings"]
        assert "instrument list of" in warning
        assert system.sim.counters["rest_instruments"] == 2
