"""Kite's REST transport: headers, the response envelope, and what each failure means.

Every call has a timeout. Every failure becomes a `BrokerError` whose kind
tells the executor what is safe (../shared/kite/FACTS.md section 2.3): a
request that never left can be sent again; one that may have reached the
OMS (a timeout after sending, a 5xx, Kite's Network/Data/General exceptions)
is ambiguous and must be looked up by tag first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import httpx

from hmt.core.broker import BrokerError, ErrorKind, describe, retry_after
from hmt.failpoints import failpoint

KITE_VERSION = "3"
DEFAULT_TIMEOUT = 7.0  # the official client's default

# Kite's error_type values whose outcome is unknown: the order may exist.
_AMBIGUOUS_TYPES = frozenset({"NetworkException", "DataException", "GeneralException"})
# Deterministic refusals (FACTS.md 2.3): a retry cannot change them, whatever the status.
_FINAL_TYPES = frozenset(
    {
        "InputException",
        "OrderException",
        "MarginException",
        "HoldingException",
        "UserException",
        "PermissionException",
    }
)


class _NotSent(Exception):
    """The request never left: no connection could be had."""


class _NoAnswer(Exception):
    """Sent (or maybe sent), and no answer came in time."""


class _Lost(Exception):
    """The connection broke while the request or its answer was under way."""


Answer = tuple[int, bytes, Mapping[str, str]]


class _Httpx:
    """httpx (HTTP/1.1), hmt's client before issue 12."""

    name = "httpx"

    def __init__(self, base_url: str, timeout: float, headers: dict[str, str], transport: Any):
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_keepalive_connections=10, keepalive_expiry=60),
            headers=headers,
            transport=transport,
        )

    def set_header(self, name: str, value: str) -> None:
        self._client.headers[name] = value

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(
        self, method: str, path: str, form: Mapping[str, str] | None, params: Any
    ) -> Answer:
        request = self._client.build_request(method, path, data=form, params=params)
        try:
            response = await self._client.send(request, stream=True)
            try:
                # The request is written and the broker has begun to answer: a
                # crash here leaves an order we never learned the id of. Orders
                # only: reading the order book (start-up reconciliation) is not one.
                if method == "POST":
                    failpoint("after_send")
                body = await response.aread()
            finally:
                await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _NotSent(describe(exc)) from None
        except httpx.TimeoutException as exc:
            raise _NoAnswer(describe(exc)) from None
        except httpx.TransportError as exc:
            raise _Lost(describe(exc)) from None
        return response.status_code, body, response.headers

    async def get(self, path: str) -> Answer:
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as exc:
            raise _NotSent(describe(exc)) from None
        return response.status_code, response.content, response.headers


class _Aiohttp:
    """aiohttp's client session, one kept-alive pool (issue 12: the faster order leg)."""

    name = "aiohttp"

    def __init__(self, base_url: str, timeout: float, headers: dict[str, str]) -> None:
        self._base = base_url
        # The whole request within `timeout`, as the lease policy assumes (LeasePolicy).
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None  # made on first use, in the loop

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=10, keepalive_timeout=60),
            )
        return self._session

    def set_header(self, name: str, value: str) -> None:
        self._headers[name] = value  # each request sends the session's headers as they are now
        if self._session is not None:
            self._session.headers[name] = value

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(
        self, method: str, path: str, form: Mapping[str, str] | None, params: Any
    ) -> Answer:
        session = self._open()
        try:
            async with session.request(
                method, self._base + path, data=form, params=params
            ) as response:
                # The request is written and the broker has begun to answer: a
                # crash here leaves an order we never learned the id of. Orders
                # only: reading the order book (start-up reconciliation) is not one.
                if method == "POST":
                    failpoint("after_send")
                body = await response.read()
                return response.status, body, response.headers
        except aiohttp.ConnectionTimeoutError as exc:
            raise _NotSent(describe(exc)) from None
        except aiohttp.ClientConnectorError as exc:
            raise _NotSent(describe(exc)) from None
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise _NoAnswer(describe(exc)) from None
        except aiohttp.ClientError as exc:
            raise _Lost(describe(exc)) from None

    async def get(self, path: str) -> Answer:
        session = self._open()
        try:
            async with session.get(self._base + path) as response:
                return response.status, await response.read(), response.headers
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _NotSent(describe(exc)) from None


CLIENTS = ("aiohttp", "httpx")


def client_names() -> tuple[str, ...]:
    """The HTTP clients KiteRest can run on (HMT_KITE_HTTP), the default first."""
    return CLIENTS


class KiteRest:
    """One kept-alive HTTP client for Kite's REST API.

    `client` picks the library under it (HMT_KITE_HTTP): aiohttp by default,
    measured the faster on the order leg (bench/bench_http.py), or httpx, the
    client before it, kept for the side-by-side. Both map their failures to
    the same three cases, so the classification below does not depend on it.
    `transport` (httpx only) replaces the network in tests.
    """

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str,
        access_token: str,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        client: str = CLIENTS[0],
    ) -> None:
        self._api_key = api_key
        if transport is not None:
            client = "httpx"
        headers = {"X-Kite-Version": KITE_VERSION}
        base = api_url.rstrip("/")
        self._http: _Httpx | _Aiohttp
        if client == "httpx":
            self._http = _Httpx(base, timeout, headers, transport)
        elif client == "aiohttp":
            self._http = _Aiohttp(base, timeout, headers)
        else:
            raise ValueError(f"unknown HTTP client {client!r}: one of {', '.join(CLIENTS)}")
        self.set_access_token(access_token)

    @property
    def client(self) -> str:
        """The HTTP library under this client."""
        return self._http.name

    def set_access_token(self, access_token: str) -> None:
        self._http.set_header("Authorization", f"token {self._api_key}:{access_token}")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    ) -> Any:
        """The `data` of a successful response; a classified `BrokerError` otherwise."""
        try:
            status, body, headers = await self._http.send(method, path, form, params)
        except _NotSent as exc:
            raise BrokerError(ErrorKind.RETRY, f"could not connect: {exc}") from None
        except _NoAnswer as exc:
            raise BrokerError(ErrorKind.AMBIGUOUS, f"no answer in time: {exc}") from None
        except _Lost as exc:
            raise BrokerError(ErrorKind.AMBIGUOUS, f"connection lost: {exc}") from None
        return parse_response(status, body, headers)

    async def csv(self, path: str) -> str:
        """A CSV dump (GET /instruments/...): Kite sends these without the JSON envelope."""
        try:
            status, body, headers = await self._http.get(path)
        except _NotSent as exc:
            raise BrokerError(ErrorKind.RETRY, f"could not fetch {path}: {exc}") from None
        if status != 200:
            parse_response(status, body, headers)
            raise BrokerError(ErrorKind.FINAL, f"{path} answered HTTP {status}")
        return body.decode("utf-8", "replace")


def parse_response(status: int, body: bytes, headers: Mapping[str, str]) -> Any:
    """Unwrap Kite's envelope or raise the classified error it describes."""
    try:
        envelope = json.loads(body)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict):
        kind = ErrorKind.AMBIGUOUS if status < 400 or status >= 500 else ErrorKind.FINAL
        raise BrokerError(kind, f"unreadable response body ({len(body)} bytes)", http_status=status)
    if status < 300 and envelope.get("status") == "success":
        return envelope.get("data")
    error_type = envelope.get("error_type")
    message = str(envelope.get("message") or "no message")
    raise BrokerError(
        classify(status, error_type if isinstance(error_type, str) else None),
        message,
        error_type=error_type if isinstance(error_type, str) else None,
        http_status=status,
        retry_after=retry_after(headers),
    )


def classify(status: int, error_type: str | None) -> ErrorKind:
    """What a failed Kite call means for a retry."""
    if status == 429:
        return ErrorKind.RETRY
    if error_type == "TokenException" or (status == 403 and error_type is None):
        return ErrorKind.AUTH
    if error_type in _FINAL_TYPES:
        return ErrorKind.FINAL
    if error_type in _AMBIGUOUS_TYPES or status >= 500 or status < 400:
        return ErrorKind.AMBIGUOUS
    return ErrorKind.FINAL
