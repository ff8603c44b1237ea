"""Kite's login exchange against the simulator: the checksum, the URL, refusals."""

from __future__ import annotations

import hashlib

import pytest

from hmt.core.broker import BrokerError
from hmt.kite.session import checksum, exchange_request_token, login_url
from hmt.sim.simulator import Simulator


def test_login_url_and_checksum_follow_facts_2_1() -> None:
    """The login URL carries v=3 and the api_key; the checksum is sha256(key+request+secret)."""
    assert login_url("https://kite.zerodha.com/connect/login", "abc") == (
        "https://kite.zerodha.com/connect/login?v=3&api_key=abc"
    )
    assert checksum("k", "r", "s") == hashlib.sha256(b"krs").hexdigest()
    # A linked account's login names it in `redirect_params`, encoded as one value.
    assert login_url("https://k/connect/login", "abc", redirect_params="account=f-2&state=x") == (
        "https://k/connect/login?v=3&api_key=abc&redirect_params=account%3Df-2%26state%3Dx"
    )


async def test_exchange_returns_a_working_access_token_and_a_reused_one_is_refused() -> None:
    """A fresh request token buys a valid access token once; the second try is a BrokerError."""
    async with Simulator(seed=3) as sim:
        request_token = sim.request_token()
        args = {"api_url": sim.api_url, "api_key": sim.api_key, "api_secret": sim.api_secret}
        token = await exchange_request_token(request_token=request_token, **args)
        assert sim.sessions.valid(sim.api_key, token)
        with pytest.raises(BrokerError, match="invalid or has expired") as refused:
            await exchange_request_token(request_token=request_token, **args)
        assert request_token not in str(refused.value)
        wrong = {**args, "api_secret": "not-the-secret"}
        with pytest.raises(BrokerError, match="checksum"):
            await exchange_request_token(request_token=sim.request_token(), **wrong)


async def test_an_unreachable_kite_is_a_broker_error_naming_no_secret() -> None:
    """A refused connection is a retryable BrokerError whose text holds no secret."""
    with pytest.raises(BrokerError) as failed:
        await exchange_request_token(
            api_url="http://127.0.0.1:9", api_key="k", request_token="rt-1234", api_secret="s-9876"
        )
    assert "rt-1234" not in str(failed.value)
    assert "s-9876" not in str(failed.value)
