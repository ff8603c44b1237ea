"""Several Upstox accounts in an Upstox engine (docs/accounts.md): the default account and
a linked one on the Upstox simulator's two users, one feed (the default account's) for
both; each trigger's order reaches its own account's book only, the linked account's
login lapsing pauses only its trigger, and a new token (PUT, or its login through
/upstox/callback) places it; a linked Kite account is stored, not traded. Both stores."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from hmt.sim.upstox.server import UpstoxAccount, UpstoxSim
from tests.support.brokers import KITE_INFY, UPSTOX_KEY
from tests.support.eventually import eventually
from tests.support.system import System, running_system

KEY = "a-test-sealing-key-0123456789"
SEED = 17


def _login_settings(sim: UpstoxSim) -> dict[str, Any]:
    return {"upstox_redirect_uri": sim.redirect_uri}


async def _accounts(system: System) -> dict[str, dict[str, Any]]:
    response = await system.client.get("/accounts", headers=system.auth())
    assert response.status_code == 200, response.text
    return {account["id"]: account for account in response.json()}


def _tags(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(row["tag"] for row in rows)


async def _login(system: System, account_id: str) -> dict[str, Any]:
    """The account's daily login: GET /accounts/{id}/login, the simulator's dialog, then
    /upstox/callback with the code and the state naming the account."""
    start = await system.client.get(f"/accounts/{account_id}/login", headers=system.auth())
    assert start.status_code == 302, start.text
    at_upstox = await system.client.get(start.headers["location"])
    back = {k: v[0] for k, v in parse_qs(urlsplit(at_upstox.headers["location"]).query).items()}
    done = await system.client.get("/upstox/callback", params=back)
    assert done.status_code == 200, done.text
    body: dict[str, Any] = done.json()
    return body


async def test_two_upstox_accounts_each_order_reaches_its_own_and_one_lapses_alone(
    database_url: str,
) -> None:
    async with running_system(
        database_url,
        broker="upstox",
        secret_key=KEY,
        seed=SEED,
        sim_overrides=_login_settings,
    ) as system:
        sim, runtime, token = system.sim, system.runtime, system.token
        second: UpstoxAccount = sim.add_account("SIM002")
        linked = await system.client.post(
            "/accounts",
            json={
                "id": "up-2",
                "broker": "upstox",
                "label": "Upstox, second",
                "api_key": second.client_id,
                "api_secret": second.client_secret,
                "access_token": second.access_token,
            },
            headers=system.auth(),
        )
        assert linked.status_code == 201, linked.text
        assert linked.json()["session"] == "valid"
        assert second.access_token not in linked.text
        executors = runtime.executors
        assert executors is not None
        await eventually(lambda: "up-2" in executors.live)  # its order book was read

        system.push(token, "2400.00")
        mine = await system.create(trigger_price_1="2410.00")
        theirs = await system.create(trigger_price_1="2410.00", account="up-2")
        assert (mine["account"], theirs["account"]) == ("default", "up-2")
        await eventually(lambda: UPSTOX_KEY in sim.subscribed())  # on the engine's one feed
        system.push(token, "2412.00")
        placed = [await system.settled(t["id"]) for t in (mine, theirs)]
        assert [p["status"] for p in placed] == ["placed", "placed"]
        assert _tags(sim.order_rows()) == [placed[0]["broker_tag"]]
        assert _tags(second.order_rows()) == [placed[1]["broker_tag"]]
        assert {row["placed_by"] for row in second.order_rows()} == {"SIM002"}
        # One feed, the default account's: the linked account opened none of its own.
        assert sim.feed_connections() == 1

        # The linked account's login lapses at Upstox: only its trigger pauses.
        second.expire_session()
        later_mine = await system.create(trigger_price_1="2420.00")
        later_theirs = await system.create(trigger_price_1="2420.00", account="up-2")
        system.push(token, "2425.00")
        done = await system.settled(later_mine["id"])
        assert done["status"] == "placed"
        await eventually(lambda: "up-2" not in executors.live)
        # Its order was refused (401) and the claim given back; armed again, it fired
        # again and is kept out of the book until the account is live: nothing sent.
        paused = runtime.engine.paused_triggers
        await eventually(lambda: paused("up-2") == {later_theirs["id"]})
        waiting = await system.trigger(later_theirs["id"])
        assert (waiting["status"], waiting["order_id"]) == ("active", None)
        assert _tags(sim.order_rows()) == sorted([placed[0]["broker_tag"], done["broker_tag"]])
        assert _tags(second.order_rows()) == [placed[1]["broker_tag"]]
        accounts = await _accounts(system)
        assert accounts["default"]["session"] == "valid"
        assert accounts["up-2"]["session"] == "expired"
        health = (await system.client.get("/health")).json()
        assert any("up-2" in reason for reason in health["reasons"]), health
        assert runtime.engine.state.value == "running"
        assert runtime.feed.connected  # the feed is the default account's: still up

        # A new token for it: its book is read, then its paused trigger fires there.
        renewed = await system.client.put(
            "/accounts/up-2/session",
            json={"access_token": second.access_token},
            headers=system.auth(),
        )
        assert renewed.status_code == 200, renewed.text
        assert renewed.json()["session"] == "valid"
        system.push(token, "2428.00")
        resumed = await system.settled(later_theirs["id"])
        assert resumed["status"] == "placed"
        assert _tags(second.order_rows()) == sorted(
            [placed[1]["broker_tag"], resumed["broker_tag"]]
        )
        assert len(sim.order_rows()) == 2

        # Lapsed again, its login renews it: the code exchanged with its own client id
        # and secret (the simulator's token for that user), the token used at once.
        second.expire_session()
        again = await system.create(trigger_price_1="2430.00", account="up-2")
        system.push(token, "2432.00")
        await eventually(lambda: paused("up-2") == {again["id"]})
        assert await _login(system, "up-2") == {
            "account": "up-2",
            "broker_session": "set",
            "stored": True,
        }
        assert (await _accounts(system))["up-2"]["session"] == "valid"
        system.push(token, "2434.00")
        logged_in = await system.settled(again["id"])
        assert logged_in["status"] == "placed"
        assert logged_in["broker_tag"] in _tags(second.order_rows())
        assert len(sim.order_rows()) == 2
        opened = await runtime.linked.open("up-2")  # type: ignore[union-attr]
        assert opened is not None
        assert opened.access_token is not None
        assert opened.access_token.get_secret_value() == second.access_token

        # Unlinked (nothing of it unsettled): out of the engine; the engine's feed is the
        # default account's, so it stays.
        unlinked = await system.client.delete("/accounts/up-2", headers=system.auth())
        assert unlinked.status_code == 204, unlinked.text
        assert "up-2" not in executors.linked
        assert runtime.feed.connected

        # Kite's ticker runs on the default account's token: an Upstox engine has none,
        # so a linked Kite account is stored, not traded, and a trigger naming it refused.
        kite = await system.client.post(
            "/accounts",
            json={"id": "kite-1", "broker": "kite", "label": "Kite", "api_key": "k1"},
            headers=system.auth(),
        )
        assert kite.status_code == 201, kite.text
        assert "kite-1" not in runtime.account_sessions()
        refused = await system.client.post(
            "/triggers",
            json={
                "instrument_token": KITE_INFY.token,
                "exchange": KITE_INFY.exchange,
                "tradingsymbol": KITE_INFY.tradingsymbol,
                "trigger_type": "single",
                "transaction_type": "BUY",
                "quantity": 1,
                "product": "CNC",
                "trigger_price_1": "1700.00",
                "account": "kite-1",
            },
            headers=system.auth(),
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["errors"][0]
        assert (error["field"], error["rule"]) == ("account", "other_broker"), refused.text
