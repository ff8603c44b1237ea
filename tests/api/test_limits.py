"""The security table's API controls: body cap, page cap, trigger cap, write rate, headers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hmt.api.limits import WriteLimiter
from hmt.store.triggers import TriggerStore
from tests.support.system import running_system

HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
}


def _secured(response: Any) -> None:
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    assert "access-control-allow-origin" not in response.headers


async def test_body_over_the_cap_is_413_declared_or_streamed_and_writes_nothing(
    sqlite_url: str,
) -> None:
    """A body over HMT_MAX_BODY_BYTES is refused before any route runs, with or without a length."""
    async with running_system(sqlite_url, max_body_bytes=2048) as system:
        big = {"tradingsymbol": "X" * 3000}
        declared = await system.client.post("/triggers", json=big, headers=system.auth())
        assert declared.status_code == 413
        assert declared.json()["errors"][0]["field"] == "body"
        _secured(declared)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 512

        streamed = await system.client.post(
            "/triggers",
            content=chunks(),
            headers={**system.auth(), "content-type": "application/json"},
        )
        assert streamed.status_code == 413
        listed = await system.client.get("/triggers", headers=system.auth())
        assert listed.json() == []


async def test_page_size_is_capped_and_live_triggers_per_user_are_capped(sqlite_url: str) -> None:
    """limit above 500 is a 422 naming `limit`; the 4th live trigger over a cap of 3 is a 409."""
    async with running_system(sqlite_url, max_triggers_per_user=3) as system:
        page = await system.client.get("/triggers?limit=501", headers=system.auth())
        assert page.status_code == 422
        assert page.json()["errors"][0]["field"] == "limit"
        made = [await system.create(trigger_price_1=f"{9000 + i}.00") for i in range(3)]
        body = {**_infy(), "trigger_price_1": "9999.00"}
        refused = await system.client.post("/triggers", json=body, headers=system.auth())
        assert refused.status_code == 409
        assert "HMT_MAX_TRIGGERS_PER_USER" in refused.json()["detail"]
        other = (await system.runtime.tokens.issue("bob")).token
        theirs = await system.client.post("/triggers", json=body, headers=system.auth(other))
        assert theirs.status_code == 201  # the cap is per user
        await system.client.delete(f"/triggers/{made[0]['id']}", headers=system.auth())
        again = await system.client.post("/triggers", json=body, headers=system.auth())
        assert again.status_code == 201


async def test_writes_per_token_are_rate_limited_with_retry_after(sqlite_url: str) -> None:
    """Past the burst a token's writes get 429 + Retry-After; its reads and other tokens go on."""
    async with running_system(sqlite_url, rate_limit_writes_per_min=60) as system:
        codes = []
        for _ in range(10):
            response = await system.client.delete(
                f"/triggers/{uuid.uuid4()}", headers=system.auth()
            )
            codes.append(response.status_code)
        print(f"60/min, burst 6: 10 writes -> {codes}")
        assert codes[:6] == [404] * 6
        assert set(codes[6:]) == {429}
        limited = await system.client.delete(f"/triggers/{uuid.uuid4()}", headers=system.auth())
        assert int(limited.headers["retry-after"]) >= 1
        _secured(limited)
        assert (await system.client.get("/triggers", headers=system.auth())).status_code == 200
        stop = await system.client.post("/stop", headers=system.auth(system.operator_token))
        assert stop.status_code == 200


async def test_every_response_has_the_security_headers_and_no_cors(sqlite_url: str) -> None:
    """200, 401, 404, 422 and a preflight all carry the headers; nothing grants another origin."""
    async with running_system(sqlite_url) as system:
        origin = {"Origin": "https://evil.example"}
        responses = [
            await system.client.get("/health", headers=origin),
            await system.client.get("/triggers", headers=origin),
            await system.client.get(f"/triggers/{uuid.uuid4()}", headers=system.auth()),
            await system.client.post("/triggers", json={}, headers=system.auth()),
            await system.client.options(
                "/triggers", headers={**origin, "Access-Control-Request-Method": "POST"}
            ),
            await system.client.get("/docs"),
        ]
        assert [r.status_code for r in responses][:4] == [200, 401, 404, 422]
        for response in responses:
            _secured(response)


async def test_an_unexpected_error_is_a_generic_500_and_the_log_has_it(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No stack trace or exception text leaves the server; the log names the error."""
    async with running_system(sqlite_url) as system:

        async def broken(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("canary-internal-detail")

        # On the class: the API on its own thread has its own store (hmt.engine.bridge).
        monkeypatch.setattr(TriggerStore, "list", broken)
        response = await system.client.get("/triggers", headers=system.auth())
        assert response.status_code == 500
        assert response.json() == {"detail": "internal error: the server log has the details"}
        assert "canary" not in response.text
        assert "Traceback" not in response.text
        _secured(response)
    captured = capsys.readouterr()
    assert "unhandled_error" in captured.out + captured.err


def _infy() -> dict[str, Any]:
    return {
        "instrument_token": 408065,
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "trigger_type": "single",
        "transaction_type": "BUY",
        "quantity": 1,
        "product": "CNC",
    }


def test_write_limiter_refills_at_its_rate_and_keeps_tokens_apart() -> None:
    """120/min: a burst of 12, then one write per half second; another key has its own bucket."""
    now = [0.0]
    limiter = WriteLimiter(120, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(12)] == [None] * 12
    wait = limiter.take("a")
    assert wait == pytest.approx(0.5)
    assert limiter.take("b") is None
    now[0] += 0.5
    assert limiter.take("a") is None
    assert limiter.take("a") is not None
    assert WriteLimiter(0).take("a") is None  # 0 turns it off
