"""The Upstox login through `hmt sim --broker upstox`: dialog, state, code, sealed session."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select

from hmt.compose import ENGINE_ACCOUNT
from hmt.config import Settings
from hmt.engine.service import EngineState
from hmt.sim.upstox.server import UpstoxSim
from hmt.store.tables import broker_accounts
from hmt.upstox.session import login_url
from tests.support.eventually import eventually
from tests.support.system import System, running_system

KEY = "a-test-sealing-key-0123456789"
TOKEN_PATH = "/v2/login/authorization/token"


def _login_settings(sim: UpstoxSim) -> dict[str, Any]:
    return {"upstox_client_secret": sim.client_secret, "upstox_redirect_uri": sim.redirect_uri}


def _query(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


async def _at_upstox(system: System, client: httpx.AsyncClient | None = None) -> dict[str, str]:
    """The browser's path to the callback: /upstox/login -> Upstox's dialog (the simulator
    approves at once) -> the redirect URI's query (`code`, `state`)."""
    client = client or system.client
    start = await client.get(f"{system.api_url}/upstox/login")
    assert start.status_code == 302, start.text
    location = start.headers["location"]
    state = _query(location)["state"]
    sim = system.sim
    assert location == login_url(sim.client_id, sim.redirect_uri, state=state, api_url=sim.api_url)
    at_upstox = await client.get(location)
    assert at_upstox.status_code == 302, at_upstox.text
    back = at_upstox.headers["location"]
    assert back.startswith(f"{sim.redirect_uri}?")
    return _query(back)


async def test_upstox_login_stores_the_session_sealed_and_the_engine_resumes(
    database_url: str,
) -> None:
    """After an expiry, a login through /upstox/login resumes firing without a restart."""
    async with running_system(
        database_url, broker="upstox", secret_key=KEY, sim_overrides=_login_settings
    ) as system:
        engine, side = system.runtime.engine, system.side
        system.push(system.token, "1600.00")
        trigger = await system.create(trigger_price_1="1610.00")
        await side.expire_session()
        await eventually(lambda: system.feed_state() == "token_invalid")
        system.push(system.token, "1612.00")
        await side.pushed()
        assert (await system.trigger(trigger["id"]))["status"] == "active"

        back = await _at_upstox(system)
        done = await system.client.get("/upstox/callback", params=back)
        assert done.status_code == 200, done.text
        assert done.json() == {"broker_session": "set", "stored": True}
        assert "hmt_upstox_state" not in system.client.cookies  # the state is spent
        assert engine.state is EngineState.RUNNING
        await eventually(lambda: system.runtime.feed.connected)
        system.push(system.token, "1612.00")
        assert (await system.settled(trigger["id"]))["status"] == "placed"

        stored = await system.runtime.accounts.load(ENGINE_ACCOUNT)  # type: ignore[union-attr]
        assert stored is not None
        assert stored.access_token is not None
        token = stored.access_token.get_secret_value()
        assert token == side.sim.access_token  # what the exchange gave

        async def raw(conn: Any) -> Any:
            return (await conn.execute(select(broker_accounts))).one()

        row = await system.runtime.db.transaction(raw, write=False)
        assert row.access_token_sealed.startswith("hmt1.")
        assert token not in row.access_token_sealed


async def test_a_missing_or_wrong_state_is_refused_before_the_code_is_exchanged(
    sqlite_url: str,
) -> None:
    """No state, a forged one, another browser's, a replayed one: 403 naming the state, and
    the code is never sent to Upstox; a code Upstox refuses is 502; no code is 422."""
    async with running_system(
        sqlite_url, broker="upstox", secret_key=KEY, sim_overrides=_login_settings
    ) as system:
        client, counters = system.client, system.sim.counters

        async def refused(params: dict[str, str], by: httpx.AsyncClient = client) -> str:
            response = await by.get(f"{system.api_url}/upstox/callback", params=params)
            assert response.status_code == 403, response.text
            problem = response.json()
            assert problem["errors"][0]["field"] == "state"
            assert "/upstox/login" in problem["detail"]
            detail: str = problem["detail"]
            return detail

        back = await _at_upstox(system)
        assert "no state" in await refused({"code": back["code"]})
        assert "not one this hmt gave" in await refused({"code": back["code"], "state": "forged"})
        async with httpx.AsyncClient(timeout=10) as elsewhere:  # another browser: no cookie
            await refused(back, by=elsewhere)
            theirs = await _at_upstox(system, elsewhere)  # a state issued to that browser
            await refused({"code": back["code"], "state": theirs["state"]})
        assert counters[TOKEN_PATH] == 0  # nothing reached the exchange

        done = await client.get("/upstox/callback", params=back)
        assert done.status_code == 200, done.text
        await refused(back)  # replayed: the state was taken
        assert counters[TOKEN_PATH] == 1

        again = await _at_upstox(system)
        wrong = await client.get("/upstox/callback", params={**again, "code": "not-a-code"})
        assert wrong.status_code == 502
        assert "Upstox refused the login" in wrong.json()["detail"]
        missing = await client.get("/upstox/callback", params={"state": again["state"]})
        assert missing.status_code == 422
        assert missing.json()["errors"][0]["field"] == "code"
        assert system.runtime.engine.state is EngineState.RUNNING


async def test_upstox_login_without_a_login_configured_is_409(sqlite_url: str) -> None:
    """On Upstox without HMT_UPSTOX_CLIENT_SECRET, and on Kite, the routes name what is
    missing."""
    async with running_system(sqlite_url, broker="upstox") as system:
        for path in ("/upstox/login", "/upstox/callback?code=c&state=s"):
            response = await system.client.get(path)
            assert response.status_code == 409, response.text
            assert "HMT_UPSTOX_CLIENT_SECRET" in response.json()["detail"]
    async with running_system(sqlite_url) as system:
        response = await system.client.get("/upstox/login")
        assert response.status_code == 409
        assert "HMT_BROKER=upstox" in response.json()["detail"]


def test_the_login_reminder_links_to_the_brokers_own_login() -> None:
    """The reminder's link (`Settings.login_link`) is /upstox/login on Upstox."""
    paper = Settings(broker="paper", paper_broker="upstox", public_url="https://hmt.example.com")
    assert paper.login_link() == "https://hmt.example.com/upstox/login"
    assert Settings(broker="paper").login_link().endswith("/kite/login")
