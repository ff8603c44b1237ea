"""Every 4xx body is a `Problem`: a sentence for people and a non-empty list of field errors."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from hmt.api.problems import transition_message
from hmt.core.events import EventKind
from hmt.core.lifecycle import TRANSITIONS, Status
from tests.support.system import System, running_system

INFY = 408065


def _problem(response: httpx.Response, status: int, field: str, rule: str | None = None) -> str:
    """Assert the documented shape; return the detail."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"detail", "errors"}, body
    assert body["detail"]
    assert body["errors"], body
    for error in body["errors"]:
        assert set(error) == {"field", "rule", "message"}
        assert all(error.values()), error
    assert any(e["field"] == field for e in body["errors"]), body
    if rule is not None:
        assert any(e["rule"] == rule for e in body["errors"]), body
    detail: str = body["detail"]
    return detail


async def _placed(system: System) -> str:
    system.push(INFY, "1600.00")
    created = await system.create(trigger_price_1="1605.00")
    system.push(INFY, "1606.00")
    assert (await system.settled(created["id"]))["status"] == "placed"
    return str(created["id"])


async def test_each_4xx_names_what_was_wrong_in_the_problem_shape(database_url: str) -> None:
    """400, 401, 403, 404 (trigger and page), 405, 409 (status and cap), 413 and 422."""
    async with running_system(database_url, max_triggers_per_user=2, max_body_bytes=2048) as system:
        c, me = system.client, system.auth()
        _problem(
            await c.post(
                "/triggers",
                content=b"{not json",
                headers={**me, "content-type": "application/json"},
            ),
            400,
            "body",
            "json_invalid",
        )
        anonymous = await c.get("/triggers")
        _problem(anonymous, 401, "Authorization", "bearer_token")
        assert anonymous.headers["www-authenticate"] == "Bearer"
        _problem(await c.get("/triggers", headers=system.auth("hmt_nope")), 401, "Authorization")
        _problem(await c.post("/stop", headers=me), 403, "Authorization", "operator")
        missing = await c.get(f"/triggers/{uuid.uuid4()}", headers=me)
        assert "not found" in _problem(missing, 404, "trigger_id", "not_found")
        _problem(await c.get("/no-such-page", headers=me), 404, "path", "not_found")
        _problem(await c.put("/triggers", headers=me), 405, "method")
        placed = await _placed(system)
        edit = await c.patch(f"/triggers/{placed}", json={"quantity": 2}, headers=me)
        detail = _problem(edit, 409, "status", "lifecycle")
        assert (
            detail
            == "this trigger is placed (its order is with the broker): it can no longer be edited"
        )
        paused = await system.create(trigger_price_1="9000.00", paused=True)
        again = await c.post(f"/triggers/{paused['id']}/pause", headers=me)
        assert _problem(again, 409, "status") == "this trigger is already paused"
        await system.create(trigger_price_1="9001.00")
        full = await c.post("/triggers", json=_infy(), headers=me)
        assert "HMT_MAX_TRIGGERS_PER_USER" in _problem(full, 409, "body", "max_triggers_per_user")
        big = await c.post("/triggers", json={"tradingsymbol": "X" * 3000}, headers=me)
        _problem(big, 413, "body", "max_bytes")
        _problem(
            await c.post("/triggers", json={**_infy(), "quantity": 0}, headers=me), 422, "quantity"
        )


async def test_a_429_is_a_problem_with_retry_after(sqlite_url: str) -> None:
    """Past the write burst the refusal names the token and the setting."""
    async with running_system(sqlite_url, rate_limit_writes_per_min=60) as system:
        codes = []
        for _ in range(7):
            response = await system.client.delete(
                f"/triggers/{uuid.uuid4()}", headers=system.auth()
            )
            codes.append(response.status_code)
        assert codes == [404] * 6 + [429]
        assert "HMT_RATE_LIMIT_WRITES_PER_MIN" in _problem(
            response, 429, "Authorization", "rate_limit"
        )
        assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (status, event)
        for status in Status
        for event in (EventKind.UPDATED, EventKind.PAUSED, EventKind.RESUMED, EventKind.CANCELLED)
        if (status, event) not in TRANSITIONS
    ],
)
def test_every_refused_change_reads_as_a_sentence_about_the_trigger(
    status: Status, event: EventKind
) -> None:
    """No 409 reads like the lifecycle table ("event 'updated' is not allowed in status ...")."""
    message = transition_message(status.value, event.value)
    assert message.startswith("this trigger ")
    assert "event" not in message
    assert f"'{event.value}'" not in message
    assert (
        status.value in message
        or (status, event) == (Status.ACTIVE, EventKind.RESUMED)
        or (status is Status.TRIGGERED)
    )


def _infy() -> dict[str, Any]:
    return {
        "instrument_token": INFY,
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "trigger_type": "single",
        "transaction_type": "BUY",
        "trigger_price_1": "9999.00",
        "quantity": 1,
        "product": "CNC",
    }
