"""The composition: `build` and `hmt run` come up and stop cleanly on both stores, with and
without HMT_SECRET_KEY, against the simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from hmt.compose import bridge, build
from hmt.compose.upstox import UpstoxFeedPort
from hmt.config import ClaimDurability, Settings, SqliteWriters
from hmt.core.lifecycle import Status
from hmt.core.throttle import UPSTOX_ORDER_LIMITS
from hmt.core.types import InstrumentToken, Leg
from hmt.engine.bridge import EngineLoop
from hmt.engine.session import SessionState
from hmt.sim.simulator import Simulator
from hmt.sim.upstox.server import UpstoxSim
from hmt.upstox.tags import broker_tag
from tests.support.brokers import UPSTOX_KEY, UPSTOX_RELIANCE
from tests.support.engine_process import engine_process
from tests.support.eventually import eventually
from tests.support.factories import INFY, make_trigger
from tests.support.flush import NOT_FLUSHED, watch_flush

KEY = "compose-test-sealing-key-0123456789"


def _settings(sim: Simulator, database_url: str, secret_key: str | None) -> Settings:
    return Settings(
        database_url=database_url,
        broker="paper",
        kite_api_url=sim.api_url,
        kite_ws_url=sim.ws_url,
        kite_api_key=sim.api_key,
        kite_access_token=sim.access_token,
        reconnect_delay_ms=50,
        health_check_interval_ms=100,
        secret_key=secret_key,
    )


@pytest.mark.parametrize("secret_key", [None, KEY], ids=["no-key", "key"])
async def test_build_start_close_leaves_nothing_running(
    database_url: str, secret_key: str | None
) -> None:
    """build() + start() reaches running with its loops and a connected ticker; close() ends
    every task it started and a second runtime can open the same database."""
    async with Simulator(seed=3, heartbeat_interval=0.2) as sim:
        before = asyncio.all_tasks()
        runtime = await build(_settings(sim, database_url, secret_key))
        assert (runtime.accounts is not None) is (secret_key is not None)
        assert runtime.session.state is SessionState.VALID
        await runtime.start()
        try:
            await eventually(lambda: runtime.feed.connected, within=10)
            assert runtime.engine.state.value == "running"
            # expiry, claim sweep, health, the performance history's sampler (HMT_METRICS_SAMPLE_S
            # is 10 by default), + the change feed on PostgreSQL
            loops = 4 + (runtime.db.dialect == "postgresql")
            assert runtime.supervisor.running == loops
            # brackets' fills (issue 14), + the daily login reminder when notifications can be
            # kept (they need HMT_SECRET_KEY)
            assert runtime.supervisor.other_loops == 1 + (secret_key is not None)
            await eventually(lambda: runtime.supervisor.last_health is not None)
            assert runtime.health().verdict.value == "ok"
            assert runtime.stats()["state"] == "running"
            stored = await runtime.use_access_token(sim.access_token)
            assert stored is (secret_key is not None)
            # The day's instrument master was fetched at start-up, in the background.
            await eventually(lambda: runtime.supervisor.warming == 0)
            assert sim.counters["rest_instruments"] == 1
            copy, why = await runtime.instruments.copy()
            assert (copy is not None, why) == (True, "")
            assert sim.counters["rest_instruments"] == 1
        finally:
            await runtime.close()
        assert runtime.supervisor.running == 0
        assert runtime.supervisor.other_loops == 0
        assert runtime.engine.state.value == "stopped"
        await asyncio.sleep(0)  # let cancelled tasks finish their last step
        leftover = {t for t in asyncio.all_tasks() - before if not t.done()}
        leftover.discard(asyncio.current_task())  # type: ignore[arg-type]
        assert leftover == set(), leftover

        again = await build(_settings(sim, database_url, secret_key))
        await again.close()  # built, never started: closing is still clean


async def test_awaiting_a_login_the_master_is_not_fetched_at_start_up(sqlite_url: str) -> None:
    """With no broker session yet the start-up fetch is skipped (Kite would refuse it, and the
    refusal would hold off the first real fetch after the login for the retry wait)."""
    async with Simulator(seed=3, heartbeat_interval=0.2) as sim:
        runtime = await build(
            Settings(
                database_url=sqlite_url,
                broker="paper",
                kite_api_url=sim.api_url,
                kite_ws_url=sim.ws_url,
                kite_api_key=sim.api_key,
                kite_api_secret=sim.api_secret,
                reconnect_delay_ms=50,
                secret_key=KEY,
            )
        )
        assert runtime.awaiting_login
        await runtime.start()
        try:
            assert runtime.supervisor.warming == 0
            await asyncio.sleep(0.2)
            assert sim.counters["rest_instruments"] == 0
        finally:
            await runtime.close()


@pytest.mark.slow
@pytest.mark.parametrize("secret_key", [None, KEY], ids=["no-key", "key"])
async def test_hmt_run_serves_then_exits_zero_on_sigterm(
    database_url: str, secret_key: str | None, tmp_path: Path
) -> None:
    """The real `hmt run` reaches a running engine with a connected ticker, and SIGTERM makes
    it stop the engine and exit 0 without an error logged."""
    settings = {} if secret_key is None else {"secret_key": secret_key}
    async with (
        Simulator(seed=3, heartbeat_interval=0.2) as sim,
        engine_process(sim, database_url, tmp_path, **settings) as engine,
    ):
        await engine.ready()
        async with httpx.AsyncClient(base_url=engine.url, timeout=5) as client:

            async def healthy() -> bool:
                response = await client.get("/health")
                return bool(response.json()["status"] == "ok")

            await eventually(healthy, within=15)
        assert await engine.stop() == 0, engine.output()
        assert engine.events("engine_started"), engine.output()
        assert engine.events("engine_stopped"), engine.output()
        errors = [
            line
            for line in engine.output(last=1 << 30).splitlines()
            if '"level": "error"' in line or "Traceback" in line or "destroyed" in line
        ]
        assert errors == [], "\n".join(errors)


@pytest.mark.parametrize("durability", list(ClaimDurability))
async def test_the_composed_engines_claim_waits_for_the_disk_only_when_sync(
    database_url: str, durability: ClaimDurability
) -> None:
    """As `hmt run` builds it: with HMT_CLAIM_DURABILITY=async the fired trigger's claim
    commits with synchronous_commit off (SQLite: NORMAL), and it is the only such
    transaction; with `sync` there is none."""
    async with Simulator(seed=5, heartbeat_interval=0.2) as sim:
        sim.push_price(INFY, "1000.00")
        settings = _settings(sim, database_url, None).model_copy(
            update={"claim_durability": durability}
        )
        runtime = await build(settings)
        seen: list[tuple[bool, str]] = []
        watch_flush(runtime.db, seen)
        await runtime.start()
        try:
            trigger = await runtime.triggers.create(make_trigger(trigger_price_1=101_000))
            await runtime.engine.refresh(trigger.id)
            sim.push_price(INFY, "1015.00")

            async def placed() -> bool:
                record = await runtime.triggers.load(trigger.id)
                return record is not None and record.status is Status.PLACED

            await eventually(placed, within=10)
        finally:
            await runtime.close()
        deferred = [setting for durable, setting in seen if not durable]
        expected = [NOT_FLUSHED[runtime.db.dialect]] if durability is ClaimDurability.ASYNC else []
        assert deferred == expected


@pytest.mark.parametrize("writers", list(SqliteWriters))
async def test_the_composed_sqlite_writers_share_one_gate_unless_busy_wait(
    database_url: str, writers: SqliteWriters
) -> None:
    """As `hmt run` builds it (HMT_SQLITE_WRITERS): with `queued` (the default) the
    engine's database and the API's take turns at one gate, and a fired trigger's claim
    and outcome pass through it; with `busy_wait`, or on PostgreSQL, there is none."""
    async with Simulator(seed=5, heartbeat_interval=0.2) as sim:
        sim.push_price(INFY, "1000.00")
        settings = _settings(sim, database_url, None).model_copy(update={"sqlite_writers": writers})
        runtime = await build(settings)
        await runtime.start()
        try:
            queued = runtime.db.dialect == "sqlite" and writers is SqliteWriters.QUEUED
            assert (runtime.db.gate is not None) is queued
            api = await bridge(runtime, EngineLoop(asyncio.get_running_loop()))
            try:
                assert api.db.gate is runtime.db.gate
            finally:
                await api.db.dispose()
            trigger = await runtime.triggers.create(make_trigger(trigger_price_1=101_000))
            await runtime.engine.refresh(trigger.id)
            turns: list[bool] = []
            gate = runtime.db.gate
            if gate is not None:
                acquire, try_acquire = gate.acquire, gate.try_acquire

                async def counted(*, urgent: bool) -> None:
                    turns.append(urgent)
                    await acquire(urgent=urgent)

                def tried() -> bool:  # the inline claim's turn, never waited for
                    turns.append(True)
                    return try_acquire()

                gate.acquire = counted  # type: ignore[method-assign]
                gate.try_acquire = tried  # type: ignore[method-assign]
            sim.push_price(INFY, "1015.00")

            async def placed() -> bool:
                record = await runtime.triggers.load(trigger.id)
                return record is not None and record.status is Status.PLACED

            await eventually(placed, within=10)
            if queued:
                assert True in turns  # the claim's
                assert False in turns  # the outcome's
            else:
                assert turns == []
        finally:
            await runtime.close()


def _upstox_settings(sim: UpstoxSim, database_url: str, **more: object) -> Settings:
    return Settings(
        database_url=database_url,
        broker="paper",
        paper_broker="upstox",
        upstox_api_url=sim.api_url,
        upstox_client_id=sim.client_id,
        upstox_access_token=sim.access_token,
        reconnect_delay_ms=50,
        health_check_interval_ms=100,
        **more,  # type: ignore[arg-type]
    )


async def test_build_on_upstox_connects_its_feed_and_reads_its_master(database_url: str) -> None:
    """HMT_PAPER_BROKER=upstox builds Upstox's parts: its feed connects, its master is read
    from the simulator, its order limits throttle; close() ends every task it started."""
    async with UpstoxSim(seed=3) as sim:
        before = asyncio.all_tasks()
        runtime = await build(_upstox_settings(sim, database_url, secret_key=KEY))
        assert runtime.session.state is SessionState.VALID
        limits = [limit for limit, _ in runtime.engine.stats.headroom()]
        assert sorted(limits, key=lambda x: x.seconds) == list(UPSTOX_ORDER_LIMITS)
        await runtime.start()
        try:
            await eventually(lambda: runtime.feed.connected, within=10)
            await eventually(lambda: runtime.supervisor.warming == 0)
            copy, why = await runtime.instruments.copy()
            assert why == ""
            assert copy is not None
            assert copy.by_id[InstrumentToken(UPSTOX_RELIANCE.token)].tradingsymbol == "RELIANCE"
            assert sim.counters["/market-quote/instruments/exchange/complete.json.gz"] == 1
            await eventually(lambda: runtime.supervisor.last_health is not None)
            assert runtime.health().verdict.value == "ok"
            status = runtime.feed.status()
            assert (status.state, status.connected, status.connections) == ("connected", True, 1)
            # The session is sealed under the Upstox app's client id, as Kite's under its key.
            assert await runtime.use_access_token(sim.access_token) is True
            assert runtime.accounts is not None
            stored = await runtime.accounts.load("hmt-engine")
            assert stored is not None
            assert stored.api_key == sim.client_id
        finally:
            await runtime.close()
        assert runtime.supervisor.running == 0
        await asyncio.sleep(0)
        leftover = {t for t in asyncio.all_tasks() - before if not t.done()}
        leftover.discard(asyncio.current_task())  # type: ignore[arg-type]
        assert leftover == set(), leftover


async def test_an_upstox_trigger_stored_before_start_is_subscribed_once_the_master_is_read(
    sqlite_url: str,
) -> None:
    """The book is loaded before any master is read: Upstox's key for the id is not known
    yet, so the feed holds it and subscribes it when the master comes in; the trigger fires."""
    async with UpstoxSim(seed=3) as sim:
        first = await build(_upstox_settings(sim, sqlite_url))
        trigger = make_trigger(
            instrument_token=UPSTOX_RELIANCE.token,
            tradingsymbol="RELIANCE",
            trigger_price_1=251_000,
            quantity=1,
        )
        await first.triggers.create(trigger)
        await first.close()

        runtime = await build(_upstox_settings(sim, sqlite_url))
        await runtime.start()
        try:
            await eventually(lambda: runtime.feed.status().subscribed_tokens == 1, within=10)
            feed = runtime.feed
            assert isinstance(feed, UpstoxFeedPort)
            assert feed.pending == set()
            await sim.push_price(UPSTOX_KEY, 2510.0)

            async def placed() -> bool:
                found = await runtime.triggers.get("alice", trigger.id)
                return found.status is Status.PLACED

            await eventually(placed, within=10)
            (order,) = sim.order_rows()
            assert order["instrument_token"] == UPSTOX_KEY
            assert order["tag"] == broker_tag(trigger.id, Leg.FIRST)
        finally:
            await runtime.close()
