"""RELIABILITY test 13: planted secrets never appear in logs, responses, dumps or reprs.

Canaries stand in for the API secret, the access token (from the environment,
from PUT /broker/session and from a Kite login), the request token, the
sealing key and the bearer tokens. A flow touches every route; then the
captured log output (JSON structlog, uvicorn's lines included), every hmt
HTTP response (headers and body), a dump of the database and the reprs of the
objects and errors that hold them are scanned for each canary.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
from cryptography.exceptions import InvalidTag
from sqlalchemy import select

from hmt import logs
from hmt.compose import ENGINE_ACCOUNT
from hmt.core.broker import BrokerError
from hmt.kite.session import exchange_request_token
from hmt.sim.simulator import Simulator
from hmt.sim.upstox.server import UpstoxSim
from hmt.store.accounts import ACCESS_TOKEN
from hmt.store.sealing import Sealer
from hmt.store.tables import broker_accounts
from hmt.upstox.session import exchange_code
from tests.support.eventually import eventually
from tests.support.receivers import HttpReceiver, free_port, http_receiver
from tests.support.system import System, running_system

INFY = 408065
API_SECRET = "CanaryApiSecret7Q2w9E4r"
ACCESS = "CanaryAccessToken5T8y1U3i"
ACCESS_PUT = "CanaryAccessTokenPut6O0p2A"
SEALING_KEY = "CanarySealingKey4S6d8F0g1H"
# A notification channel's secrets: a webhook path key and a password in its URL.
CHANNEL_KEY = "CanaryChannelKey7J9k1L3z"
CHANNEL_PASS = "CanaryChannelPass2X4c6V8b"


def _plant(sim: Simulator) -> dict[str, Any]:
    sim.sessions.api_secret = API_SECRET
    sim.sessions.access_tokens.update({ACCESS, ACCESS_PUT})
    return {
        "kite_api_secret": API_SECRET,
        "kite_access_token": ACCESS,
        "kite_login_url": f"{sim.api_url}/connect/login",
        "secret_key": SEALING_KEY,
        "notify_allow_nets": "127.0.0.1/32",  # the receivers below, on loopback
    }


async def _channels(system: System, hook: HttpReceiver) -> None:
    """A live channel and a dead one (connection refused), both carrying the canaries in
    their URLs, and one refused for its address: deliveries, retries and refusals log."""
    user = system.auth()
    for port, name in ((hook.port, "live"), (free_port(), "dead")):
        url = f"json://hmt:{CHANNEL_PASS}@127.0.0.1:{port}/hook/{CHANNEL_KEY}"
        added = await system.client.post(
            "/notifications/channels", json={"name": name, "url": url}, headers=user
        )
        assert added.status_code == 201, added.text
    refused = await system.client.post(
        "/notifications/channels",
        json={"name": "inside", "url": f"json://hmt:{CHANNEL_PASS}@10.0.0.9/{CHANNEL_KEY}"},
        headers=user,
    )
    assert refused.status_code == 422
    await system.client.get("/notifications/channels", headers=user)


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Any:
    logs.configure(level="debug", json=True)
    yield capsys
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


async def _flow(system: System, responses: list[bytes]) -> list[str]:
    """Drive every kind of route; the secrets that came into being on the way."""
    async with http_receiver() as hook:
        await _channels(system, hook)
        born = await _triggers(system, responses)
        notifier = system.runtime.notifier
        assert notifier is not None
        # Delivered to the live one; the dead one failed and is being retried (logged).
        await eventually(lambda: len(hook.requests) >= 2 and notifier.stats.retried >= 1)
    assert hook.requests[0]["path"] == f"/hook/{CHANNEL_KEY}"
    return born


async def _triggers(system: System, responses: list[bytes]) -> list[str]:
    client, user, ops = system.client, system.auth(), system.auth(system.operator_token)
    system.push(INFY, "1600.00")
    trigger = await system.create(trigger_price_1="1610.00")
    await client.patch(f"/triggers/{trigger['id']}", json={"quantity": 2}, headers=user)
    await client.post(f"/triggers/{trigger['id']}/pause", headers=user)
    await client.post(f"/triggers/{trigger['id']}/resume", headers=user)
    system.push(INFY, "1610.00")
    await system.settled(trigger["id"])
    for path in ("/triggers", f"/triggers/{trigger['id']}", "/stats", "/health", "/metrics"):
        await client.get(path, headers=ops if path == "/metrics" else user)
    await client.put("/broker/session", json={"access_token": ACCESS_PUT}, headers=ops)
    await client.put("/broker/session", json={"access_token": ACCESS_PUT}, headers=user)
    await client.get("/triggers", headers={"Authorization": f"Bearer {system.user_token}x"})
    started = await client.get("/kite/login")
    assert started.status_code == 302
    # What Kite hands the browser after its login page (the browser's own hop to Kite
    # is not hmt's to log, so it is not made here).
    request_token = system.sim.request_token()
    done = await client.get("/kite/callback", params={"request_token": request_token})
    assert done.status_code == 200, done.text
    replay = await client.get("/kite/callback", params={"request_token": request_token})
    assert replay.status_code == 403
    stored = await system.runtime.accounts.load(ENGINE_ACCOUNT)  # type: ignore[union-attr]
    assert stored is not None
    assert stored.access_token is not None
    return [request_token, stored.access_token.get_secret_value()]


async def _dump(database_url: str) -> str:
    """The whole database as text: sqlite3's .dump, or every PostgreSQL table's rows."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return "\n".join(conn.iterdump())
    conn = await asyncpg.connect(database_url)
    try:
        names = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
        parts = []
        for (name,) in names:
            rows = await conn.fetch(f'SELECT t::text FROM "{name}" t')
            parts += [name, *(row[0] for row in rows)]
        return "\n".join(parts)
    finally:
        await conn.close()


async def test_no_secret_leaks_anywhere(database_url: str, json_logs: Any) -> None:
    """0 canary hits in logs, responses, the DB dump and reprs; wrong key and row swap fail."""
    responses: list[bytes] = []

    async def keep(response: httpx.Response) -> None:
        if str(response.url).startswith(api_url):  # hmt's answers, not the simulator's
            await response.aread()
            responses.append(str(response.headers.raw).encode() + response.content)

    async with running_system(database_url, sim_overrides=_plant) as system:
        api_url = system.api_url
        system.client.event_hooks["response"].append(keep)
        born = await _flow(system, responses)
        sealed = await _sealed_value(system)
        reprs = [repr(system.runtime.settings), repr(system.runtime.accounts)]
        reprs.append(repr(await system.runtime.accounts.load(ENGINE_ACCOUNT)))  # type: ignore[union-attr]
        reprs += [repr(await system.runtime.tokens.issue("carol"))]
        try:
            await exchange_request_token(
                api_url=system.sim.api_url,
                api_key=system.sim.api_key,
                request_token=born[0],
                api_secret=API_SECRET,
            )
        except BrokerError as error:
            reprs += [repr(error), str(error)]
        bearer = [system.user_token, system.operator_token]
    dump = await _dump(database_url)
    captured = json_logs.readouterr()
    canaries = [API_SECRET, ACCESS, ACCESS_PUT, SEALING_KEY, CHANNEL_KEY, CHANNEL_PASS]
    canaries += [*born, *bearer]
    sources = _sources(captured, responses, dump, reprs)
    hits = _hits(sources, canaries)
    scanned = sum(len(text.encode()) for text in sources.values())

    wrong_key = _fails(
        lambda: Sealer(["another-key-entirely-0123"]).open(
            sealed, user_id=ENGINE_ACCOUNT, field=ACCESS_TOKEN
        )
    )
    swapped_row = _fails(
        lambda: Sealer([SEALING_KEY]).open(sealed, user_id="someone-else", field=ACCESS_TOKEN)
    )
    swapped_field = _fails(
        lambda: Sealer([SEALING_KEY]).open(sealed, user_id=ENGINE_ACCOUNT, field="api_secret")
    )
    print(
        f"\nsecrets canary: canaries {len(canaries)}, bytes scanned {scanned} "
        f"({', '.join(f'{k} {len(v.encode())}' for k, v in sources.items())}), hits {hits or 0}; "
        f"plaintext in DB {sum(c in dump for c in canaries)}; wrong-key decrypt {wrong_key}, "
        f"row-swap decrypt {swapped_row}, field-swap decrypt {swapped_field}"
    )
    assert len(captured.err) > 1000  # the logs really were captured
    assert "kite/callback" in captured.err  # uvicorn's access lines among them
    for text in sources.values():
        for canary in canaries:
            at = text.find(canary)
            if at >= 0:
                print("hit in context:", text[max(0, at - 400) : at + 60])
    assert hits == {}
    assert (wrong_key, swapped_row, swapped_field) == ("InvalidTag",) * 3


async def _sealed_value(system: System) -> str:
    async def work(conn: Any) -> str:
        query = select(broker_accounts.c.access_token_sealed)
        return str((await conn.execute(query)).scalar_one())

    result: str = await system.runtime.db.transaction(work, write=False)
    return result


def _fails(attempt: Any) -> str:
    try:
        attempt()
    except InvalidTag:
        return "InvalidTag"
    except Exception as error:
        return type(error).__name__
    return "opened"


UPSTOX_SECRET = "CanaryUpstoxSecret3M5n7B9v"
UPSTOX_ACCESS = "CanaryUpstoxAccess8C1x3Z5q"
UPSTOX_ACCESS_PUT = "CanaryUpstoxAccessPut4R6t8Y"
UPSTOX_CODE = "CanaryUpstoxCode2W4e6R8t"


def _plant_upstox(sim: UpstoxSim) -> dict[str, Any]:
    sim.client_secret = UPSTOX_SECRET
    sim.access_token = UPSTOX_ACCESS
    return {
        "upstox_client_secret": UPSTOX_SECRET,
        "upstox_access_token": UPSTOX_ACCESS,
        "upstox_redirect_uri": sim.redirect_uri,
        "secret_key": SEALING_KEY,
    }


async def test_no_upstox_secret_leaks_anywhere(database_url: str, json_logs: Any) -> None:
    """On Upstox: the app's secret, the access tokens (from the environment and from PUT
    /broker/session, across an expiry the feed and an order meet) and a login code leave 0
    canary hits in logs, responses, the DB dump and reprs; the stored token is sealed."""
    responses: list[bytes] = []

    async def keep(response: httpx.Response) -> None:
        if str(response.url).startswith(api_url):
            await response.aread()
            responses.append(str(response.headers.raw).encode() + response.content)

    async with running_system(database_url, broker="upstox", sim_overrides=_plant_upstox) as system:
        api_url = system.api_url
        system.client.event_hooks["response"].append(keep)
        client, user, ops = system.client, system.auth(), system.auth(system.operator_token)
        runtime, side, token = system.runtime, system.side, system.token
        system.push(token, "1600.00")
        first = await system.create(trigger_price_1="1610.00")
        system.push(token, "1610.00")
        assert (await system.settled(first["id"]))["status"] == "placed"
        # The session lapses: the feed's authorize and the next order meet 401s (logged).
        await side.expire_session()
        await eventually(lambda: system.feed_state() == "token_invalid")
        second = await system.create(trigger_price_1="1620.00")
        side.sim.access_token = UPSTOX_ACCESS_PUT  # what the day's login gives
        renewed = await client.put(
            "/broker/session", json={"access_token": UPSTOX_ACCESS_PUT}, headers=ops
        )
        assert renewed.status_code == 200, renewed.text
        await eventually(lambda: runtime.feed.connected)
        system.push(token, "1620.00")
        assert (await system.settled(second["id"]))["status"] == "placed"
        for path in ("/triggers", "/stats", "/health", "/metrics"):
            await client.get(path, headers=ops if path == "/metrics" else user)
        reprs = [repr(runtime.settings), repr(runtime.accounts), repr(runtime.session)]
        reprs.append(repr(await runtime.accounts.load(ENGINE_ACCOUNT)))  # type: ignore[union-attr]
        try:
            await exchange_code(
                code=UPSTOX_CODE,
                client_id=side.sim.client_id,
                client_secret=UPSTOX_SECRET,
                redirect_uri=side.sim.redirect_uri,
                api_url=side.sim.api_url,
            )
        except BrokerError as error:
            reprs += [repr(error), str(error)]
        else:
            raise AssertionError("an unknown login code was accepted")
        sealed = await _sealed_value(system)
        bearer = [system.user_token, system.operator_token]
    dump = await _dump(database_url)
    captured = json_logs.readouterr()
    canaries = [UPSTOX_SECRET, UPSTOX_ACCESS, UPSTOX_ACCESS_PUT, UPSTOX_CODE, SEALING_KEY]
    canaries += bearer
    sources = _sources(captured, responses, dump, reprs)
    hits = _hits(sources, canaries)
    opened = Sealer([SEALING_KEY]).open(sealed, user_id=ENGINE_ACCOUNT, field=ACCESS_TOKEN)
    print(
        f"\nsecrets canary (Upstox): canaries {len(canaries)}, bytes scanned "
        f"{sum(len(text.encode()) for text in sources.values())}, hits {hits or 0}; "
        f"sealed session opens to the PUT token {opened == UPSTOX_ACCESS_PUT}"
    )
    assert "feed_token_invalid" in captured.out + captured.err  # the expiry was logged
    assert hits == {}
    assert opened == UPSTOX_ACCESS_PUT


def _sources(captured: Any, responses: list[bytes], dump: str, reprs: list[str]) -> dict[str, str]:
    """Every place a secret could leak to, as text by name."""
    return {
        "logs (stdout+stderr)": captured.out + captured.err,
        "http responses": b"\n".join(responses).decode(errors="replace"),
        "database dump": dump,
        "reprs": "\n".join(reprs),
    }


def _hits(sources: dict[str, str], canaries: list[str]) -> dict[tuple[str, str], int]:
    """(place, the canary's first 12 characters) -> how often it stands there."""
    return {
        (name, canary[:12]): text.count(canary)
        for name, text in sources.items()
        for canary in canaries
        if canary in text
    }
