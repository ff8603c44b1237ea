"""Kite's login: the login page URL, and the request token exchanged for an access token.

FACTS.md 2.1: the user logs in at `https://kite.zerodha.com/connect/login?v=3&api_key=...`,
Kite redirects back with a `request_token`, and POST /session/token with
`checksum = sha256(api_key + request_token + api_secret)` returns the access token.
Neither the request token, the secret nor the access token is ever put in a message.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode

import httpx

from hmt.core.broker import BrokerError, ErrorKind
from hmt.kite.rest import DEFAULT_TIMEOUT, KITE_VERSION, parse_response


def login_url(base_url: str, api_key: str, *, redirect_params: str = "") -> str:
    """Where to send the user's browser to log in to Kite for this app.

    `redirect_params`, a query string, comes back appended to the app's redirect URL
    (Kite Connect's `redirect_params`): it names which linked account logs in."""
    query = {"v": KITE_VERSION, "api_key": api_key}
    if redirect_params:
        query["redirect_params"] = redirect_params
    return f"{base_url}?{urlencode(query)}"


def checksum(api_key: str, request_token: str, api_secret: str) -> str:
    return hashlib.sha256((api_key + request_token + api_secret).encode()).hexdigest()


async def exchange_request_token(
    *,
    api_url: str,
    api_key: str,
    request_token: str,
    api_secret: str,
    wait: float = DEFAULT_TIMEOUT,
) -> str:
    """The access token for `request_token`; a `BrokerError` if Kite refuses it."""
    form = {
        "api_key": api_key,
        "request_token": request_token,
        "checksum": checksum(api_key, request_token, api_secret),
    }
    async with httpx.AsyncClient(
        base_url=api_url.rstrip("/"), timeout=wait, headers={"X-Kite-Version": KITE_VERSION}
    ) as client:
        try:
            response = await client.post("/session/token", data=form)
        except httpx.HTTPError as exc:
            # The exception's text can hold the form; say only what kind of failure it was.
            raise BrokerError(
                ErrorKind.RETRY, f"session exchange failed: {type(exc).__name__}"
            ) from None
    data = parse_response(response.status_code, response.content, response.headers)
    token = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise BrokerError(ErrorKind.FINAL, "the session response has no access_token")
    return token
