"""Kite's REST transport: headers, the response envelope, and what each failure means.

Every call has a timeout. Every failure becomes a `BrokerError` whose kind
tells the executor what is safe (../shared/kite/FACTS.md section 2.3): a
request that never left can be sent again; one that may have reached the
OMS (a timeout after sending, a 5xx, Kite's Network/Data/General exceptions)
is ambiguous and must be looked up by tag first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from hmt.core.broker import BrokerError, ErrorKind
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


class KiteRest:
    """One kept-alive HTTP client for Kite's REST API."""

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str,
        access_token: str,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api_key = api_key
        self._client = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_keepalive_connections=10, keepalive_expiry=60),
            headers={"X-Kite-Version": KITE_VERSION},
            transport=transport,
        )
        self.set_access_token(access_token)

    def set_access_token(self, access_token: str) -> None:
        self._client.headers["Authorization"] = f"token {self._api_key}:{access_token}"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """The `data` of a successful response; a classified `BrokerError` otherwise."""
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
            raise BrokerError(ErrorKind.RETRY, f"could not connect: {_describe(exc)}") from None
        except httpx.TimeoutException as exc:
            raise BrokerError(ErrorKind.AMBIGUOUS, f"no answer in time: {_describe(exc)}") from None
        except httpx.TransportError as exc:
            raise BrokerError(ErrorKind.AMBIGUOUS, f"connection lost: {_describe(exc)}") from None
        return parse_response(response.status_code, body, response.headers)

    async def csv(self, path: str) -> str:
        """A CSV dump (GET /instruments/...): Kite sends these without the JSON envelope."""
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as exc:
            reason = f"could not fetch {path}: {_describe(exc)}"
            raise BrokerError(ErrorKind.RETRY, reason) from None
        if response.status_code != 200:
            parse_response(response.status_code, response.content, response.headers)
            raise BrokerError(ErrorKind.FINAL, f"{path} answered HTTP {response.status_code}")
        return response.text


def parse_response(status: int, body: bytes, headers: Mapping[str, str]) -> Any:
    """Unwrap Kite's envelope or raise the classified error it describes."""
    try:
        envelope = httpx.Response(status, content=body).json()
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
        retry_after=_retry_after(headers),
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


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def _describe(exc: Exception) -> str:
    # httpx messages can carry the URL; ours has no secret in it (the token is a header).
    return type(exc).__name__ + (f" ({exc})" if str(exc) else "")
