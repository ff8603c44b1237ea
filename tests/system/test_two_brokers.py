"""Two brokers in one process (docs/accounts.md, "Two brokers in one process"): the
default Kite account and a linked Upstox account trade at once, each trigger's order
reaches its own account at its own broker only, and the Upstox account's login lapsing
leaves Kite firing. Both stores, both simulators."""

from __future__ import annotations

from typing import Any

from tests.support.brokers import KITE_INFY, UPSTOX_KEY, UPSTOX_RELIANCE, SimSide, start_sim
from tests.support.eventually import eventually
from tests.support.system import System, running_system
from tests.support.two_brokers import SEALING_KEY, kite_beside_upstox, link_upstox

KEY = SEALING_KEY
SEED = 13


async def _link_upstox(system: System, side: SimSide) -> dict[str, Any]:
    linked = await link_upstox(system, side)
    assert side.sim.access_token not in str(linked)
    return linked


def _upstox_body(**fields: Any) -> dict[str, Any]:
    return {
        "instrument_token": UPSTOX_RELIANCE.token,
        "exchange": UPSTOX_RELIANCE.exchange,
        "tradingsymbol": UPSTOX_RELIANCE.tradingsymbol,
        "account": "up-1",
        **fields,
    }


def _tags(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(row["tag"] for row in rows)


async def test_kite_and_upstox_accounts_each_order_reaches_its_own_broker(
    database_url: str,
) -> None:
    async with kite_beside_upstox(database_url, SEED) as (system, upstox):
        kite, runtime = system.side, system.runtime
        account = await _link_upstox(system, upstox)
        assert (account["broker"], account["session"]) == ("upstox", "valid")
        executors = runtime.executors
        assert executors is not None
        await eventually(lambda: "up-1" in executors.live)  # its order book was read

        kite.push(KITE_INFY.token, "1600.00")
        upstox.push(UPSTOX_RELIANCE.token, "2400.00")
        on_kite = await system.create(trigger_price_1="1610.00")
        on_upstox = await system.create(**_upstox_body(trigger_price_1="2410.00"))
        assert (on_kite["account"], on_upstox["account"]) == ("default", "up-1")
        # The Upstox instrument is subscribed on the Upstox feed, not Kite's ticker.
        await eventually(lambda: UPSTOX_KEY in upstox.sim.subscribed())
        kite.push(KITE_INFY.token, "1612.00")
        upstox.push(UPSTOX_RELIANCE.token, "2412.00")
        placed = [await system.settled(t["id"]) for t in (on_kite, on_upstox)]
        assert [p["status"] for p in placed] == ["placed", "placed"]
        assert _tags(kite.orders()) == [placed[0]["broker_tag"]]
        assert _tags(upstox.orders()) == [placed[1]["broker_tag"]]
        stats = (await system.client.get("/stats", headers=system.auth())).json()
        assert stats["ws"]["connected"], stats
        assert stats["ws_upstox"]["connected"], stats

        # An instrument of the other broker than its account's is refused, naming both.
        for body in (
            _upstox_body(account=None, trigger_price_1="2500.00"),
            {
                **_upstox_body(trigger_price_1="1700.00"),
                "instrument_token": KITE_INFY.token,
                "tradingsymbol": "INFY",
            },
        ):
            refused = await system.client.post(
                "/triggers",
                json={
                    "trigger_type": "single",
                    "transaction_type": "BUY",
                    "quantity": 1,
                    "product": "CNC",
                    **body,
                },
                headers=system.auth(),
            )
            assert refused.status_code == 422, refused.text
            assert refused.json()["errors"][0]["rule"] == "instrument_broker", refused.text

        # The Upstox account's login lapses: Kite keeps firing, the Upstox trigger waits.
        await upstox.expire_session()
        later_kite = await system.create(trigger_price_1="1620.00")
        later_upstox = await system.create(**_upstox_body(trigger_price_1="2420.00"))
        await eventually(lambda: "up-1" not in executors.live)
        kite.push(KITE_INFY.token, "1625.00")
        done = await system.settled(later_kite["id"])
        assert done["status"] == "placed"
        assert _tags(kite.orders()) == sorted([placed[0]["broker_tag"], done["broker_tag"]])
        waiting = await system.trigger(later_upstox["id"])
        assert (waiting["status"], waiting["order_id"]) == ("active", None)
        assert _tags(upstox.orders()) == [placed[1]["broker_tag"]]
        accounts = {
            a["id"]: a for a in (await system.client.get("/accounts", headers=system.auth())).json()
        }
        assert accounts["default"]["session"] == "valid"
        assert accounts["up-1"]["session"] == "expired"
        health = (await system.client.get("/health")).json()
        assert any("up-1" in reason for reason in health["reasons"]), health

        # A new token for it: its book is read, the feed comes back, and it fires there.
        renewed = await system.client.put(
            "/accounts/up-1/session",
            json={"access_token": upstox.renew_session()},
            headers=system.auth(),
        )
        assert renewed.status_code == 200, renewed.text
        assert renewed.json()["session"] == "valid"
        await eventually(lambda: "up-1" in executors.live)
        await eventually(lambda: runtime.stats()["ws_upstox"]["connected"], within=10)
        upstox.push(UPSTOX_RELIANCE.token, "2425.00")
        resumed = await system.settled(later_upstox["id"])
        assert resumed["status"] == "placed"
        assert _tags(upstox.orders()) == sorted([placed[1]["broker_tag"], resumed["broker_tag"]])
        assert len(kite.orders()) == 2


async def test_a_linked_upstox_account_trades_again_after_a_restart(database_url: str) -> None:
    """The account and its trigger are stored: a new process opens the account at start,
    arms the trigger on Upstox's feed, and its order reaches the Upstox account."""
    async with start_sim("upstox", SEED) as sim:
        upstox = SimSide(sim)
        try:
            async with running_system(
                database_url, secret_key=KEY, seed=SEED, upstox_api_url=sim.api_url
            ) as system:
                await _link_upstox(system, upstox)
                upstox.push(UPSTOX_RELIANCE.token, "2400.00")
                await upstox.pushed()
                waiting = await system.create(**_upstox_body(trigger_price_1="2410.00"))
                assert (await system.trigger(waiting["id"]))["status"] == "active"
            async with running_system(
                database_url, secret_key=KEY, seed=SEED, upstox_api_url=sim.api_url
            ) as system:
                executors = system.runtime.executors
                assert executors is not None
                await eventually(lambda: "up-1" in executors.live)
                await eventually(lambda: UPSTOX_KEY in sim.subscribed())
                upstox.push(UPSTOX_RELIANCE.token, "2412.00")
                placed = await system.settled(waiting["id"])
                assert placed["status"] == "placed"
                assert _tags(upstox.orders()) == [placed["broker_tag"]]
                assert system.side.orders() == []
        finally:
            upstox.cancel_pushes()


async def test_the_default_kite_accounts_lapse_leaves_the_upstox_account_firing(
    database_url: str,
) -> None:
    """Beside a linked account, the default account is one account among others: Kite
    refusing its orders parks its triggers alone (nothing claimed), the Upstox account's
    fire meanwhile, and a new Kite session places the parked one."""
    async with kite_beside_upstox(database_url, SEED) as (system, upstox):
        kite, runtime = system.side, system.runtime
        await _link_upstox(system, upstox)
        executors = runtime.executors
        assert executors is not None
        await eventually(lambda: "up-1" in executors.live)
        kite.push(KITE_INFY.token, "1600.00")
        upstox.push(UPSTOX_RELIANCE.token, "2400.00")
        await upstox.pushed()
        on_kite = await system.create(trigger_price_1="1610.00")
        on_upstox = await system.create(**_upstox_body(trigger_price_1="2410.00"))

        await kite.expire_session(close_feeds=False)  # orders refused; the ticker stays up
        kite.push(KITE_INFY.token, "1612.00")
        await eventually(lambda: not runtime.session.valid)
        # Refused (403) and given back, armed again, fired again: parked, nothing claimed.
        await eventually(lambda: runtime.engine.paused_triggers("default") == {on_kite["id"]})
        upstox.push(UPSTOX_RELIANCE.token, "2412.00")
        placed = await system.settled(on_upstox["id"])
        assert placed["status"] == "placed"
        assert _tags(upstox.orders()) == [placed["broker_tag"]]
        waiting = await system.trigger(on_kite["id"])
        assert (waiting["status"], waiting["order_id"]) == ("active", None)
        assert kite.orders() == []
        accounts = {
            a["id"]: a for a in (await system.client.get("/accounts", headers=system.auth())).json()
        }
        assert accounts["default"]["session"] == "expired"
        assert accounts["up-1"]["session"] == "valid"
        health = await system.client.get("/health")
        assert health.json()["status"] == "degraded", health.text  # the others still fire
        assert any("default account" in reason for reason in health.json()["reasons"])

        renewed = await system.client.put(
            "/broker/session",
            json={"access_token": kite.renew_session()},
            headers=system.auth(system.operator_token),
        )
        assert renewed.status_code == 200, renewed.text
        kite.push(KITE_INFY.token, "1614.00")
        done = await system.settled(on_kite["id"])
        assert done["status"] == "placed"
        assert _tags(kite.orders()) == [done["broker_tag"]]
        assert runtime.engine.paused_triggers("default") == frozenset()
