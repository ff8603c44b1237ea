"""The API's guards (RELIABILITY.md security table): body cap, write rate, headers.

The body cap and the headers are plain ASGI middleware, so they cover every
route, the UI's and the docs' too; the rate limit is a dependency of each
write route, because it counts per token.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hmt.logs import get_logger

log = get_logger("hmt.api")

# Set on every response unless the route set its own (the UI sets a fuller CSP).
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
)


GENERIC_500 = b'{"detail":"internal error: the server log has the details"}'


class ErrorShield:
    """An unexpected exception becomes a generic 500; the log, not the caller, gets the trace.

    Inside `SecurityHeaders`, so the 500 carries the headers too; the exception is
    not re-raised, so the server does not log it a second time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as error:
            log.error(
                "unhandled_error",
                method=scope.get("method"),
                path=scope.get("path"),
                error=type(error).__name__,
                exc_info=error,
            )
            if started:
                raise  # too late for a clean answer: let the server drop the connection
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(GENERIC_500)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": GENERIC_500})


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to each response that does not carry them already."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


DRAIN_FACTOR = 16


class BodyLimit:
    """413 for a request body over `max_bytes`, declared or streamed, before any route runs.

    The body is read here in full (it is small by construction) and replayed to the
    app, so no route ever sees part of an oversize body.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        larger: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # (method, path) -> its own cap: a bulk create carries many triggers.
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = max(
            self.max_bytes,
            self.larger.get((scope.get("method", ""), scope.get("path", "")), 0),
        )
        declared = dict(scope.get("headers", [])).get(b"content-length")
        over = declared is not None and (not declared.isdigit() or int(declared) > cap)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the app will see that on its own receive
            chunk = message.get("body", b"")
            size += len(chunk)
            over = over or size > cap
            # Past the cap the rest is read and dropped (up to a bound), so the client
            # gets its 413 instead of a reset while it is still sending.
            if not over:
                chunks.append(chunk)
            if not message.get("more_body", False) or size > DRAIN_FACTOR * cap:
                break
        if over:
            await self._refuse(send, cap)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, cap: int) -> None:
        setting = "HMT_MAX_BODY_BYTES" if cap == self.max_bytes else "HMT_MAX_BULK_BODY_BYTES"
        body = json.dumps(
            {
                "detail": f"the request body is over {cap} bytes",
                "errors": [
                    {
                        "field": "body",
                        "rule": "max_bytes",
                        "message": f"at most {cap} bytes ({setting})",
                    }
                ],
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# How long a client refused for load should wait: requests here take milliseconds.
SHED_RETRY_AFTER_S = 1
# Not counted and never refused: a probe must see a busy API as alive, and a live
# stream stays open for as long as its page (it is not work in progress).
UNSHED_PATHS = frozenset({"/health", "/stream"})


class InFlightLimit:
    """503 with Retry-After, at once, for a request over `limit` being handled.

    Past its capacity the API refuses rather than queues: a queue would only
    add its wait to every request behind it (issue 12 measured creates waiting
    8 s). Outermost but for the headers, so a refusal costs no routing, no
    body read and no database; `UNSHED_PATHS` are never refused.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0
        self.shed = 0  # refusals since start, for the bench and /metrics readers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNSHED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.shed += 1
            await send({**_SHED_START, "headers": list(_SHED_START["headers"])})
            await send({"type": "http.response.body", "body": _SHED_BODY})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


_SHED_BODY = json.dumps(
    {
        "detail": "the API is at capacity: retry after the Retry-After seconds",
        "errors": [
            {
                "field": "request",
                "rule": "max_in_flight",
                "message": "too many requests in flight (HMT_API_MAX_IN_FLIGHT)",
            }
        ],
    }
).encode()
_SHED_START: Message = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_SHED_BODY)).encode()),
        (b"retry-after", str(SHED_RETRY_AFTER_S).encode()),
    ],
}


@dataclass
class _Bucket:
    tokens: float
    at: float


class WriteLimiter:
    """A token bucket per API token: `per_minute` writes, bursts of a tenth of that.

    In memory, per process: hmt runs as one process, and a restart forgetting
    the buckets only ever lets a caller through sooner.
    """

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = float(max(1, math.ceil(per_minute / 10)))
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> float | None:
        """None if `key` may write now; else the seconds until it may."""
        if self.per_minute == 0:
            return None
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self.rate
