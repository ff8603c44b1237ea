"""The broker session: Kite login through the simulator, stored sealed, used without a restart."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from hmt.compose import ENGINE_ACCOUNT, build
from hmt.config import ConfigError, Settings
from hmt.engine.service import EngineState
from hmt.sim.simulator import Simulator
from hmt.store.tables import broker_accounts
from tests.support.eventually import eventually
from tests.support.system import System, running_system

INFY = 408065
KEY = "a-test-sealing-key-0123456789"


def _login_settings(sim: Simulator) -> dict[str, Any]:
    return {"kite_api_secret": sim.api_secret, "kite_login_url": f"{sim.api_url}/connect/login"}


def _token_refused(system: System) -> bool:
    return str(system.runtime.feed.ticker.stats().state) == "token_invalid"


async def _login(system: System) -> Any:
    """The browser's path: /kite/login -> Kite (the simulator) -> /kite/callback."""
    system.sim.rest.redirect_url = f"{system.api_url}/kite/callback"
    start = await system.client.get("/kite/login")
    assert start.status_code == 302
    location = start.headers["location"]
    assert location.startswith(f"{system.sim.api_url}/connect/login?v=3&api_key=")
    at_kite = await system.client.get(location)
    assert at_kite.status_code == 302
    return await system.client.get(at_kite.headers["location"])


async def test_kite_login_stores_the_session_sealed_and_the_engine_resumes(
    database_url: str,
) -> None:
    """After an expiry, a login through /kite/login resumes firing without a restart."""
    async with running_system(
        database_url, secret_key=KEY, sim_overrides=_login_settings
    ) as system:
        engine = system.runtime.engine
        system.push(INFY, "1600.00")
        trigger = await system.create(trigger_price_1="1610.00")
        system.sim.expire_session()
        await eventually(lambda: _token_refused(system))
        system.push(INFY, "1612.00")
        assert (await system.trigger(trigger["id"]))["status"] == "active"  # nothing failed

        done = await _login(system)
        assert done.status_code == 200, done.text
        assert done.json() == {"broker_session": "set", "stored": True}
        assert engine.state is EngineState.RUNNING
        await eventually(lambda: system.runtime.feed.connected)
        system.push(INFY, "1612.00")
        assert (await system.settled(trigger["id"]))["status"] == "placed"

        stored = await system.runtime.accounts.load(ENGINE_ACCOUNT)  # type: ignore[union-attr]
        assert stored is not None
        assert stored.access_token is not None
        token = stored.access_token.get_secret_value()
        assert system.sim.sessions.valid(system.sim.api_key, token)

        async def raw(conn: Any) -> Any:
            return (await conn.execute(select(broker_accounts))).one()

        row = await system.runtime.db.transaction(raw, write=False)
        assert row.access_token_sealed.startswith("hmt1.")
        assert token not in row.access_token_sealed

        # A restart without HMT_KITE_ACCESS_TOKEN uses the stored session.
        later = await build(system.runtime.settings.model_copy(update={"kite_access_token": None}))
        try:
            assert not later.awaiting_login
            await later.feed.start()
            await eventually(lambda: later.feed.connected)
        finally:
            await later.feed.stop()
            await later.rest.aclose()
            await later.db.dispose()


async def test_a_callback_not_started_here_or_with_a_bad_token_changes_nothing(
    sqlite_url: str,
) -> None:
    """No state cookie is 403; a replayed callback is 403; a token Kite refuses is 502."""
    async with running_system(sqlite_url, secret_key=KEY, sim_overrides=_login_settings) as system:
        forged = await system.client.get(
            "/kite/callback", params={"request_token": system.sim.request_token()}
        )
        assert forged.status_code == 403
        done = await _login(system)
        assert done.status_code == 200
        replay = await system.client.get(done.request.url)
        assert replay.status_code == 403
        await system.client.get("/kite/login")  # a fresh state cookie
        refused = await system.client.get("/kite/callback", params={"request_token": "nope-123"})
        assert refused.status_code == 502
        assert "Kite refused the login" in refused.json()["detail"]
        missing = await system.client.get("/kite/callback")
        assert missing.status_code == 422
        assert missing.json()["errors"][0]["field"] == "request_token"
        assert system.runtime.engine.state is EngineState.RUNNING


async def test_kite_login_without_a_secret_is_409(sqlite_url: str) -> None:
    """Login is refused, naming the settings it needs, when HMT_KITE_API_SECRET is unset."""
    async with running_system(sqlite_url) as system:
        response = await system.client.get("/kite/login")
        assert response.status_code == 409
        assert "HMT_KITE_API_SECRET" in response.json()["detail"]


async def test_put_broker_session_is_operator_only_and_resumes_the_engine(
    database_url: str,
) -> None:
    """No token 401, a user's 403, bad bodies 422; the operator's token is used and stored."""
    async with running_system(database_url, secret_key=KEY) as system:
        system.push(INFY, "1600.00")
        trigger = await system.create(trigger_price_1="1610.00")
        system.sim.expire_session()
        await eventually(lambda: _token_refused(system))
        fresh = system.sim.renew_session()
        body = {"access_token": fresh}
        assert (await system.client.put("/broker/session", json=body)).status_code == 401
        as_user = await system.client.put("/broker/session", json=body, headers=system.auth())
        assert as_user.status_code == 403
        ops = system.auth(system.operator_token)
        for bad, rule in (({}, "missing"), ({"access_token": "x"}, "too_short")):
            response = await system.client.put("/broker/session", json=bad, headers=ops)
            assert response.status_code == 422
            assert response.json()["errors"][0]["field"] == "access_token"
            assert response.json()["errors"][0]["rule"] == rule
        extra = await system.client.put(
            "/broker/session", json={**body, "api_secret": "s"}, headers=ops
        )
        assert extra.status_code == 422
        done = await system.client.put("/broker/session", json=body, headers=ops)
        assert done.status_code == 200, done.text
        assert done.json() == {"broker_session": "set", "stored": True}
        assert fresh not in done.text
        system.push(INFY, "1611.00")
        assert (await system.settled(trigger["id"]))["status"] == "placed"


async def test_start_up_names_hmt_secret_key_when_login_needs_it(tmp_path: Any) -> None:
    """HMT_KITE_API_SECRET without HMT_SECRET_KEY stops start-up naming HMT_SECRET_KEY."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
        kite_api_url="http://127.0.0.1:9",
        kite_api_key="key",
        kite_api_secret="a-secret-value",
    )
    with pytest.raises(ConfigError, match="HMT_SECRET_KEY"):
        await build(settings)


async def test_with_no_token_anywhere_it_waits_for_a_login_and_a_wrong_key_is_survivable(
    sqlite_url: str,
) -> None:
    """No token and a login possible: the engine starts in login_required, firing nothing."""
    async with running_system(
        sqlite_url, secret_key=KEY, kite_access_token=None, sim_overrides=_login_settings
    ) as system:
        assert system.runtime.engine.state is EngineState.LOGIN_REQUIRED
        assert (await _login(system)).status_code == 200
        assert system.runtime.engine.state is EngineState.RUNNING
        other_key = system.runtime.settings.model_copy(
            update={"kite_access_token": None, "secret_key": SecretStr("another-key-0123456789abc")}
        )
        later = await build(other_key)  # the stored session cannot be opened: log in again
        try:
            assert later.awaiting_login
        finally:
            await later.rest.aclose()
            await later.db.dispose()
