"""RELIABILITY test 16: the broker session expires mid-run, and a new token resumes firing.

An expired token makes Kite answer 403 TokenException to orders and to the
ticker's handshake. The engine must stop sending after the first 403, say
`login_required` in /health and /stats, mark nothing `failed`, and fire the
triggers that still hold on the first tick after a new token is set.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.support.audit import audit, backend
from tests.support.eventually import eventually
from tests.support.system import System, running_system

INFY = 408065
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


async def test_expired_token_stops_orders_until_a_new_token(database_url: str) -> None:
    """Orders 403 (the open ticker link still streams): one attempt, login_required, no
    `failed`; after a new token the still-true triggers fire on the next tick, once each."""
    async with running_system(database_url, seed=SEED) as system:
        sim, runtime = system.sim, system.runtime
        system.push(INFY, "1600.00")
        first = await system.create(trigger_price_1="1610.00")
        second = await system.create(trigger_price_1="1620.00")
        never = await system.create(transaction_type="SELL", trigger_price_1="1500.00")
        ids = [first["id"], second["id"], never["id"]]

        # Kite's tokens lapse; an open ticker connection is not asked again.
        sim.sessions.expire_all()
        sent_before = sim.counters["rest_place_order"]
        system.push(INFY, "1610.00")
        await eventually(lambda: runtime.engine.state.value == "login_required")
        system.push(INFY, "1625.00")  # crosses the second trigger too: nothing may be sent
        await eventually(lambda: runtime.engine.last_ltp.get(INFY) == 162_500)
        attempts_after_expiry = sim.counters["rest_place_order"] - sent_before

        # The ticker's reconnect meets the same 403.
        sim.ticker.drop_all()
        await eventually(lambda: runtime.feed.ticker.stats().state == "token_invalid")
        code, health = await _health(system)
        stats = await _stats(system)
        expired = await audit(system, ids)
        print(
            f"\nRELIABILITY-16 rest-first backend={backend(database_url)} seed={SEED} "
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
        assert sim.orders() == []
        released = [e["kind"] for e in expired.records[0]["events"]]
        assert "released" in released

        # A new login: orders and ticks resume, and the ticker's snapshot is the next tick.
        runtime.set_access_token(sim.renew_session())
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


async def test_expiry_seen_by_the_ticker_first(database_url: str) -> None:
    """sim.expire_session() cuts the ticker, whose reconnect gets 403: login_required is shown,
    nothing is sent or failed; a new token reconnects and the still-true trigger fires once."""
    async with running_system(database_url, seed=SEED) as system:
        sim, runtime = system.sim, system.runtime
        system.push(INFY, "1600.00")
        trigger = await system.create(trigger_price_1="1610.00")
        sim.expire_session()
        await eventually(lambda: runtime.feed.ticker.stats().state == "token_invalid")
        system.push(INFY, "1615.00")  # crosses while the engine cannot hear it
        code, health = await _health(system)
        stats = await _stats(system)
        record = await system.trigger(trigger["id"])
        print(
            f"\nRELIABILITY-16 ticker-first backend={backend(database_url)} seed={SEED} "
            f"order_attempts={sim.counters['rest_place_order']} state={stats['state']} "
            f"ws_state={stats['ws']['state']} health={code} {health} status={record['status']}"
        )
        assert sim.counters["rest_place_order"] == 0
        assert code == 503
        assert _login_down(health)
        assert stats["state"] == "login_required"
        assert record["status"] == "active"

        runtime.set_access_token(sim.renew_session())
        placed = await system.settled(trigger["id"])
        result = await audit(system, [trigger["id"]])
        print(
            f"RELIABILITY-16 ticker-first resumed backend={backend(database_url)} "
            f"state={runtime.engine.state.value} {result.figures()}"
        )
        assert placed["status"] == "placed"
        assert result.exactly_once(), result.figures()
        assert runtime.engine.state.value == "running"
