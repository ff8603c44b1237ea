"""Trigger edits over HTTP: PATCH, pause and resume reach the running engine before replying."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hmt.sim.universe import DEFAULT_INSTRUMENTS, Universe
from hmt.sim.universe import Instrument as SimInstrument
from tests.support.eventually import eventually
from tests.support.system import running_system

INFY = 408065
RELIANCE = 738561


async def test_patch_edits_fields_and_the_engine_fires_at_the_new_price(database_url: str) -> None:
    """A PATCHed price is the one the engine fires at; the old price no longer fires it."""
    async with running_system(database_url) as system:
        system.push(INFY, "1600.00")
        created = await system.create(trigger_price_1="1610.00", quantity=2)
        response = await system.client.patch(
            f"/triggers/{created['id']}",
            json={"trigger_price_1": "1620.50", "quantity": 5},
            headers=system.auth(),
        )
        assert response.status_code == 200, response.text
        edited = response.json()
        assert (edited["trigger_price_1"], edited["quantity"], edited["status"]) == (
            "1620.5",
            5,
            "active",
        )
        book = system.runtime.engine.book
        assert book.get(created["id"]).trigger_price_1 == 162050  # in the book before the reply
        system.push(INFY, "1615.00")  # would have fired the old price
        await eventually(lambda: system.runtime.engine.last_ltp.get(INFY) == 161500)
        assert system.sim.orders() == []
        system.push(INFY, "1620.50")
        placed = await system.settled(created["id"])
        assert placed["status"] == "placed"
        assert [e["kind"] for e in placed["events"]][:2] == ["created", "updated"]
        (order,) = system.sim.orders()
        assert order["quantity"] == 5


async def test_patch_moves_a_trigger_to_another_instrument_and_clears_optional_fields(
    database_url: str,
) -> None:
    """Changing the instrument resubscribes; null clears an optional field, omitted keeps it."""
    async with running_system(database_url) as system:
        created = await system.create(
            trigger_price_1="1610.00", order_type="LIMIT", limit_price_1="1611.00"
        )
        response = await system.client.patch(
            f"/triggers/{created['id']}",
            json={
                "instrument_token": RELIANCE,
                "tradingsymbol": "RELIANCE",
                "trigger_price_1": "2900",
                "order_type": "MARKET",
                "limit_price_1": None,
            },
            headers=system.auth(),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["instrument_token"], body["limit_price_1"], body["quantity"]) == (
            RELIANCE,
            None,
            1,
        )
        engine = system.runtime.engine
        assert engine.book.count_for(RELIANCE) == 1
        assert engine.book.count_for(INFY) == 0


async def test_pause_takes_it_out_of_the_engine_and_resume_puts_it_back(database_url: str) -> None:
    """Paused, it does not fire while its price is crossed; resumed, it fires on the next tick."""
    async with running_system(database_url) as system:
        system.push(INFY, "1600.00")
        await system.create(trigger_price_1="9999.00")  # keeps INFY subscribed throughout
        created = await system.create(trigger_price_1="1610.00")
        paused = await system.client.post(f"/triggers/{created['id']}/pause", headers=system.auth())
        assert paused.status_code == 200
        assert paused.json()["status"] == "paused"
        assert system.runtime.engine.book.get(created["id"]) is None
        again = await system.client.post(f"/triggers/{created['id']}/pause", headers=system.auth())
        assert again.status_code == 409
        edit = await system.client.patch(
            f"/triggers/{created['id']}", json={"quantity": 3}, headers=system.auth()
        )
        assert edit.status_code == 200
        assert edit.json()["status"] == "paused"
        system.push(INFY, "1615.00")
        await eventually(lambda: system.runtime.engine.last_ltp.get(INFY) == 161500)
        assert system.sim.orders() == []
        resumed = await system.client.post(
            f"/triggers/{created['id']}/resume", headers=system.auth()
        )
        assert resumed.status_code == 200
        assert resumed.json()["status"] == "active"
        system.push(INFY, "1615.00")
        assert (await system.settled(created["id"]))["status"] == "placed"
        late = await system.client.patch(
            f"/triggers/{created['id']}", json={"quantity": 4}, headers=system.auth()
        )
        assert late.status_code == 409, late.text  # placed: no longer editable


async def test_edits_need_a_token_and_another_users_id_is_a_404(database_url: str) -> None:
    """No token is 401; bob's PATCH, pause, resume and cancel of alice's trigger are 404s."""
    async with running_system(database_url) as system:
        created = await system.create(trigger_price_1="1610.00")
        path = f"/triggers/{created['id']}"
        bob = (await system.runtime.tokens.issue("bob")).token
        calls = [
            ("PATCH", path, {"quantity": 2}),
            ("POST", f"{path}/pause", None),
            ("POST", f"{path}/resume", None),
            ("DELETE", path, None),
            ("GET", path, None),
        ]
        for method, url, body in calls:
            anonymous = await system.client.request(method, url, json=body)
            assert anonymous.status_code == 401, (method, url)
            foreign = await system.client.request(method, url, json=body, headers=system.auth(bob))
            assert foreign.status_code == 404, (method, url, foreign.text)
            missing = await system.client.request(
                method,
                url.replace(created["id"], str(uuid.uuid4())),
                json=body,
                headers=system.auth(),
            )
            assert missing.status_code == 404, (method, url)
        assert (await system.trigger(created["id"]))["quantity"] == 1


async def test_bad_edits_are_422s_naming_the_field_and_change_nothing(database_url: str) -> None:
    """Server-owned fields, unknown fields, nulls, bad prices and empty bodies: 422, row intact."""
    async with running_system(database_url) as system:
        created = await system.create(
            trigger_type="oco",
            transaction_type="SELL",
            trigger_price_1="100.00",
            trigger_price_2="99999.00",
        )
        cases = [
            ({"status": "placed"}, "status", "read_only"),
            ({"order_id": "x"}, "order_id", "read_only"),
            ({"colour": "red"}, "colour", "extra_forbidden"),
            ({"quantity": None}, "quantity", "int_type"),
            ({"quantity": 0}, "quantity", "greater_than_equal"),
            ({"trigger_price_1": "100.001"}, "trigger_price_1", None),
            ({"trigger_price_2": "50.00"}, None, None),  # target below stop-loss for a SELL
            ({}, "body", "not_empty"),
        ]
        before = await system.trigger(created["id"])
        for body, field, rule in cases:
            response = await system.client.patch(
                f"/triggers/{created['id']}", json=body, headers=system.auth()
            )
            assert response.status_code == 422, (body, response.text)
            errors = response.json()["errors"]
            assert errors, body
            assert all(e["field"] and e["rule"] for e in errors), errors
            if field is not None:
                assert any(e["field"] == field for e in errors), (body, errors)
            if rule is not None:
                assert any(e["rule"] == rule for e in errors), (body, errors)
        after = await system.trigger(created["id"])
        assert after == before


def _future(exchange_token: int, exchange: str, segment: int, divisor: int) -> SimInstrument:
    # A tick of one wire unit, so that every decimal the divisor allows is on
    # the grid; the close sits below the BUY triggers, so none fires.
    return SimInstrument(
        exchange_token,
        "USDINR26DECFUT",
        "USDINR",
        tick=1,
        close=75 * divisor,
        segment=segment,
        exchange=exchange,
        kind="FUT",
        expiry="2026-12-29",
    )


# The simulator's instruments plus a CDS and a BCD future: the master lists them.
CURRENCIES = Universe(
    (*DEFAULT_INSTRUMENTS, _future(1612, "CDS", 3, 10_000_000), _future(1, "BCD", 6, 10_000))
)


async def test_currency_prices_round_trip_with_their_own_divisor(database_url: str) -> None:
    """CDS (10^7) and BCD (10^4) prices keep every decimal through create, store, load and read."""
    currencies = [
        (412675, "CDS", "USDINR26DECFUT", "83.1234567", 10_000_000),
        ((1 << 8) | 6, "BCD", "USDINR26DECFUT", "83.1234", 10_000),
    ]
    async with running_system(database_url, universe=CURRENCIES) as system:
        for token, exchange, symbol, price, divisor in currencies:
            created = await system.create(
                instrument_token=token,
                exchange=exchange,
                tradingsymbol=symbol,
                trigger_price_1=price,
                product="NRML",
            )
            assert created["trigger_price_1"] == price
            assert (await system.trigger(created["id"]))["trigger_price_1"] == price
            in_book = system.runtime.engine.book.get(created["id"])
            assert (in_book.price_divisor, in_book.trigger_price_1) == (
                divisor,
                int(Decimal(price) * divisor),
            )
            stored = await system.runtime.triggers.get("alice", created["id"])
            assert stored.trigger.price_divisor == divisor
            edited = await system.client.patch(
                f"/triggers/{created['id']}",
                json={"trigger_price_1": price[:-1] + "8"},
                headers=system.auth(),
            )
            assert edited.json()["trigger_price_1"] == price[:-1] + "8", edited.text
        loaded = [t async for batch in system.runtime.triggers.stream_active() for t in batch]
        assert sorted((t.price_divisor, t.trigger_price_1) for t in loaded) == [
            (10_000, 831_238),
            (10_000_000, 831_234_568),
        ]
        too_fine = await system.client.post(
            "/triggers",
            json={
                "instrument_token": (1 << 8) | 6,
                "exchange": "BCD",
                "tradingsymbol": "USDINR26DECFUT",
                "trigger_type": "single",
                "transaction_type": "BUY",
                "quantity": 1,
                "product": "NRML",
                "trigger_price_1": "83.12345",
            },
            headers=system.auth(),
        )
        assert too_fine.status_code == 422
        assert [(e["field"], e["rule"]) for e in too_fine.json()["errors"]] == [
            ("trigger_price_1", "precision")
        ]


async def test_a_repeated_delete_is_a_200_with_the_record_and_no_second_event(
    database_url: str,
) -> None:
    """Cancelling a cancelled trigger answers as the first time did and writes nothing."""
    async with running_system(database_url) as system:
        created = await system.create(trigger_price_1="9999.00")
        path = f"/triggers/{created['id']}"
        first = await system.client.delete(path, headers=system.auth())
        assert first.status_code == 200, first.text
        again = await system.client.delete(path, headers=system.auth())
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert again.json()["status"] == "cancelled"
        events = [e["kind"] for e in (await system.trigger(created["id"]))["events"]]
        assert events == ["created", "cancelled"]
        assert system.runtime.engine.book.get(created["id"]) is None


async def test_delete_of_a_placed_or_expired_trigger_is_a_409_saying_why(
    database_url: str,
) -> None:
    """Only a cancelled trigger's DELETE is idempotent; placed and expired ones stay as they are."""
    async with running_system(database_url) as system:
        system.push(INFY, "1600.00")
        created = await system.create(trigger_price_1="1605.00")
        system.push(INFY, "1606.00")
        assert (await system.settled(created["id"]))["status"] == "placed"
        placed = await system.client.delete(f"/triggers/{created['id']}", headers=system.auth())
        assert placed.status_code == 409
        assert placed.json()["detail"] == (
            "this trigger is placed (its order is with the broker): it can no longer be cancelled"
        )
        soon = datetime.now(UTC) + timedelta(milliseconds=300)
        short = await system.create(trigger_price_1="9999.00", expires_at=soon.isoformat())

        async def expired() -> bool:
            await system.runtime.triggers.expire_due()
            return (await system.trigger(short["id"]))["status"] == "expired"

        await eventually(expired, within=5)
        refused = await system.client.delete(f"/triggers/{short['id']}", headers=system.auth())
        assert refused.status_code == 409
        assert refused.json()["errors"][0]["message"].startswith("this trigger has expired")
        kinds = [e["kind"] for e in (await system.trigger(short["id"]))["events"]]
        assert "cancelled" not in kinds


async def test_changes_to_existing_triggers_wait_while_the_order_book_is_read(
    database_url: str,
) -> None:
    """While firing is held for the order-book read, edits, pauses and cancels are a 503 with
    Retry-After and change nothing; creates still work; afterwards the same cancel goes through."""
    async with running_system(database_url) as system:
        system.push(INFY, "1600.00")
        created = await system.create(trigger_price_1="1610.00")
        engine = system.runtime.engine
        engine.holding = True  # as after a database reconnection, before the book is read
        try:
            tid = created["id"]
            refused = [
                await system.client.patch(
                    f"/triggers/{tid}", json={"quantity": 3}, headers=system.auth()
                ),
                await system.client.post(f"/triggers/{tid}/pause", headers=system.auth()),
                await system.client.post(f"/triggers/{tid}/resume", headers=system.auth()),
                await system.client.delete(f"/triggers/{tid}", headers=system.auth()),
            ]
            for response in refused:
                assert response.status_code == 503, response.text
                assert response.headers["Retry-After"] == "1"
                assert response.json()["errors"][0]["rule"] == "reconciling"
            assert (await system.create(trigger_price_1="1620.00"))["status"] == "active"
        finally:
            engine.holding = False
        row = await system.client.get(f"/triggers/{tid}", headers=system.auth())
        assert row.json()["status"] == "active"
        assert row.json()["quantity"] == created["quantity"]
        cancelled = await system.client.delete(f"/triggers/{tid}", headers=system.auth())
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
