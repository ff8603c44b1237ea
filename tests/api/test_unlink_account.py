"""DELETE /accounts/{id} (docs/accounts.md, "Unlinking an account"): refused while a
trigger of the account may still send an order, then the account leaves the engine and
its row goes; its finished triggers keep its id; another user's is unknown, the default
account is refused, and the id can be linked again. Both stores."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hmt.store.tables import accounts as account_rows
from tests.support.eventually import eventually
from tests.support.system import System, running_system

KEY = "a-test-sealing-key-0123456789"


async def _ids(system: System, token: str | None = None) -> list[str]:
    response = await system.client.get("/accounts", headers=system.auth(token))
    assert response.status_code == 200, response.text
    return [account["id"] for account in response.json()]


async def _unlink(system: System, account_id: str, token: str | None = None) -> Any:
    return await system.client.delete(f"/accounts/{account_id}", headers=system.auth(token))


def _rules(response: Any) -> set[tuple[str, str]]:
    return {(e["field"], e["rule"]) for e in response.json()["errors"]}


async def _link(system: System, api_key: str, access_token: str) -> None:
    body = {
        "id": "family-2",
        "broker": "kite",
        "label": "Family, second",
        "api_key": api_key,
        "access_token": access_token,
    }
    linked = await system.client.post("/accounts", json=body, headers=system.auth())
    assert linked.status_code == 201, linked.text


async def _stored(system: System) -> list[str]:
    async def work(conn: Any) -> list[str]:
        return list((await conn.execute(select(account_rows.c.id))).scalars())

    return await system.runtime.db.transaction(work, write=False)


async def test_unlink_refused_while_in_use_then_gone_and_linked_again(database_url: str) -> None:
    async with running_system(database_url, secret_key=KEY) as system:
        sim, runtime, token = system.sim, system.runtime, system.token
        executors = runtime.executors
        assert executors is not None
        second = sim.add_account("SIM002")
        await _link(system, second.api_key, second.access_token)
        await eventually(lambda: "family-2" in executors.live)
        clients = len(runtime.closing)
        assert clients == 1  # its REST client, closed with the runtime or when unlinked

        # One of its triggers places an order (a finished trigger: it does not hold it).
        system.push(token, "1600.00")
        placed = await system.create(trigger_price_1="1610.00", account="family-2")
        system.push(token, "1612.00")
        assert (await system.settled(placed["id"]))["status"] == "placed"
        # One active, one paused: each holds the account.
        active = await system.create(trigger_price_1="9000.00", account="family-2")
        paused = await system.create(trigger_price_1="9000.00", account="family-2", paused=True)
        assert paused["status"] == "paused"

        # Another user's account is unknown to them, as an unknown id is; nothing changes.
        for account_id, caller in (("family-2", system.operator_token), ("nobody-9", None)):
            unknown = await _unlink(system, account_id, caller)
            assert unknown.status_code == 404, unknown.text
            assert ("account_id", "not_found") in _rules(unknown)
        # The default account is the settings': never unlinked.
        default = await _unlink(system, "default")
        assert default.status_code == 409, default.text
        assert ("account_id", "default_account") in _rules(default)
        assert "default" in default.json()["detail"]

        refused = await _unlink(system, "family-2")
        assert refused.status_code == 409, refused.text
        assert ("account_id", "in_use") in _rules(refused)
        assert "2 trigger(s)" in refused.json()["detail"]
        cancelled = await system.client.delete(f"/triggers/{active['id']}", headers=system.auth())
        assert cancelled.status_code == 200, cancelled.text
        still = await _unlink(system, "family-2")
        assert still.status_code == 409, still.text
        assert "1 trigger(s)" in still.json()["detail"]  # the paused one
        # Nothing changed: the engine trades through it, it is listed and stored.
        assert "family-2" in executors.linked
        assert "family-2" in executors.live
        assert await _ids(system) == ["default", "family-2"]
        assert await _stored(system) == ["family-2"]

        gone = await system.client.delete(f"/triggers/{paused['id']}", headers=system.auth())
        assert gone.status_code == 200, gone.text
        unlinked = await _unlink(system, "family-2")
        assert unlinked.status_code == 204, unlinked.text
        assert unlinked.content == b""
        # Out of the engine: no executor, session or live flag, its client closed.
        assert "family-2" not in executors.linked
        assert "family-2" not in executors.live
        assert "family-2" not in runtime.account_sessions()
        assert len(runtime.closing) == clients - 1
        # Its row (and the sealed secrets in it) deleted; no longer listed or usable.
        assert await _stored(system) == []
        assert await _ids(system) == ["default"]
        again = await _unlink(system, "family-2")
        assert again.status_code == 404, again.text
        listed = {k: v for k, v in placed.items() if k in ("instrument_token", "exchange")}
        refused_create = await system.client.post(
            "/triggers",
            json={
                **listed,
                "tradingsymbol": placed["tradingsymbol"],
                "trigger_type": "single",
                "transaction_type": "BUY",
                "quantity": 1,
                "product": "CNC",
                "trigger_price_1": "9000.00",
                "account": "family-2",
            },
            headers=system.auth(),
        )
        assert refused_create.status_code == 422, refused_create.text
        assert ("account", "unknown_account") in _rules(refused_create)
        # Its triggers' history still names it.
        for trigger in (placed, active, paused):
            assert (await system.trigger(trigger["id"]))["account"] == "family-2"

        # The same id linked again: traded again, its trigger's order in its own book.
        await _link(system, second.api_key, second.access_token)
        await eventually(lambda: "family-2" in executors.live)
        assert await _ids(system) == ["default", "family-2"]
        later = await system.create(trigger_price_1="1620.00", account="family-2")
        system.push(token, "1625.00")
        done = await system.settled(later["id"])
        assert done["status"] == "placed"
        assert sorted(o["tag"] for o in second.orders()) == sorted(
            [(await system.trigger(placed["id"]))["broker_tag"], done["broker_tag"]]
        )
