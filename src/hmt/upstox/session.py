"""Upstox's OAuth2 login: the authorization dialog, the code exchange, and the daily expiry.

FACTS 3: the user logs in at `/v2/login/authorization/dialog`, Upstox sends
the browser back to the app's redirect URI with a single-use `code`, and
POST /v2/login/authorization/token exchanges it (with the app's secret) for
an access token that lapses at 03:30 IST the next morning. Neither the code,
the secret nor the token is ever put in a message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta, timezone
from urllib.parse import urlencode

import aiohttp

from hmt.core.broker import BrokerError, ErrorKind
from hmt.upstox.rest import API_URL, DEFAULT_TIMEOUT, parse_response

IST = timezone(timedelta(hours=5, minutes=30))
EXPIRES_AT = time(3, 30)  # IST, every day (FACTS 3)


def login_url(client_id: str, redirect_uri: str, *, state: str = "", api_url: str = API_URL) -> str:
    """Where to send the user's browser to log in to Upstox for this app."""
    params = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code"}
    if state:
        params["state"] = state
    return f"{api_url.rstrip('/')}/v2/login/authorization/dialog?{urlencode(params)}"


def expires_at(issued: datetime) -> datetime:
    """When a token issued at `issued` lapses: the first 03:30 IST after it (in UTC)."""
    if issued.tzinfo is None:
        raise ValueError("issued must be timezone-aware")
    local = issued.astimezone(IST)
    lapse = datetime.combine(local.date(), EXPIRES_AT, tzinfo=IST)
    if local >= lapse:
        lapse += timedelta(days=1)
    return lapse.astimezone(UTC)


async def exchange_code(
    *,
    code: str,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    api_url: str = API_URL,
    wait: float = DEFAULT_TIMEOUT,
) -> str:
    """The access token for a login `code`; a `BrokerError` if Upstox refuses it.

    The code is single use whatever the outcome (FACTS 3): a failure is never
    retried with the same code, so even a lost answer is FINAL here.
    """
    form = {
        "code": code,
        "client_id": client_id,
        "client_secret": client_secret,
        "redirect_uri": redirect_uri,
        "grant_type": "authorization_code",
    }
    url = f"{api_url.rstrip('/')}/v2/login/authorization/token"
    headers = {"Accept": "application/json", "Api-Version": "2.0"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=wait)) as http,
            http.post(url, data=form, headers=headers) as answer,
        ):
            status, body, answer_headers = answer.status, await answer.read(), answer.headers
    except (TimeoutError, aiohttp.ClientError) as exc:
        # The exception's text could hold the form; say only what kind of failure it was.
        raise BrokerError(
            ErrorKind.FINAL, f"the login exchange failed: {type(exc).__name__}; log in again"
        ) from None
    if status >= 300:
        parse_response(status, body, answer_headers)  # raises the classified error
    data = _token_body(body)
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise BrokerError(ErrorKind.FINAL, "the token answer has no access_token")
    return token


def _token_body(body: bytes) -> dict[str, object]:
    try:
        data = json.loads(body)
    except ValueError:
        raise BrokerError(ErrorKind.FINAL, "the token answer is not JSON") from None
    if not isinstance(data, dict):
        raise BrokerError(ErrorKind.FINAL, "the token answer is not a JSON object")
    # The token answer has no envelope; tolerate one should Upstox add it.
    inner = data.get("data")
    return inner if isinstance(inner, dict) and "access_token" in inner else data


class UpstoxLogin:
    """The engine's `BrokerLogin` for one Upstox account: a login code for its access token."""

    def __init__(
        self, *, client_id: str, client_secret: str, redirect_uri: str, api_url: str = API_URL
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._api_url = api_url

    def __repr__(self) -> str:
        return f"UpstoxLogin(client_id={self._client_id!r})"  # never the secret

    def url(self, state: str = "") -> str:
        """Where this account's user logs in (`state` comes back with the code)."""
        return login_url(self._client_id, self._redirect_uri, state=state, api_url=self._api_url)

    async def __call__(self, code: str) -> str:
        return await exchange_code(
            code=code,
            client_id=self._client_id,
            client_secret=self._client_secret,
            redirect_uri=self._redirect_uri,
            api_url=self._api_url,
        )
