"""RELIABILITY test 14 (API part): property-generated invalid payloads never half-write.

Each input is a valid create, edit or session body with one thing broken: a
field replaced by an invalid value, a required field removed, an unknown or
server-owned field added, or legs that contradict each other. Every one must
be a 4xx naming the field, never a 5xx, and the database must be unchanged.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import select

from hmt.api.schemas import SERVER_OWNED
from hmt.store import tables
from tests.support.databases import empty_database
from tests.support.live import Live
from tests.support.system import System

SEED = random.SystemRandom().randrange(2**32)
EXAMPLES = 300

VALID = {
    "instrument_token": 408065,
    "exchange": "NSE",
    "tradingsymbol": "INFY",
    "trigger_type": "single",
    "transaction_type": "BUY",
    "trigger_price_1": "9999.00",
    "quantity": 1,
    "product": "CNC",
}
INVALID: dict[str, list[Any]] = {
    "instrument_token": [0, -1, 2**32, "abc", None, 1.5, 256265],  # 256265: NIFTY 50, an index
    "exchange": ["XXX", "", None, 5, "nse "],
    "tradingsymbol": ["", "x" * 65, None, 7],
    "trigger_type": ["double", "", None, 1],
    "transaction_type": ["HOLD", "buy!", None],
    "trigger_price_1": [0, -5, "abc", "1600.001", None, "NaN", "Infinity", "1e400", True],
    "quantity": [0, -1, 10**8, "many", 1.5, None],
    "product": ["XYZ", None, ""],
    "order_type": ["STOP", None, 3],
    "trigger_price_2": ["-1", "x"],
    "limit_price_1": ["0", "y"],
    "expires_at": ["yesterday", "2020-01-01T00:00:00Z", 12, "2030-13-01T00:00:00Z"],
}
# Bodies whose fields are each fine but which contradict themselves.
CONTRADICTIONS: list[dict[str, Any]] = [
    {
        "trigger_type": "oco",
        "transaction_type": "SELL",
        "trigger_price_1": "200",
        "trigger_price_2": "100",
    },
    {
        "trigger_type": "oco",
        "transaction_type": "BUY",
        "trigger_price_1": "100",
        "trigger_price_2": "200",
    },
    {"trigger_type": "oco"},  # no second leg
    {"trigger_type": "single", "trigger_price_2": "100"},
    {"order_type": "LIMIT"},  # no limit price
]
BAD_SESSION_TOKENS: list[Any] = [
    "",
    "short",
    "has space in it",
    "tökén-with-accents",
    "x" * 300,
    12,
    None,
]
junk = st.one_of(
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def bad_request(draw: st.DrawFn) -> tuple[str, str, Any, set[str]]:
    """(method, path template, body, fields an error must name; empty = any field)."""
    kind = draw(st.sampled_from(["replace", "remove", "extra", "contradict", "patch", "session"]))
    body = dict(VALID)
    if kind == "replace":
        name = draw(st.sampled_from(sorted(INVALID)))
        body[name] = draw(st.one_of(st.sampled_from(INVALID[name]), junk))
        return "POST", "/triggers", body, {name}
    if kind == "remove":
        name = draw(st.sampled_from(sorted(VALID)))
        del body[name]
        return "POST", "/triggers", body, {name}
    if kind == "extra":
        name = draw(
            st.one_of(
                st.sampled_from(sorted(SERVER_OWNED)),
                st.text("abcdefghij_", min_size=1, max_size=8).filter(lambda n: n not in INVALID),
            )
        )
        body[name] = draw(st.one_of(st.integers(), st.text(max_size=5)))
        return draw(st.sampled_from(["POST", "PATCH"])), "/triggers", body, {name}
    if kind == "contradict":
        return "POST", "/triggers", {**body, **draw(st.sampled_from(CONTRADICTIONS))}, set()
    if kind == "patch":
        name = draw(st.sampled_from(sorted(INVALID)))
        value = draw(st.one_of(st.sampled_from(INVALID[name]), junk))
        if value is None and name in {"trigger_price_2", "limit_price_1", "expires_at"}:
            value = "not-a-value"  # null legitimately clears these
        return "PATCH", "/triggers/{id}", {name: value}, {name}
    token = draw(st.sampled_from(BAD_SESSION_TOKENS))
    return "PUT", "/broker/session", {"access_token": token}, {"access_token"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Live, System]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('badinput') / 'hmt.db'}"
    else:
        url = request.getfixturevalue("live_pg_url")
        asyncio.run(empty_database(url.rsplit("/", 1)[1]))
    server = Live(url, rate_limit_writes_per_min=0)
    with server as system:
        yield server, system


# The engine's own records: of the market (each watched instrument's day high and low,
# saved every few seconds from ticks) and of its performance (a row every 10 s): they
# change with the prices and the clock, whatever a request does.
MARKET_TABLES = frozenset({tables.day_ranges.name, tables.metric_samples.name})


async def _snapshot(system: System) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table a request could write, in a stable order."""

    async def work(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
        out = {}
        for table in tables.metadata.sorted_tables:
            if table.name in MARKET_TABLES:
                continue
            rows = (await conn.execute(select(table))).all()
            out[table.name] = sorted(tuple(map(repr, row)) for row in rows)
        return out

    result: dict[str, list[tuple[Any, ...]]] = await system.runtime.db.transaction(
        work, write=False
    )
    return result


def test_invalid_payloads_are_4xx_naming_the_field_and_write_nothing(
    live: tuple[Live, System],
) -> None:
    """N invalid inputs: 0 DB changes, 0 5xx, 100% of refusals name the field."""
    server, system = live
    print(f"\nbad input: seed {SEED} (hypothesis @seed), examples {EXAMPLES}")
    with httpx.Client(base_url=system.api_url, timeout=10) as client:
        user, ops = system.auth(), system.auth(system.operator_token)
        created = client.post("/triggers", json=VALID, headers=user)
        assert created.status_code == 201
        target = created.json()["id"]
        before = server.run(_snapshot(system))
        assert set(before) == {t.name for t in tables.metadata.sorted_tables} - MARKET_TABLES
        codes: Counter[int] = Counter()
        named = unnamed = 0

        @seed(SEED)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(request=bad_request())
        def send(request: tuple[str, str, Any, set[str]]) -> None:
            nonlocal named, unnamed
            method, path, body, fields = request
            if method == "PATCH" and path == "/triggers":
                path = "/triggers/{id}"
            url = path.replace("{id}", target)
            headers = ops if path == "/broker/session" else user
            response = client.request(method, url, json=body, headers=headers)
            codes[response.status_code] += 1
            assert 400 <= response.status_code < 500, (method, url, repr(body)[-300:])
            errors = response.json().get("errors", [])
            said = {e["field"] for e in errors}
            ok = bool(errors) and all(said) and (not fields or bool(fields & said))
            named += ok
            unnamed += not ok
            assert ok, (body, response.text)

        send()
        after = server.run(_snapshot(system))
    changed = [name for name in before if before[name] != after[name]]
    total = sum(codes.values())
    print(
        f"bad input: inputs {total}, statuses {dict(sorted(codes.items()))}, "
        f"5xx {sum(n for c, n in codes.items() if c >= 500)}, tables changed {changed}, "
        f"errors naming the field {named}/{named + unnamed}"
    )
    assert changed == []
    assert unnamed == 0
