"""RELIABILITY test 16: the broker session expires mid-run, and a new token resumes firing.

An expired token makes Kite answer 403 TokenException to orders and to the
ticker's handshake (Upstox: 401 UDAPI100050 to orders and to the feed's
authorize). The engine must stop sending after the first refusal, say
`login_required` in /health and /stats, mark nothing `failed`, and fire the
triggers that still hold on the first tick after a new token is set. Both
brokers' simulators, both stores.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.support.audit import audit, backend
from tests.support.eventually import eventually
from tests.support.system import BROKERS, System, running_system

SEED = 11


async def _health(system: System) -> tuple[int, dict[str, Any]]:
    response = await system.client.get("/health")
    return response.status_code, response.json()


async def _stats(system: System) -> dict[str, Any]:
    response = await system.client.get("/stats", headers=system.auth())
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _login_down(health: dict[str, Any]) -> bool:
    return health["status"] == "down" and any("login" in r for r in health["reasons"])


@pytest.mark.parametrize("broker", BROKERS)
async def test_expired_token_stops_orders_until_a_new_token(database_url: str, broker: str) -> None:
    """Orders refused (the open feed connection still streams): one attempt, login_required,
    no `failed`; after a new token the still-true triggers fire on the next tick, once each."""
    async with running_system(database_url, broker=broker, seed=SEED) as system:
        side, runtime, token = system.side, system.runtime, system.token
        system.push(token, "1600.00")
        first = await system.create(trigger_price_1="1610.00")
        second = await system.create(trigger_price_1="1620.00")
        never = await system.create(transaction_type="SELL", trigger_price_1="1500.00")
        ids = [first["id"], second["id"], never["id"]]
        await eventually(lambda: runtime.engine.last_ltp.get(token) == 160_000)

        # The broker's tokens lapse; an open feed connection is not asked again.
        await side.expire_session(close_feeds=False)
        sent_before = side.place_requests()
        system.push(token, "1610.00")
        await eventually(lambda: runtime.engine.state.value == "login_required")
        system.push(token, "1625.00")  # crosses the second trigger too: nothing may be sent
        await eventually(lambda: runtime.engine.last_ltp.get(token) == 162_500)
        attempts_after_expiry = side.place_requests() - sent_before

        # The feed's reconnect meets the same refusal.
        side.drop_feeds()
        await eventually(lambda: system.feed_state() == "token_invalid")
        code, health = await _health(system)
        stats = await _stats(system)
        expired = await audit(system, ids)
        print(
            f"\nRELIABILITY-16 rest-first backend={backend(database_url)} broker={broker} "
            f"seed={SEED} "
            f"order_attempts_after_expiry={attempts_after_expiry} "
            f"after_first_403={attempts_after_expiry - 1} state={stats['state']} "
            f"ws_state={stats['ws']['state']} health={code} {health} "
            f"wrongly_failed={expired.statuses['failed']} statuses={dict(expired.statuses)}"
        )
        assert attempts_after_expiry == 1  # the first trigger's, answered 403; then none
        assert stats["state"] == "login_required"
        assert stats["ws"]["state"] == "token_invalid"
        assert code == 503
        assert _login_down(health)
        assert expired.statuses == Counter(active=3)  # released, none failed
        assert system.orders() == []
        released = [e["kind"] for e in expired.records[0]["events"]]
        assert "released" in released

        # A new login: orders and ticks resume, and the ticker's snapshot is the next tick.
        runtime.set_access_token(side.renew_session())
        placed = [await system.settled(i) for i in ids[:2]]
        await eventually(lambda: runtime.feed.connected)
        code, health = await _health(system)
        resumed = await audit(system, ids)
        print(
            f"RELIABILITY-16 rest-first resumed backend={backend(database_url)} "
            f"state={runtime.engine.state.value} health={code} {health['status']} "
            f"{resumed.figures()}"
        )
        assert [p["status"] for p in placed] == ["placed", "placed"]
        assert resumed.statuses == Counter(placed=2, active=1)
        assert resumed.exactly_once(), resumed.figures()
        assert runtime.engine.state.value == "running"
        assert health["status"] in ("ok", "degraded")


@pytest.mark.parametrize("broker", BROKERS)
async def test_expiry_seen_by_the_ticker_first(database_url: str, broker: str) -> None:
    """The session's expiry cuts the feed, whose reconnect is refused: login_required is
    shown, nothing is sent or failed; a new token reconnects and the still-true trigger
    fires once."""
    async with running_system(database_url, broker=broker, seed=SEED) as system:
        side, runtime, token = system.side, system.runtime, system.token
        system.push(token, "1600.00")
        trigger = await system.create(trigger_price_1="1610.00")
        await eventually(lambda: runtime.engine.last_ltp.get(token) == 160_000)
        await side.expire_session()
        await eventually(lambda: system.feed_state() == "token_invalid")
        system.push(token, "1615.00")  # crosses while the engine cannot hear it
        await side.pushed()
        code, health = await _health(system)
        stats = await _stats(system)
        record = await system.trigger(trigger["id"])
        print(
            f"\nRELIABILITY-16 ticker-first backend={backend(database_url)} broker={broker} "
            f"seed={SEED} order_attempts={side.place_requests()} state={stats['state']} "
            f"ws_state={stats['ws']['state']} health={code} {health} status={record['status']}"
        )
        assert side.place_requests() == 0
        assert code == 503
        assert _login_down(health)
        assert stats["state"] == "login_required"
        assert record["status"] == "active"

        runtime.set_access_token(side.renew_session())
        placed = await system.settled(trigger["id"])
        result = await audit(system, [trigger["id"]])
        print(
            f"RELIABILITY-16 ticker-first resumed backend={backend(database_url)} "
            f"state={runtime.engine.state.value} {result.figures()}"
        )
        assert placed["status"] == "placed"
        assert result.exactly_once(), result.figures()
        assert runtime.engine.state.value == "running"
