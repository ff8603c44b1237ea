"""Upstox's REST transport: its headers and hosts, its envelope, and what each failure means.

Every call has a timeout. Every failure becomes a `BrokerError` whose kind
tells the executor what is safe (docs/upstox/FACTS.md 2.7, decisions in
docs/upstox/ORDERS.md): a request that never left, or that the rate limiter
refused (429, UDAPI10005), can be sent again; one that may have reached the
OMS (a timeout after sending, a 5xx, UDAPI100500) is ambiguous and must be
looked up by tag first; an invalid token (401, UDAPI100050) needs a new login;
any other 4xx is the broker's final word.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from hmt.core.broker import BrokerError, ErrorKind, describe, retry_after
from hmt.failpoints import failpoint

DEFAULT_TIMEOUT = 7.0  # as the Kite client: the lease policy assumes the same bound
API_URL = "https://api.upstox.com"
ORDER_URL = "https://api-hft.upstox.com"  # order writes only (FACTS 2.1)

_AUTH_CODES = frozenset({"UDAPI100050", "UDAPI100067", "UDAPI100016"})
_RETRY_CODES = frozenset({"UDAPI10005"})
_AMBIGUOUS_CODES = frozenset({"UDAPI100500"})


class UpstoxRest:
    """One kept-alive aiohttp session for Upstox's REST API (both of its hosts)."""

    def __init__(
        self,
        *,
        access_token: str,
        api_url: str = API_URL,
        order_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._api = api_url.rstrip("/")
        self._orders = (order_url or (ORDER_URL if api_url == API_URL else api_url)).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = {"Accept": "application/json"}
        self._session: aiohttp.ClientSession | None = None
        self.set_access_token(access_token)

    def set_access_token(self, access_token: str) -> None:
        self._headers["Authorization"] = f"Bearer {access_token}"
        if self._session is not None:
            self._session.headers["Authorization"] = self._headers["Authorization"]

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=10, keepalive_timeout=60),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """The `data` of a successful answer; a classified `BrokerError` otherwise."""
        writes = path.startswith(("/v3/order/", "/v2/order/place", "/v2/order/modify"))
        base = self._orders if writes and method != "GET" else self._api
        session = self._open()
        try:
            async with session.request(method, base + path, json=body, params=params) as answer:
                if method != "GET":
                    # Written, and the broker has begun to answer: a crash here leaves
                    # an order we never learned the id of.
                    failpoint("after_send")
                status, content = answer.status, await answer.read()
                headers = answer.headers
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            raise BrokerError(ErrorKind.RETRY, f"could not connect: {describe(exc)}") from None
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise BrokerError(ErrorKind.AMBIGUOUS, f"no answer in time: {describe(exc)}") from None
        except aiohttp.ClientError as exc:
            raise BrokerError(ErrorKind.AMBIGUOUS, f"connection lost: {describe(exc)}") from None
        return parse_response(status, content, headers)

    async def raw(self, url: str) -> bytes:
        """A file outside the API envelope (the instrument master), as bytes."""
        session = self._open()
        try:
            async with session.get(url) as answer:
                content = await answer.read()
                if answer.status != 200:
                    parse_response(answer.status, content, answer.headers)
                    raise BrokerError(ErrorKind.FINAL, f"{url} answered HTTP {answer.status}")
                return content
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise BrokerError(ErrorKind.RETRY, f"could not fetch {url}: {describe(exc)}") from None


def parse_response(status: int, body: bytes, headers: Mapping[str, str]) -> Any:
    """Unwrap Upstox's envelope or raise the classified error it describes."""
    try:
        envelope = json.loads(body)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict):
        raise BrokerError(
            classify(status, None),
            f"unreadable response body ({len(body)} bytes)",
            http_status=status,
        )
    if status < 300 and envelope.get("status") == "success":
        return envelope.get("data")
    code, message = first_problem(envelope)
    raise BrokerError(
        classify(status, code),
        message,
        error_type=code,
        http_status=status,
        retry_after=retry_after(headers),
    )


def first_problem(envelope: Mapping[str, Any]) -> tuple[str | None, str]:
    """The first error's code and message (`errors[0]`; FACTS 2.7), in either spelling."""
    errors = envelope.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict):
        return None, str(envelope.get("message") or "no message")
    code = first.get("errorCode") or first.get("error_code")
    message = str(first.get("message") or "no message")
    return (code if isinstance(code, str) else None), message


def classify(status: int, code: str | None) -> ErrorKind:
    """What a failed Upstox call means for a retry."""
    if status == 429 or code in _RETRY_CODES:
        return ErrorKind.RETRY
    if status == 401 or code in _AUTH_CODES:
        return ErrorKind.AUTH
    if code in _AMBIGUOUS_CODES or status >= 500 or status < 400:
        return ErrorKind.AMBIGUOUS
    return ErrorKind.FINAL
