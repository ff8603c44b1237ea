"""`POST /triggers/bulk`: a thousand triggers in one request, all or none, each armed."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import func, select

from hmt.store.tables import gtt_orders, trigger_events
from tests.support.system import System, running_system

INFY = 408065
RELIANCE = 738561


def _item(i: int, **fields: Any) -> dict[str, Any]:
    return {
        "instrument_token": INFY,
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "trigger_type": "single",
        "transaction_type": "BUY",
        "trigger_price_1": f"{9000 + i}.00",
        "quantity": 1,
        "product": "CNC",
        **fields,
    }


async def _rows(system: System) -> tuple[int, int]:
    """Triggers and events in the database, every user's."""

    async def work(conn: Any) -> tuple[int, int]:
        orders = select(func.count()).select_from(gtt_orders)
        events = select(func.count()).select_from(trigger_events)
        return (await conn.execute(orders)).scalar_one(), (await conn.execute(events)).scalar_one()

    result: tuple[int, int] = await system.runtime.db.transaction(work, write=False)
    return result


async def test_a_thousand_triggers_are_one_request_and_all_are_armed(database_url: str) -> None:
    """1000 items: one 201 in input order, each with its created event and in the book on return."""
    async with running_system(database_url, rate_limit_writes_per_min=60) as system:
        items = [_item(i, quantity=i + 1) for i in range(999)]
        items.append(_item(999, instrument_token=RELIANCE, tradingsymbol="RELIANCE", paused=True))
        body = json.dumps({"triggers": items}).encode()
        assert len(body) > system.runtime.settings.max_body_bytes  # the bulk route's own cap
        started = time.monotonic()
        response = await system.client.post(
            "/triggers/bulk",
            content=body,
            headers={**system.auth(), "content-type": "application/json"},
        )
        took = time.monotonic() - started
        assert response.status_code == 201, response.text[:500]
        created = response.json()["triggers"]
        print(f"\nbulk: 1000 triggers in one request, {took:.2f} s ({len(body)} bytes)")
        assert [t["quantity"] for t in created[:999]] == list(range(1, 1000))
        assert created[999]["status"] == "paused"
        book = system.runtime.engine.book
        assert all(book.get(t["id"]) is not None for t in created[:999])
        assert book.get(created[999]["id"]) is None  # paused: stored, not armed
        assert await _rows(system) == (1000, 1000)
        listed = await system.client.get("/triggers?limit=1", headers=system.auth())
        assert listed.headers["x-total-count"] == "1000"
        # One write for the rate limit: the burst of 6 still has 5 left.
        for _ in range(5):
            one = await system.client.delete(f"/triggers/{created[0]['id']}", headers=system.auth())
            assert one.status_code == 200


async def test_every_bad_item_is_named_by_index_and_nothing_is_written(database_url: str) -> None:
    """Type errors, rule errors and unknown fields in three items: one 422 naming all three."""
    async with running_system(database_url) as system:
        items = [_item(i) for i in range(10)]
        items[3]["quantity"] = 0  # the schema's rule
        items[5]["trigger_price_1"] = "9005.001"  # finer than the segment's paise
        items[7]["colour"] = "red"
        items[8].update(trigger_type="oco", transaction_type="SELL", trigger_price_2="100.00")
        response = await system.client.post(
            "/triggers/bulk", json={"triggers": items}, headers=system.auth()
        )
        assert response.status_code == 422, response.text
        fields = {e["field"] for e in response.json()["errors"]}
        assert {
            "triggers[3].quantity",
            "triggers[5].trigger_price_1",
            "triggers[7].colour",
        } <= fields
        assert any(f.startswith("triggers[8].") for f in fields), fields
        assert not any(f.startswith(("triggers[0]", "triggers[9]")) for f in fields)
        assert await _rows(system) == (0, 0)
        assert len(system.runtime.engine.book) == 0


async def test_the_list_itself_is_checked_and_the_per_user_cap_counts_every_item(
    database_url: str,
) -> None:
    """Empty, oversize, wrong-shaped and non-JSON bodies are refused; over the cap is a 409."""
    async with running_system(database_url, max_triggers_per_user=3) as system:
        post = system.client.post
        for body, field in (
            ({"triggers": []}, "triggers"),
            ({"triggers": [_item(0)] * 1001}, "triggers"),
            ({"triggers": _item(0)}, "triggers"),
            ({"triggers": [_item(0)], "atomic": False}, "atomic"),
            ([_item(0)], "body"),
        ):
            response = await post("/triggers/bulk", json=body, headers=system.auth())
            assert response.status_code == 422, (body, response.text)
            assert response.json()["errors"][0]["field"] == field
        garbled = await post(
            "/triggers/bulk",
            content=b'{"triggers": [',
            headers={**system.auth(), "content-type": "application/json"},
        )
        assert garbled.status_code == 400
        await system.create(trigger_price_1="9999.00")
        over = await post(
            "/triggers/bulk",
            json={"triggers": [_item(1), _item(2), _item(3)]},
            headers=system.auth(),
        )
        assert over.status_code == 409, over.text
        assert "send at most 2" in over.json()["detail"]
        assert await _rows(system) == (1, 1)
        fits = await post(
            "/triggers/bulk", json={"triggers": [_item(1), _item(2)]}, headers=system.auth()
        )
        assert fits.status_code == 201
        assert await _rows(system) == (3, 3)
