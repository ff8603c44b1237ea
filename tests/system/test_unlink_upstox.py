"""Unlinking the Upstox account the shared Upstox feed runs on (docs/accounts.md,
"Unlinking an account"): refused while other Upstox accounts are traded; once it is the
last, the feed stops and the next Upstox account linked starts it again on its token.
Both stores, both simulators."""

from __future__ import annotations

from typing import Any

from tests.support.brokers import UPSTOX_KEY, UPSTOX_RELIANCE
from tests.support.eventually import eventually
from tests.support.system import System
from tests.support.two_brokers import kite_beside_upstox, link_upstox
from tests.system.test_two_brokers import _upstox_body


async def _stats(system: System) -> dict[str, Any]:
    response = await system.client.get("/stats", headers=system.auth())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_feed_account_goes_last_and_the_feed_with_it(database_url: str) -> None:
    async with kite_beside_upstox(database_url) as (system, upstox):
        executors = system.runtime.executors
        assert executors is not None
        await link_upstox(system, upstox, "up-1")  # the feed runs on its token
        await link_upstox(system, upstox, "up-2")
        await eventually(lambda: {"up-1", "up-2"} <= executors.live)

        refused = await system.client.delete("/accounts/up-1", headers=system.auth())
        assert refused.status_code == 409, refused.text
        assert refused.json()["errors"][0]["rule"] == "feed_account"
        assert "up-2" in refused.json()["detail"]
        assert {"up-1", "up-2"} <= set(executors.linked)  # nothing changed
        assert (await _stats(system))["ws_upstox"]["connected"]
        assert upstox.sim.feed_connections() == 1

        for account_id in ("up-2", "up-1"):
            gone = await system.client.delete(f"/accounts/{account_id}", headers=system.auth())
            assert gone.status_code == 204, gone.text
        assert not {"up-1", "up-2"} & set(executors.linked)
        await eventually(lambda: upstox.sim.feed_connections() == 0)
        assert "ws_upstox" not in await _stats(system)  # the Upstox feed stopped

        # Linked again: the feed starts on the new account's token and its trigger trades.
        await link_upstox(system, upstox, "up-1")
        await eventually(lambda: "up-1" in executors.live)
        upstox.push(UPSTOX_RELIANCE.token, "2400.00")
        trigger = await system.create(**_upstox_body(trigger_price_1="2410.00"))
        await eventually(lambda: UPSTOX_KEY in upstox.sim.subscribed())
        assert upstox.sim.feed_connections() == 1
        upstox.push(UPSTOX_RELIANCE.token, "2412.00")
        placed = await system.settled(trigger["id"])
        assert placed["status"] == "placed"
        assert [o["tag"] for o in upstox.orders()] == [placed["broker_tag"]]
