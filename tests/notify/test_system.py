"""Notifications end to end: channels through the API, each kind of notice delivered by the
running engine to a real HTTP receiver and a real SMTP server on loopback."""

from __future__ import annotations

import json
from typing import Any

from tests.support.eventually import eventually
from tests.support.receivers import HttpReceiver, http_receiver, mail_url, smtp_receiver, text_of
from tests.support.system import System, running_system
from tests.system.test_conditions import gap_triggers, outage

INFY = 408065
SEALING_KEY = "NotifySealingKey0123456789abc"
HOOK_KEY = "CanaryHookKey5f4e3d2c1b"
LOCAL = {"secret_key": SEALING_KEY, "notify_allow_nets": "127.0.0.1/32"}


def titles(hook: HttpReceiver) -> list[str]:
    return [json.loads(r["body"])["title"] for r in hook.requests]


def bodies(hook: HttpReceiver) -> list[str]:
    return [json.loads(r["body"])["message"] for r in hook.requests]


async def add(system: System, url: str, **body: Any) -> dict[str, Any]:
    response = await system.client.post(
        "/notifications/channels",
        json={"name": "mine", "url": url, **body},
        headers=system.auth(),
    )
    assert response.status_code == 201, response.text
    assert HOOK_KEY not in response.text
    result: dict[str, Any] = response.json()
    return result


async def test_channels_api_refuses_bad_input_naming_the_field(sqlite_url: str) -> None:
    async with http_receiver() as hook, running_system(sqlite_url, **LOCAL) as system:
        client, user = system.client, system.auth()
        cases = [
            ({"name": "x", "url": "json://10.0.0.8/hook"}, "url", "private"),
            ({"name": "x", "url": "json://169.254.169.254/latest"}, "url", "metadata"),
            ({"name": "x", "url": f"json://127.0.0.2:{hook.port}/h"}, "url", "loopback"),
            ({"name": "x", "url": "windows://"}, "url", "desktop"),
            (
                {"name": "x", "url": f"json://{hook.url}/h", "kinds": ["fired", "nope"]},
                "kinds",
                "nope",
            ),
            ({"name": "x", "url": f"json://{hook.url}/h", "kinds": []}, "kinds", "at least one"),
            ({"name": "", "url": f"json://{hook.url}/h"}, "name", ""),
        ]
        for body, field, words in cases:
            response = await client.post("/notifications/channels", json=body, headers=user)
            assert response.status_code == 422, (body, response.text)
            problem = response.json()
            assert problem["errors"][0]["field"] == field, problem
            assert words in problem["detail"], problem
        assert (await client.get("/notifications/channels", headers=user)).json() == []
        assert hook.requests == []


async def test_add_list_test_delete_a_channel_without_returning_its_url(sqlite_url: str) -> None:
    async with http_receiver() as hook, running_system(sqlite_url, **LOCAL) as system:
        client, user = system.client, system.auth()
        channel = await add(system, f"json://{hook.url}/hook/{HOOK_KEY}", kinds=["placed"])
        assert channel["kinds"] == ["placed"]
        assert channel["url_hint"].startswith(f"json://{hook.url}/")
        listed = await client.get("/notifications/channels", headers=user)
        assert [c["id"] for c in listed.json()] == [channel["id"]]
        assert HOOK_KEY not in listed.text
        other = await client.get(
            "/notifications/channels", headers=system.auth(system.operator_token)
        )
        assert other.json() == []  # only your own
        tested = await client.post(f"/notifications/channels/{channel['id']}/test", headers=user)
        assert tested.json() == {"delivered": True, "error": None}
        assert titles(hook) == ["hmt: test notification"]
        assert hook.requests[0]["path"] == f"/hook/{HOOK_KEY}"
        gone = await client.delete(f"/notifications/channels/{channel['id']}", headers=user)
        assert gone.status_code == 204
        again = await client.delete(f"/notifications/channels/{channel['id']}", headers=user)
        assert again.status_code == 404
        assert again.json()["errors"][0]["field"] == "channel_id"


async def test_every_engine_notice_reaches_a_webhook_and_a_mailbox(sqlite_url: str) -> None:
    """fired, placed, failed (with the broker's message), login_required (with the link)
    and engine_down, from the running engine, to both kinds of channel."""
    with smtp_receiver() as (port, box):
        async with http_receiver() as hook, running_system(sqlite_url, **LOCAL) as system:
            await add(system, f"json://{hook.url}/hook/{HOOK_KEY}")
            await add(system, mail_url(port))
            system.push(INFY, "1600.00")
            placed = await system.create(trigger_price_1="1610.00")
            system.push(INFY, "1610.00")
            assert (await system.settled(placed["id"]))["status"] == "placed"
            system.sim.faults.add(
                kind="error",
                endpoint="place_order",
                times=1,
                error_type="InputException",
                message="Canary broker refusal: quantity not allowed",
            )
            failed = await system.create(trigger_price_1="1620.00")
            system.push(INFY, "1620.00")
            assert (await system.settled(failed["id"]))["status"] == "failed"
            # Healthy first (a start-up's verdict raises no notice), then the session lapses.
            await eventually(
                lambda: (
                    system.runtime.supervisor.last_health is not None
                    and system.runtime.supervisor.last_health.verdict.value == "ok"
                )
            )
            system.runtime.session.expired("TokenException: canary session expired")

            wanted = {
                "hmt: fired INFY",
                "hmt: placed INFY",
                "hmt: failed INFY",
                "hmt: Kite login required",
                "hmt: engine down, nothing can fire",
            }
            await eventually(lambda: wanted <= set(titles(hook)), within=15)
            await eventually(lambda: wanted <= {m["Subject"] for m in box.messages}, within=15)
            said = "\n".join(bodies(hook))
            assert "Canary broker refusal: quantity not allowed" in said
            assert "/kite/login" in said
            mailed = "\n".join(text_of(m) for m in box.messages)
            assert "Canary broker refusal: quantity not allowed" in mailed
            figures = system.runtime.stats()["notifications"]
            assert figures["sent"] >= 2 * len(wanted)
            assert figures["failed"] == 0
            metrics = await system.client.get(
                "/metrics", headers=system.auth(system.operator_token)
            )
            assert "hmt_notify_sent_total" in metrics.text
            assert "hmt_notify_dropped_total 0.0" in metrics.text


async def test_gap_notices_fired_and_skipped(sqlite_url: str) -> None:
    with smtp_receiver() as (port, box):
        async with (
            http_receiver() as hook,
            running_system(sqlite_url, tick_mode="quote", **LOCAL) as system,
        ):
            await add(system, f"json://{hook.url}/hook", kinds=["gap_fired", "gap_skipped"])
            await add(system, mail_url(port), kinds=["gap_fired", "gap_skipped"])
            await gap_triggers(system, "quote")
            await outage(system, "1540.00")
            wanted = {"hmt: missed touch, fired INFY", "hmt: missed touch, skipped INFY"}
            await eventually(lambda: wanted <= set(titles(hook)), within=15)
            await eventually(lambda: wanted <= {m["Subject"] for m in box.messages}, within=15)
            # Only the kinds chosen: no fired/placed notice reached these channels.
            assert set(titles(hook)) == wanted


async def test_only_the_owner_hears_of_their_trigger(sqlite_url: str) -> None:
    async with http_receiver() as hook, running_system(sqlite_url, **LOCAL) as system:
        # The operator's channel: engine-wide kinds reach them, alice's fills do not.
        response = await system.client.post(
            "/notifications/channels",
            json={"name": "ops", "url": f"json://{hook.url}/ops"},
            headers=system.auth(system.operator_token),
        )
        assert response.status_code == 201
        system.push(INFY, "1600.00")
        trigger = await system.create(trigger_price_1="1605.00")
        system.push(INFY, "1605.00")
        await system.settled(trigger["id"])
        system.runtime.session.expired("TokenException: canary")
        await eventually(lambda: "hmt: Kite login required" in titles(hook))
        assert not any("INFY" in title for title in titles(hook))
