"""A linked Kite account's daily login through Kite's login page (docs/accounts.md):
GET /accounts/{id}/login -> Kite (the simulator) -> /kite/callback with the account
and a one-time state passed back in `redirect_params`; the request token exchanged
with that account's key and secret; its paused trigger placed in its own book.
Both stores."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from hmt.kite.session import exchange_request_token
from hmt.sim.simulator import SimAccount, Simulator
from hmt.store.tables import accounts as accounts_table
from tests.support.eventually import eventually
from tests.support.system import System, running_system

KEY = "a-test-sealing-key-0123456789"


def _login_settings(sim: Simulator) -> dict[str, Any]:
    return {"kite_login_url": f"{sim.api_url}/connect/login"}


async def _link(system: System, second: SimAccount, account_id: str = "family-2") -> None:
    linked = await system.client.post(
        "/accounts",
        json={
            "id": account_id,
            "broker": "kite",
            "label": "Family, second",
            "api_key": second.api_key,
            "api_secret": second.sessions.api_secret,
        },
        headers=system.auth(),
    )
    assert linked.status_code == 201, linked.text
    assert linked.json()["session"] == "awaiting_login"


async def _session(system: System, account_id: str) -> str:
    listed = await system.client.get("/accounts", headers=system.auth())
    return str(next(a for a in listed.json() if a["id"] == account_id)["session"])


async def _at_kite(system: System, account_id: str) -> str:
    """Start the account's login; Kite's (the simulator's) redirect back: its URL."""
    system.sim.rest.redirect_url = f"{system.api_url}/kite/callback"
    start = await system.client.get(f"/accounts/{account_id}/login", headers=system.auth())
    assert start.status_code == 302, start.text
    at_kite = await system.client.get(start.headers["location"])
    assert at_kite.status_code == 302, at_kite.text
    return str(at_kite.headers["location"])


async def test_a_linked_account_logs_in_through_kite_and_its_paused_trigger_fires(
    database_url: str,
) -> None:
    async with running_system(
        database_url, secret_key=KEY, sim_overrides=_login_settings
    ) as system:
        sim, token = system.sim, system.token
        second = sim.add_account("SIM002")
        await _link(system, second)
        system.push(token, "1600.00")
        theirs = await system.create(trigger_price_1="1610.00", account="family-2")
        system.push(token, "1612.00")
        paused = system.runtime.engine.paused_triggers
        await eventually(lambda: paused("family-2") == {theirs["id"]})
        assert second.orders() == []

        system.sim.rest.redirect_url = f"{system.api_url}/kite/callback"
        start = await system.client.get("/accounts/family-2/login", headers=system.auth())
        assert start.status_code == 302, start.text
        to_kite = urlsplit(start.headers["location"])
        query = parse_qs(to_kite.query)
        assert (
            f"{to_kite.scheme}://{to_kite.netloc}{to_kite.path}" == f"{sim.api_url}/connect/login"
        )
        assert query["api_key"] == [second.api_key]  # the account's app, not the default's
        passed = parse_qs(query["redirect_params"][0])
        assert passed["account"] == ["family-2"]
        assert passed["state"] == [start.cookies["hmt_account_state"]]
        at_kite = await system.client.get(start.headers["location"])
        back = at_kite.headers["location"]
        assert parse_qs(urlsplit(back).query)["account"] == ["family-2"]

        done = await system.client.get(back)
        assert done.status_code == 200, done.text
        assert done.json() == {"account": "family-2", "broker_session": "set", "stored": True}
        assert await _session(system, "family-2") == "valid"
        assert await _session(system, "default") == "valid"  # the default's untouched
        replay = await system.client.get(back)
        assert replay.status_code == 403, replay.text

        # Its book is read, then its trigger is armed again and fires there only.
        system.push(token, "1613.00")
        placed = await system.settled(theirs["id"])
        assert placed["status"] == "placed"
        assert [o["tag"] for o in second.orders()] == [placed["broker_tag"]]
        assert sim.orders() == []

        async def stored(conn: Any) -> Any:
            query = select(accounts_table.c.access_token_sealed)
            return (await conn.execute(query.where(accounts_table.c.id == "family-2"))).scalar()

        sealed = await system.runtime.db.transaction(stored, write=False)
        opened = await system.runtime.linked.open("family-2")  # type: ignore[union-attr]
        assert opened is not None
        assert opened.access_token is not None
        access_token = opened.access_token.get_secret_value()
        assert second.sessions.valid(second.api_key, access_token)
        assert sealed.startswith("hmt1.")
        assert access_token not in sealed
        assert access_token not in done.text


async def test_a_forged_missing_or_foreign_state_is_403_before_any_exchange(
    sqlite_url: str,
) -> None:
    async with running_system(sqlite_url, secret_key=KEY, sim_overrides=_login_settings) as system:
        sim = system.sim
        second = sim.add_account("SIM002")
        third = sim.add_account("SIM003")
        await _link(system, second)
        await _link(system, third, "family-3")

        request_token = second.sessions.new_request_token()
        for params in (
            {"account": "family-2"},  # no state
            {"account": "family-2", "state": "made-up-state"},  # forged
        ):
            forged = await system.client.get(
                "/kite/callback", params={"request_token": request_token, **params}
            )
            assert forged.status_code == 403, forged.text
            assert forged.json()["errors"][0]["rule"] == "login_state"

        # family-2's state (query and cookie) carried to family-3's callback.
        back = parse_qs(urlsplit(await _at_kite(system, "family-2")).query)
        moved = await system.client.get(
            "/kite/callback",
            params={
                "request_token": request_token,
                "account": "family-3",
                "state": back["state"][0],
            },
        )
        assert moved.status_code == 403, moved.text
        # A state this hmt issued, but sent without the browser's cookie.
        back = parse_qs(urlsplit(await _at_kite(system, "family-2")).query)
        system.client.cookies.clear()
        cookieless = await system.client.get(
            "/kite/callback",
            params={
                "request_token": request_token,
                "account": "family-2",
                "state": back["state"][0],
            },
        )
        assert cookieless.status_code == 403, cookieless.text

        # None of those exchanged the request token: it still buys a session, once.
        assert await exchange_request_token(
            api_url=sim.api_url,
            api_key=second.api_key,
            request_token=request_token,
            api_secret=second.sessions.api_secret,
        )
        for account_id in ("family-2", "family-3"):
            assert await _session(system, account_id) == "awaiting_login"


async def test_another_users_account_is_404_and_kite_refusing_is_502(sqlite_url: str) -> None:
    async with running_system(sqlite_url, secret_key=KEY, sim_overrides=_login_settings) as system:
        second = system.sim.add_account("SIM002")
        await _link(system, second)
        for who, account_id in ((system.operator_token, "family-2"), (None, "nobody")):
            response = await system.client.get(
                f"/accounts/{account_id}/login", headers=system.auth(who)
            )
            assert response.status_code == 404, response.text
        assert (await system.client.get("/accounts/family-2/login")).status_code == 401
        # A linked Upstox account's login needs HMT_UPSTOX_REDIRECT_URI (here unset).
        upstox = {"id": "up-1", "broker": "upstox", "label": "u", "api_key": "client-1"}
        linked = await system.client.post("/accounts", json=upstox, headers=system.auth())
        assert linked.status_code == 201, linked.text
        not_wired = await system.client.get("/accounts/up-1/login", headers=system.auth())
        assert not_wired.status_code == 409, not_wired.text
        assert not_wired.json()["errors"][0]["rule"] == "not_configured"
        assert "HMT_UPSTOX_REDIRECT_URI" in not_wired.text

        # A page holding its token in a header asks for JSON and navigates itself.
        as_json = await system.client.get(
            "/accounts/family-2/login",
            headers={**system.auth(), "Accept": "application/json"},
        )
        assert as_json.status_code == 200, as_json.text
        assert as_json.json()["login_url"].startswith(f"{system.sim.api_url}/connect/login?")
        assert "hmt_account_state" in as_json.cookies

        back = urlsplit(await _at_kite(system, "family-2"))
        query = {k: v[0] for k, v in parse_qs(back.query).items()}
        refused = await system.client.get(
            "/kite/callback", params={**query, "request_token": "not-a-request-token"}
        )
        assert refused.status_code == 502, refused.text
        assert "family-2" in refused.json()["detail"]
        assert await _session(system, "family-2") == "awaiting_login"


async def test_a_linked_upstox_account_logs_in_and_its_token_is_stored_sealed(
    database_url: str,
) -> None:
    """GET /accounts/{id}/login -> Upstox's dialog (the simulator) with a state naming the
    account -> /upstox/callback: the code exchanged with that account's client id and
    secret, the token kept sealed in its row (its session uses it: an Upstox engine
    trades it, tests/system/test_upstox_accounts.py); the default account's session
    untouched; a forged or replayed state 403."""
    from hmt.sim.upstox.server import UpstoxSim
    from hmt.upstox.session import exchange_code

    def upstox_settings(sim: UpstoxSim) -> dict[str, Any]:
        return {"upstox_client_secret": sim.client_secret, "upstox_redirect_uri": sim.redirect_uri}

    async with running_system(
        database_url, broker="upstox", secret_key=KEY, sim_overrides=upstox_settings
    ) as system:
        sim = system.sim
        linked = await system.client.post(
            "/accounts",
            json={
                "id": "up-2",
                "broker": "upstox",
                "label": "Upstox, second",
                "api_key": sim.client_id,
                "api_secret": sim.client_secret,
            },
            headers=system.auth(),
        )
        assert linked.status_code == 201, linked.text
        before = await system.runtime.accounts.load("hmt-engine")  # type: ignore[union-attr]

        start = await system.client.get("/accounts/up-2/login", headers=system.auth())
        assert start.status_code == 302, start.text
        dialog = parse_qs(urlsplit(start.headers["location"]).query)
        assert dialog["client_id"] == [sim.client_id]
        state = dialog["state"][0]
        assert state.startswith("up-2.")
        assert start.cookies["hmt_account_state"] == state
        at_upstox = await system.client.get(start.headers["location"])
        back = {k: v[0] for k, v in parse_qs(urlsplit(at_upstox.headers["location"]).query).items()}
        assert back["state"] == state

        forged = await system.client.get(
            "/upstox/callback", params={**back, "state": "up-2.made-up-state"}
        )
        assert forged.status_code == 403, forged.text
        done = await system.client.get("/upstox/callback", params=back)
        assert done.status_code == 200, done.text
        assert done.json() == {"account": "up-2", "broker_session": "set", "stored": True}
        replay = await system.client.get("/upstox/callback", params=back)
        assert replay.status_code == 403, replay.text

        opened = await system.runtime.linked.open("up-2")  # type: ignore[union-attr]
        assert opened is not None
        assert opened.access_token is not None
        assert opened.access_token.get_secret_value() == sim.access_token
        assert sim.access_token not in done.text
        after = await system.runtime.accounts.load("hmt-engine")  # type: ignore[union-attr]
        assert after == before  # the default account's session is not this login's

        # A forged state never reached the exchange: a fresh code is refused only once used.
        start = await system.client.get("/accounts/up-2/login", headers=system.auth())
        at_upstox = await system.client.get(start.headers["location"])
        code = parse_qs(urlsplit(at_upstox.headers["location"]).query)["code"][0]
        refused = await system.client.get(
            "/upstox/callback", params={"code": code, "state": "up-2.forged"}
        )
        assert refused.status_code == 403, refused.text
        assert await exchange_code(
            code=code,
            client_id=sim.client_id,
            client_secret=sim.client_secret,
            redirect_uri=sim.redirect_uri,
            api_url=sim.api_url,
        )


async def test_a_browser_lands_on_the_accounts_page_and_no_secret_is_409_up_front(
    sqlite_url: str,
) -> None:
    """The callback answers a browser's navigation (it asks for HTML) with a redirect to
    the Accounts page naming the account, the session set all the same; an account
    linked without its API secret is refused when its login starts, not after the
    trader has logged in at Kite: no state is issued, no cookie set."""
    async with running_system(sqlite_url, secret_key=KEY, sim_overrides=_login_settings) as system:
        second = system.sim.add_account("SIM002")
        await _link(system, second)
        back = await _at_kite(system, "family-2")
        landed = await system.client.get(back, headers={"Accept": "text/html,*/*;q=0.8"})
        assert landed.status_code == 303, landed.text
        assert landed.headers["location"] == "/ui/accounts?logged_in=family-2"
        assert 'hmt_account_state=""' in landed.headers["set-cookie"]  # used up
        assert await _session(system, "family-2") == "valid"

        bare = {"id": "family-3", "broker": "kite", "label": "no secret", "api_key": "k3"}
        linked = await system.client.post("/accounts", json=bare, headers=system.auth())
        assert linked.status_code == 201, linked.text
        system.client.cookies.clear()
        for accept in ("*/*", "application/json"):
            refused = await system.client.get(
                "/accounts/family-3/login", headers={**system.auth(), "Accept": accept}
            )
            assert refused.status_code == 409, refused.text
            error = refused.json()["errors"][0]
            assert (error["field"], error["rule"]) == ("api_secret", "not_configured")
            assert "no API secret linked" in error["message"]
            assert "hmt_account_state" not in refused.cookies
