"""RELIABILITY test 11: the authorization matrix over every route of the live API.

Every operation in the OpenAPI schema x {own id, other's id, missing id, no token,
bad token, revoked token}, for users A and B and an operator; then PATCH with
each server-owned field. The RLS half of test 11 (rows invisible across users
to a plain `hmt_app` role, its flags asserted first) is tests/store/test_rls.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from hmt.api.schemas import SERVER_OWNED
from tests.support.eventually import eventually
from tests.support.receivers import http_receiver
from tests.support.system import System, running_system
from tests.system.test_brackets import bracket_body

PUBLIC = {
    ("GET", "/health"),
    ("GET", "/kite/login"),
    ("GET", "/kite/callback"),
    ("GET", "/upstox/login"),
    ("GET", "/upstox/callback"),
}
OPERATOR = {"/start", "/stop", "/metrics", "/broker/session"}
PREFIX = "/hmt-trigger-engine"
BAD_TOKEN = "hmt_not-a-real-token"
# Notification channels need a sealing key; their deliveries go to a receiver on loopback.
NOTIFY = {"secret_key": "AuthzMatrixSealingKey0123", "notify_allow_nets": "127.0.0.1/32"}
HOOK: list[str] = []  # the receiver's host:port, set by the test


def _body(method: str, path: str, system: System) -> Any:
    if path == "/brackets" and method == "POST":
        return bracket_body()
    if path == "/triggers/bulk":
        return {"triggers": [_body("POST", "/triggers", system)] * 2}
    if path == "/triggers" and method == "POST":
        return {
            "instrument_token": 408065,
            "exchange": "NSE",
            "tradingsymbol": "INFY",
            "trigger_type": "single",
            "transaction_type": "BUY",
            "trigger_price_1": "9999",
            "quantity": 1,
            "product": "CNC",
        }
    if method == "PATCH":
        return {"quantity": 7}
    if path == "/broker/session":
        return {"access_token": system.sim.access_token}
    if path == "/backtests" and method == "POST":
        trigger = _body("POST", "/triggers", system)
        ticks = "timestamp,instrument,price\n2026-11-27T09:15:00+05:30,NSE:INFY,1600\n"
        return {"triggers": [trigger], "source": "csv", "csv": ticks}
    if path == "/notifications/channels" and method == "POST":
        return {"name": "mine", "url": f"json://{HOOK[0]}/hook"}
    return None


@dataclass
class Matrix:
    """The cells checked so far and what went wrong."""

    system: System
    a: str
    b: str
    revoked: str
    cells: int = 0
    mismatches: int = 0
    cross_reads: int = 0
    cross_writes: int = 0
    writable: int = 0
    problems: list[str] = field(default_factory=list)
    accounts: int = 0  # linked so far (each needs its own id)

    async def check(
        self, method: str, url: str, token: str | None, expected: int, body: Any
    ) -> Any:
        headers = {} if token is None else self.system.auth(token)
        response = await self.system.client.request(method, url, json=body, headers=headers)
        self.cells += 1
        if response.status_code != expected:
            self.mismatches += 1
            self.problems.append(f"{method} {url} -> {response.status_code}, wanted {expected}")
        return response

    async def fresh(self, *, paused: bool = False) -> str:
        created = await self.system.create(trigger_price_1="9999.00", paused=paused)
        return str(created["id"])

    async def fresh_bracket(self) -> str:
        response = await self.system.client.post(
            "/brackets", json=bracket_body(), headers=self.system.auth(self.a)
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def by_id(self, method: str, path: str, body: Any) -> None:
        """Own id 200; the other user's and a missing id 404; no, bad, revoked token 401."""
        if "{bracket_id}" in path:
            own, theirs = await self.fresh_bracket(), await self.fresh_bracket()
            path = path.replace("{bracket_id}", "{trigger_id}")
        else:
            own = await self.fresh(paused=path.endswith("/resume"))
            theirs = await self.fresh(paused=path.endswith("/resume"))
        before = await self.system.trigger(theirs)
        for token, trigger_id, expected in (
            (self.b, theirs, 404),  # alice's id, asked by bob
            (self.a, str(uuid.uuid4()), 404),
            (None, own, 401),
            (BAD_TOKEN, own, 401),
            (self.revoked, own, 401),
            (self.a, own, 200),
        ):
            url = path.replace("{trigger_id}", trigger_id)
            response = await self.check(method, url, token, expected, body)
            if token == self.b and response.status_code < 400:
                self.cross_reads += 1
        self.cross_writes += (await self.system.trigger(theirs)) != before

    async def backtest(self, method: str, path: str) -> None:
        """A backtest is its starter's: own id 200; bob's view of it and a missing id 404."""
        body = _body("POST", "/backtests", self.system)
        started: dict[str, Any] = {}

        async def accepted() -> bool:  # alice's run of the POST cell may still be going
            response = await self.system.client.post(
                "/backtests", json=body, headers=self.system.auth(self.a)
            )
            started.update(response.json())
            return response.status_code == 202

        await eventually(accepted, within=30, interval=0.2)
        own = started["id"]
        for token, backtest_id, expected in (
            (self.b, own, 404),
            (self.a, uuid.uuid4().hex, 404),
            (None, own, 401),
            (BAD_TOKEN, own, 401),
            (self.revoked, own, 401),
            (self.a, own, 200),
        ):
            response = await self.check(
                method, path.replace("{backtest_id}", backtest_id), token, expected, None
            )
            if token == self.b and response.status_code < 400:
                self.cross_reads += 1

    async def channel(self, token: str) -> str:
        body = _body("POST", "/notifications/channels", self.system)
        response = await self.system.client.post(
            "/notifications/channels", json=body, headers=self.system.auth(token)
        )
        return str(response.json()["id"])

    async def by_channel(self, method: str, path: str) -> None:
        """A channel: own 200 (204 deleted); the other user's and a missing id 404; no,
        bad, revoked token 401; the other user's channel is unchanged after."""
        own, theirs = await self.channel(self.a), await self.channel(self.a)
        listed = "/notifications/channels"
        before = (await self.check("GET", listed, self.a, 200, None)).json()
        for token, channel_id, expected in (
            (self.b, theirs, 404),  # alice's id, asked by bob
            (self.a, str(uuid.uuid4()), 404),
            (None, own, 401),
            (BAD_TOKEN, own, 401),
            (self.revoked, own, 401),
        ):
            url = path.replace("{channel_id}", channel_id)
            response = await self.check(method, url, token, expected, None)
            if token == self.b and response.status_code < 400:
                self.cross_reads += 1
        after = (await self.check("GET", listed, self.a, 200, None)).json()
        self.cross_writes += after != before
        wanted = 204 if method == "DELETE" else 200
        await self.check(method, path.replace("{channel_id}", own), self.a, wanted, None)

    async def account(self, token: str) -> str:
        """A new account linked by the token's user; its id."""
        self.accounts += 1
        account_id = f"acct-{self.accounts}"
        body = {"id": account_id, "broker": "kite", "label": "matrix", "api_key": "k"}
        body["api_secret"] = "s"  # its login (GET .../login) needs one
        await self.check("POST", "/accounts", token, 201, body)
        return account_id

    async def by_account(self, method: str, path: str) -> None:
        """Linking: no, bad, revoked token 401, each user 201. An account's session: own
        200; the other user's and a missing id 404; no, bad, revoked token 401; the
        other user's account unchanged after. Its login (GET .../login): own 302 to the
        broker's login page; unlinking it (DELETE): own 204; the rest as its session."""
        if "{account_id}" not in path:
            for token in (None, BAD_TOKEN, self.revoked):
                body = {"id": "never", "broker": "kite", "label": "x", "api_key": "k"}
                await self.check(method, path, token, 401, body)
            await self.account(self.a)
            await self.account(self.b)
            return
        own, theirs = await self.account(self.a), await self.account(self.a)
        body = {"access_token": "matrix-token-1"}
        before = (await self.check("GET", "/accounts", self.a, 200, None)).json()
        for token, account_id, expected in (
            (self.b, theirs, 404),  # alice's id, asked by bob
            (self.a, "no-such-account", 404),
            (None, own, 401),
            (BAD_TOKEN, own, 401),
            (self.revoked, own, 401),
            (self.a, own, 302 if path.endswith("/login") else 204 if method == "DELETE" else 200),
        ):
            url = path.replace("{account_id}", account_id)
            response = await self.check(method, url, token, expected, body)
            if token == self.b and response.status_code < 400:
                self.cross_reads += 1
        after = (await self.check("GET", "/accounts", self.a, 200, None)).json()
        self.cross_writes += [a for a in after if a["id"] == theirs] != [
            a for a in before if a["id"] == theirs
        ]

    async def plain(self, method: str, path: str, body: Any) -> None:
        """Routes without an id: public ones for anyone, the rest by token and role."""
        bare = path.removeprefix(PREFIX)
        path += QUERIES.get(bare, "")
        for name, value in PARAMETERS.items():
            path = path.replace(name, value)
        if (method, bare) in PUBLIC:
            # /kite/* and /upstox/* answer 409 (no login configured) or 422 (no
            # request_token, no code).
            expected = {
                "/health": 200,
                "/kite/login": 409,
                "/kite/callback": 422,
                "/upstox/login": 409,
                "/upstox/callback": 422,
            }[bare]
            for token in (None, BAD_TOKEN, self.revoked, self.a):
                await self.check(method, path, token, expected, body)
            return
        for token in (None, BAD_TOKEN, self.revoked):
            await self.check(method, path, token, 401, body)
        if bare in OPERATOR:
            await self.check(method, path, self.a, 403, body)
            await self.check(method, path, self.b, 403, body)
            await self.check(method, path, self.system.operator_token, 200, body)
            return
        expected = ACCEPTED.get((method, bare), 201 if method == "POST" else 200)
        await self.check(method, path, self.a, expected, body)
        response = await self.check(method, path, self.b, expected, body)
        if method == "GET" and path == "/triggers":
            self.cross_reads += sum(t["user_id"] != "bob" for t in response.json())
            await self.cursor_pages()
        if method == "GET" and path == "/notifications/channels":
            # bob sees his own channel (made above), never alice's.
            mine = {c["id"] for c in (await self.check(method, path, self.a, 200, None)).json()}
            self.cross_reads += len(mine & {c["id"] for c in response.json()})

    async def cursor_pages(self) -> None:
        """A cursor from alice's pages, used by bob, pages through bob's triggers only."""
        await self.fresh()
        await self.fresh()  # alice has at least two triggers: a page of one has a next link
        url = "/triggers?limit=1"
        link = (await self.check("GET", url, self.a, 200, None)).headers.get("link", "")
        if "cursor=" not in link:
            self.problems.append(f"GET {url} as alice: no next link ({link!r})")
            return
        alice_next = link[1 : link.index(">")]
        for token, owner in ((self.b, "bob"), (self.a, "alice")):
            response = await self.check("GET", alice_next, token, 200, None)
            if token == self.b:
                self.cross_reads += sum(t["user_id"] != owner for t in response.json())
        await self.check("GET", alice_next, None, 401, None)

    async def server_owned(self) -> None:
        """PATCH naming each server-owned field is a 422 `read_only`, and changes nothing."""
        target = await self.fresh()
        before = await self.system.trigger(target)
        for name in sorted(SERVER_OWNED):
            response = await self.system.client.patch(
                f"/triggers/{target}", json={name: "x"}, headers=self.system.auth(self.a)
            )
            self.cells += 1
            errors = response.json()["errors"]
            if response.status_code != 422 or not any(
                e["field"] == name and e["rule"] == "read_only" for e in errors
            ):
                self.writable += 1
                self.problems.append(f"PATCH {name} -> {response.status_code} {response.text}")
        self.writable += (await self.system.trigger(target)) != before


# Required query parameters, so that each cell checks authorization, not validation.
QUERIES = {"/instruments": "?q=INFY"}
# Path parameters that are not a trigger's id: a value that exists.
PARAMETERS = {"{token}": "408065"}
# Routes that answer other than 200 (GET) or 201 (POST) when all is well.
ACCEPTED = {("POST", "/backtests"): 202}


async def test_authorization_matrix(database_url: str) -> None:
    """100% of cells match the expected table; cross-user reads and writes are 0."""
    async with (
        http_receiver() as hook,
        running_system(database_url, rate_limit_writes_per_min=0, **NOTIFY) as system,
    ):
        HOOK[:] = [hook.url]
        tokens = system.runtime.tokens
        revoked = await tokens.issue("alice")
        assert await tokens.revoke(revoked.token_id)
        matrix = Matrix(system, system.user_token, (await tokens.issue("bob")).token, revoked.token)
        schema = (await system.client.get("/openapi.json")).json()
        operations = [
            (method.upper(), path) for path, item in schema["paths"].items() for method in item
        ]
        for method, path in operations:
            body = _body(method, path, system)
            if "{trigger_id}" in path or "{bracket_id}" in path:
                await matrix.by_id(method, path, body)
            elif "{backtest_id}" in path:
                await matrix.backtest(method, path)
            elif "{channel_id}" in path:
                await matrix.by_channel(method, path)
            elif "{account_id}" in path or (path.startswith("/accounts") and method != "GET"):
                await matrix.by_account(method, path)
            else:
                await matrix.plain(method, path, body)
        await matrix.server_owned()
        m = matrix
        print(
            f"\nauthorization matrix: operations {len(operations)}, cells checked {m.cells}, "
            f"mismatches {m.mismatches}, cross-user reads {m.cross_reads}, cross-user writes "
            f"{m.cross_writes}, writable server-owned fields {m.writable} "
            f"(of {len(SERVER_OWNED)}); RLS: tests/store/test_rls.py"
        )
        assert m.problems == []
        assert (m.mismatches, m.cross_reads, m.cross_writes, m.writable) == (0, 0, 0, 0)
