"""Upstox's login against the simulator, and the token's 03:30 IST expiry."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from hmt.core.broker import BrokerError, ErrorKind
from hmt.sim.upstox.server import UpstoxSim
from hmt.upstox.session import IST, UpstoxLogin, exchange_code, expires_at, login_url


async def test_login_dialog_then_a_single_use_code_exchange() -> None:
    async with UpstoxSim(seed=5) as sim:
        url = login_url(sim.client_id, sim.redirect_uri, state="acct-2", api_url=sim.api_url)
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, allow_redirects=False) as answer,
        ):
            assert answer.status == 302
            back = parse_qs(urlsplit(answer.headers["Location"]).query)
        assert back["state"] == ["acct-2"]
        args = {
            "code": back["code"][0],
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "redirect_uri": sim.redirect_uri,
            "api_url": sim.api_url,
        }
        assert await exchange_code(**args) == sim.access_token
        with pytest.raises(BrokerError) as again:
            await exchange_code(**args)
        assert again.value.kind is ErrorKind.AUTH
        assert again.value.error_type == "UDAPI100016"
        assert sim.client_secret not in str(again.value)


async def test_the_login_port_logs_an_account_in_and_hides_its_secret() -> None:
    async with UpstoxSim(seed=6) as sim:
        login = UpstoxLogin(
            client_id=sim.client_id,
            client_secret=sim.client_secret,
            redirect_uri=sim.redirect_uri,
            api_url=sim.api_url,
        )
        async with (
            aiohttp.ClientSession() as http,
            http.get(login.url(state="acct-7"), allow_redirects=False) as answer,
        ):
            back = parse_qs(urlsplit(answer.headers["Location"]).query)
        assert back["state"] == ["acct-7"]
        assert await login(back["code"][0]) == sim.access_token
        assert sim.client_secret not in repr(login)


async def test_a_bad_client_is_named_by_the_dialog() -> None:
    async with UpstoxSim() as sim:
        url = login_url("nobody", sim.redirect_uri, api_url=sim.api_url)
        async with aiohttp.ClientSession() as http, http.get(url) as answer:
            body = await answer.json()
        assert answer.status == 400
        assert body["errors"][0]["errorCode"] == "UDAPI100068"


async def test_an_unreachable_login_is_final_and_names_no_secret() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(BrokerError) as failed:
        await exchange_code(
            code="c",
            client_id="id",
            client_secret="s3cret-value",
            redirect_uri="http://x",
            api_url=f"http://127.0.0.1:{closed}",
        )
    assert failed.value.kind is ErrorKind.FINAL
    assert "s3cret-value" not in str(failed.value)


@pytest.mark.parametrize(
    ("issued", "lapses"),
    [
        (datetime(2026, 12, 1, 20, 0, tzinfo=IST), datetime(2026, 12, 2, 3, 30, tzinfo=IST)),
        (datetime(2026, 12, 2, 2, 30, tzinfo=IST), datetime(2026, 12, 2, 3, 30, tzinfo=IST)),
        (datetime(2026, 12, 2, 3, 30, tzinfo=IST), datetime(2026, 12, 3, 3, 30, tzinfo=IST)),
        (datetime(2026, 12, 1, 22, 0, tzinfo=UTC), datetime(2026, 12, 3, 3, 30, tzinfo=IST)),
    ],
)
def test_a_token_lapses_at_the_first_0330_ist_after_it_was_issued(
    issued: datetime, lapses: datetime
) -> None:
    assert expires_at(issued) == lapses
    assert expires_at(issued).tzinfo is UTC


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        expires_at(datetime(2026, 12, 1, 9, 0))  # noqa: DTZ001
