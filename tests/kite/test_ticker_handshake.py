"""The handshake URL and keeping the access token out of what is logged."""

from __future__ import annotations

import pytest

from hmt.kite.ticker_handshake import auth_url, check_token, public_url, redact


def test_auth_url_carries_both_credentials_and_keeps_an_existing_query() -> None:
    """The credentials go in the query, appended to one the configured URL may have."""
    assert auth_url("wss://ws.kite.trade", "k", "t/+") == (
        "wss://ws.kite.trade?api_key=k&access_token=t%2F%2B"
    )
    assert auth_url("ws://127.0.0.1:9/ws?x=1", "k", "t") == (
        "ws://127.0.0.1:9/ws?x=1&api_key=k&access_token=t"
    )


def test_public_url_and_redact_drop_the_token() -> None:
    """What may be logged never contains the token."""
    url = auth_url("wss://ws.kite.trade/", "k", "secret-token")
    assert public_url(url) == "wss://ws.kite.trade/"
    assert "secret-token" not in redact(ValueError(f"bad uri {url}"), "secret-token")


def test_empty_token_is_refused() -> None:
    """An empty access token is a ValueError, not a handshake that must fail."""
    with pytest.raises(ValueError, match="access_token"):
        check_token("")
