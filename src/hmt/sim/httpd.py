"""A small HTTP/1.1 server on asyncio streams, for the simulator's REST side.

Written rather than borrowed because the faults need the socket itself: close
it without answering, answer late, or hold it open forever, none of which an
ASGI application can express. It speaks what Kite's clients send: keep-alive,
Content-Length bodies, no chunked request bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

log = structlog.get_logger("hmt.sim.httpd")

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024


@dataclass(slots=True)
class Request:
    """A parsed request: the path without its query, lower-cased header names."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def form(self) -> dict[str, str]:
        """Form fields (POST/PUT body) or query fields (GET/DELETE); last value wins."""
        if self.method in ("POST", "PUT"):
            ctype = self.headers.get("content-type", "")
            if "application/x-www-form-urlencoded" not in ctype:
                return {}
            fields = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        else:
            fields = self.query
        return {k: v[-1] for k, v in fields.items()}

    def json(self) -> Any:
        """The body as JSON (control API); ValueError names the problem."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise ValueError(f"body is not JSON: {exc}") from None


@dataclass(slots=True)
class Response:
    """What to send back."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any) -> Response:
        return cls(status, json.dumps(payload, separators=(",", ":")).encode())


class Hangup(Exception):
    """Raised by a handler: close the socket now, without answering."""


Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    """The bytes on the wire are not a request this server understands."""


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest("connection closed in the middle of a request") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"bad request line {lines[0][:80]!r}")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise BadRequest(f"bad header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequest("chunked request bodies are not supported; send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise BadRequest("Content-Length is not a number") from None
    if not 0 <= length <= MAX_BODY:
        raise BadRequest(f"Content-Length {length} is out of range")
    body = await reader.readexactly(length) if length else b""
    url = urlsplit(target)
    return Request(
        method.upper(), url.path or "/", parse_qs(url.query, keep_blank_values=True), headers, body
    )


def _encode(response: Response, keep_alive: bool) -> bytes:
    reason = HTTPStatus(response.status).phrase
    head = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    head += [f"{k}: {v}" for k, v in response.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body


class HttpServer:
    """Serves `handler` on a TCP port; `close()` also ends held connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEAD)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.server is not None:
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._loop(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            self._connections.discard(task)
            writer.close()

    async def _loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await _read_request(reader)
            except BadRequest as exc:
                body = {
                    "status": "error",
                    "message": str(exc),
                    "data": None,
                    "error_type": "InputException",
                }
                writer.write(_encode(Response.json(400, body), keep_alive=False))
                await writer.drain()
                return
            if request is None:
                return
            try:
                response = await self.handler(request)
            except Hangup:
                writer.transport.abort()
                return
            except Exception:  # a handler bug must not kill the server: answer 500
                log.exception("sim_handler_failed", method=request.method, path=request.path)
                response = Response.json(
                    500,
                    {
                        "status": "error",
                        "data": None,
                        "message": "simulator internal error",
                        "error_type": "GeneralException",
                    },
                )
            keep = request.headers.get("connection", "").lower() != "close"
            writer.write(_encode(response, keep))
            await writer.drain()
            if not keep:
                return
