"""Several Kite accounts at once on the simulator (docs/accounts.md): each trigger's order
reaches its own account only, and one account's login lapsing leaves the other firing.
Both stores."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from hmt.store.linked import LinkedAccount, LinkedAccounts
from hmt.store.sealing import Sealer
from tests.support.eventually import eventually
from tests.support.system import System, running_system

KEY = "a-test-sealing-key-0123456789"
SEED = 11


async def _accounts(system: System) -> dict[str, dict[str, Any]]:
    response = await system.client.get("/accounts", headers=system.auth())
    assert response.status_code == 200, response.text
    return {account["id"]: account for account in response.json()}


def _tags(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(row["tag"] for row in rows)


async def test_two_kite_accounts_each_order_reaches_its_own_and_one_lapses_alone(
    database_url: str,
) -> None:
    async with running_system(database_url, secret_key=KEY, seed=SEED) as system:
        sim, runtime, token = system.sim, system.runtime, system.token
        second = sim.add_account("SIM002")
        linked = await system.client.post(
            "/accounts",
            json={
                "id": "family-2",
                "broker": "kite",
                "label": "Family, second",
                "api_key": second.api_key,
                "access_token": second.access_token,
            },
            headers=system.auth(),
        )
        assert linked.status_code == 201, linked.text
        assert linked.json()["session"] == "valid"
        assert second.access_token not in linked.text
        executors = runtime.executors
        assert executors is not None
        await eventually(lambda: "family-2" in executors.live)  # its order book was read

        system.push(token, "1600.00")
        mine = await system.create(trigger_price_1="1610.00")
        theirs = await system.create(trigger_price_1="1610.00", account="family-2")
        assert (mine["account"], theirs["account"]) == ("default", "family-2")
        system.push(token, "1612.00")
        placed = [await system.settled(t["id"]) for t in (mine, theirs)]
        assert [p["status"] for p in placed] == ["placed", "placed"]
        assert _tags(sim.orders()) == [placed[0]["broker_tag"]]
        assert _tags(second.orders()) == [placed[1]["broker_tag"]]

        # The second account's login lapses: only its triggers pause.
        second.expire_session()
        later_mine = await system.create(trigger_price_1="1620.00")
        later_theirs = await system.create(trigger_price_1="1620.00", account="family-2")
        system.push(token, "1625.00")
        done = await system.settled(later_mine["id"])
        assert done["status"] == "placed"
        await eventually(lambda: "family-2" not in executors.live)
        # Its order was refused (403) and the claim given back; armed again, it fired
        # again and is kept out of the book until the account is live: nothing sent.
        paused = runtime.engine.paused_triggers
        await eventually(lambda: paused("family-2") == {later_theirs["id"]})
        waiting = await system.trigger(later_theirs["id"])
        assert (waiting["status"], waiting["order_id"]) == ("active", None)
        assert _tags(sim.orders()) == sorted([placed[0]["broker_tag"], done["broker_tag"]])
        assert _tags(second.orders()) == [placed[1]["broker_tag"]]
        accounts = await _accounts(system)
        assert accounts["default"]["session"] == "valid"
        assert accounts["family-2"]["session"] == "expired"
        health = (await system.client.get("/health")).json()
        assert any("family-2" in reason for reason in health["reasons"]), health
        assert runtime.engine.state.value == "running"

        # A new token for it: its book is read, then its paused trigger fires there.
        renewed = await system.client.put(
            "/accounts/family-2/session",
            json={"access_token": second.renew_session()},
            headers=system.auth(),
        )
        assert renewed.status_code == 200, renewed.text
        assert renewed.json()["session"] == "valid"
        system.push(token, "1628.00")
        resumed = await system.settled(later_theirs["id"])
        assert resumed["status"] == "placed"
        assert _tags(second.orders()) == sorted([placed[1]["broker_tag"], resumed["broker_tag"]])
        assert len(sim.orders()) == 2
        health = (await system.client.get("/health")).json()
        assert not any("family-2" in reason for reason in health["reasons"]), health
        other_user = await system.client.put(
            "/accounts/family-2/session",
            json={"access_token": second.renew_session()},
            headers=system.auth(system.operator_token),
        )
        assert other_user.status_code == 404, other_user.text

        # A trigger naming an account the caller has not linked is refused, naming it.
        refused = await system.client.post(
            "/triggers",
            json={
                "instrument_token": token,
                "exchange": "NSE",
                "tradingsymbol": "INFY",
                "trigger_type": "single",
                "transaction_type": "BUY",
                "quantity": 1,
                "product": "CNC",
                "trigger_price_1": "1700.00",
                "account": "nobody",
            },
            headers=system.auth(),
        )
        assert refused.status_code == 422, refused.text
        assert "nobody" in refused.text
        assert "account" in refused.text


async def test_stats_shows_each_accounts_own_headroom(database_url: str) -> None:
    """Orders through a linked account spend its throttle's headroom, not the default's:
    /stats shows both, and `rate_limit_headroom` stays the default account's (v1)."""
    async with running_system(database_url, secret_key=KEY, seed=SEED) as system:
        sim, runtime, token = system.sim, system.runtime, system.token
        second = sim.add_account("SIM002")
        linked = await system.client.post(
            "/accounts",
            json={
                "id": "family-2",
                "broker": "kite",
                "label": "Family, second",
                "api_key": second.api_key,
                "access_token": second.access_token,
            },
            headers=system.auth(),
        )
        assert linked.status_code == 201, linked.text
        executors = runtime.executors
        assert executors is not None
        await eventually(lambda: "family-2" in executors.live)

        async def stats() -> dict[str, Any]:
            response = await system.client.get("/stats", headers=system.auth())
            assert response.status_code == 200, response.text
            shown: dict[str, Any] = response.json()
            return shown

        before = await stats()
        assert set(before["rate_limit_headroom_by_account"]) == {"default", "family-2"}
        for windows in before["rate_limit_headroom_by_account"].values():
            assert windows["per_day"] == {"left": 3000, "limit": 3000}

        system.push(token, "1600.00")
        theirs = [
            await system.create(trigger_price_1="1610.00", account="family-2") for _ in range(2)
        ]
        system.push(token, "1612.00")
        for trigger in theirs:
            assert (await system.settled(trigger["id"]))["status"] == "placed"
        assert len(second.orders()) == 2
        assert sim.orders() == []

        after = await stats()
        by_account = after["rate_limit_headroom_by_account"]
        assert by_account["family-2"]["per_day"] == {"left": 2998, "limit": 3000}
        assert by_account["family-2"]["per_minute"] == {"left": 198, "limit": 200}
        assert by_account["default"]["per_day"] == {"left": 3000, "limit": 3000}
        assert by_account["default"]["per_minute"] == {"left": 200, "limit": 200}
        assert after["rate_limit_headroom"] == by_account["default"]


async def test_a_bracket_through_a_linked_account_trades_in_its_book_only(
    database_url: str,
) -> None:
    """A bracket's entry names a linked account: its entry order is placed there, its fill
    is found in that account's book (the simulator pushes no update for it on the default
    account's ticker: the sweep looks), the exit it arms is that account's, and the exit's
    order goes there too. The default account's book stays empty."""
    async with running_system(database_url, secret_key=KEY, seed=SEED, fill_sweep_ms=200) as system:
        sim, runtime, token = system.sim, system.runtime, system.token
        second = sim.add_account("SIM002")
        linked = await system.client.post(
            "/accounts",
            json={
                "id": "family-2",
                "broker": "kite",
                "label": "Family, second",
                "api_key": second.api_key,
                "access_token": second.access_token,
            },
            headers=system.auth(),
        )
        assert linked.status_code == 201, linked.text
        executors = runtime.executors
        assert executors is not None
        await eventually(lambda: "family-2" in executors.live)

        system.push(token, "1600.00")
        order = {
            "instrument_token": token,
            "exchange": "NSE",
            "tradingsymbol": "INFY",
            "transaction_type": "BUY",
            "quantity": 5,
            "product": "MIS",
        }
        body = {
            "entry": {
                "trigger_type": "single",
                "account": "family-2",
                "legs": [{"condition": {"price": "1610"}, "orders": [order]}],
            },
            "exits": {"target": "1650", "stop": "1580"},
        }
        made = await system.client.post("/brackets", json=body, headers=system.auth())
        assert made.status_code == 201, made.text
        bracket_id = made.json()["id"]
        assert made.json()["entry"]["account"] == "family-2"

        async def read() -> dict[str, Any]:
            response = await system.client.get(f"/brackets/{bracket_id}", headers=system.auth())
            assert response.status_code == 200, response.text
            shown: dict[str, Any] = response.json()
            return shown

        seen: dict[str, Any] = {}

        async def filled() -> bool:
            seen.update(await read())
            return bool(seen["status"] == "filled")

        system.push(token, "1612.00")  # the entry fires: a market order, filled at once
        await eventually(filled, within=15, interval=0.05)
        entry = seen["entry"]
        assert entry["status"] == "placed"
        assert _tags(second.orders()) == [entry["broker_tag"]]
        assert sim.orders() == []
        assert (seen["filled"], seen["armed"]) == (5, 5)
        [exit] = seen["exits"]  # armed once
        assert exit["account"] == "family-2"
        assert (exit["transaction_type"], exit["quantity"]) == ("SELL", 5)
        assert [e["kind"] for e in seen["history"]].count("filled") == 1

        system.push(token, "1651.00")  # the target
        placed = await system.settled(exit["id"])
        assert placed["status"] == "placed"
        assert placed["account"] == "family-2"
        rows = {row["tag"]: row for row in second.orders()}
        assert set(rows) == {entry["broker_tag"], placed["broker_tag"]}
        exit_row = rows[placed["broker_tag"]]
        assert (exit_row["transaction_type"], exit_row["quantity"]) == ("SELL", 5)
        assert sim.orders() == []  # the default account's book stays empty
        again = await read()
        assert len(again["exits"]) == 1


async def test_an_unreadable_linked_account_leaves_the_others_traded(database_url: str) -> None:
    """A row sealed under another HMT_SECRET_KEY is left out at start, alone: the other
    linked account is still put in the engine (before, one such row left every linked
    account out)."""
    async with running_system(database_url, secret_key=KEY, seed=SEED) as system:
        second = system.sim.add_account("SIM002")
        linked = await system.client.post(
            "/accounts",
            json={
                "id": "family-2",
                "broker": "kite",
                "label": "Family, second",
                "api_key": second.api_key,
                "access_token": second.access_token,
            },
            headers=system.auth(),
        )
        assert linked.status_code == 201, linked.text
        await LinkedAccounts(system.runtime.db, Sealer(["another-key-" + "x" * 24])).link(
            LinkedAccount("aaa-old", "alice", "kite", "old", "old-key", None, SecretStr("t"))
        )
    async with running_system(database_url, secret_key=KEY, seed=SEED) as system:
        executors = system.runtime.executors
        assert executors is not None
        assert set(executors.linked) == {"family-2"}  # "aaa-old" (sorted first) left out
