"""Delivery through apprise to real receivers on loopback, and RELIABILITY test 23's guard:
save-time screening and send-time refusal (first hop and redirects)."""

from __future__ import annotations

import asyncio
import json

import pytest

from hmt.core.outbound import parse_nets
from hmt.notify.deliver import BadUrl, DeliveryFailed, deliver, screen
from tests.support.receivers import http_receiver, mail_url, smtp_receiver, text_of

LOCAL = parse_nets("127.0.0.1/32")


async def send(url: str, allowed: object = LOCAL) -> None:
    await asyncio.to_thread(
        deliver, url, "hmt: fired INFY", "fired INFY: BUY 1", allowed, timeout=2
    )  # type: ignore[arg-type]


async def test_a_webhook_is_delivered_when_its_range_is_allowed() -> None:
    async with http_receiver() as hook:
        await send(f"json://{hook.url}/hook")
    assert len(hook.requests) == 1
    sent = json.loads(hook.requests[0]["body"])
    assert sent["title"] == "hmt: fired INFY"
    assert sent["message"] == "fired INFY: BUY 1"


async def test_mail_is_delivered_to_a_real_smtp_server() -> None:
    with smtp_receiver() as (port, box):
        await send(mail_url(port))
    assert len(box.messages) == 1
    assert box.messages[0]["Subject"] == "hmt: fired INFY"
    assert "fired INFY: BUY 1" in text_of(box.messages[0])


async def test_loopback_is_refused_unless_allowed_and_nothing_arrives() -> None:
    async with http_receiver() as hook:
        with pytest.raises(DeliveryFailed, match="loopback") as refused:
            await send(f"json://{hook.url}/hook", ())
        assert refused.value.refused
        with pytest.raises(DeliveryFailed, match="loopback"):
            await send(f"json://{hook.url}/hook", parse_nets("127.0.0.2/32"))
    assert hook.requests == []


async def test_a_redirect_to_a_forbidden_address_is_not_followed() -> None:
    async with http_receiver(host="127.0.0.2") as inside:
        target = f"http://{inside.url}/secret"
        async with http_receiver(redirect=target) as outside:
            with pytest.raises(DeliveryFailed, match=r"127\.0\.0\.2.*loopback"):
                await send(f"json://{outside.url}/hook")
            assert len(outside.requests) == 1
            assert inside.requests == []
            # The same redirect with its range allowed is followed: the guard stopped it.
            await send(f"json://{outside.url}/hook", parse_nets("127.0.0.1/32,127.0.0.2/32"))
    assert len(inside.requests) == 1


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.20.0.1", "private"),
        ("[fd00::5]", "private"),
        ("169.254.10.10", "link-local"),
        ("[fe80::1]", "link-local"),
        ("169.254.169.254", "metadata"),
        ("[fd00:ec2::254]", "metadata"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address judged, not bound)
        ("localhost", "loopback"),
    ],
)
def test_screen_refuses_every_forbidden_class(host: str, reason: str) -> None:
    with pytest.raises(BadUrl, match=reason):
        screen(f"json://{host}:8080/hook", ())


def test_screen_checks_the_mail_server_not_the_mail_domain() -> None:
    with pytest.raises(BadUrl, match="loopback"):
        screen(mail_url(2525), ())
    assert screen(mail_url(2525), LOCAL).hint.startswith("mailto://")


def test_screen_allows_the_operators_range_and_hides_the_path() -> None:
    screened = screen("json://127.0.0.1:8080/hook/Sup3rSecretPathKey?x=1", LOCAL)
    assert "Sup3rSecretPathKey" not in screened.hint
    assert screened.hint.startswith("json://127.0.0.1:8080/")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("not a url", "not a URL"),
        ("windows://", "desktop"),
        ("nosuchservice://x", "does not understand"),
        ("json://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_screen_names_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(BadUrl, match=problem):
        screen(url, LOCAL)
