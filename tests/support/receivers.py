"""Real notification receivers on loopback: an HTTP server (aiohttp) and an SMTP server
(aiosmtpd). Each records what reached it, so a test can count deliveries, including
the ones that must never arrive."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class HttpReceiver:
    """Answers 200 (or redirects to `redirect`, or never answers when `hang`)."""

    host: str = "127.0.0.1"
    redirect: str | None = None
    hang: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"{self.host}:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append({"path": request.path_qs, "body": body})
        if self.hang:
            await asyncio.sleep(3600)
        if self.redirect is not None:
            raise web.HTTPTemporaryRedirect(self.redirect)
        return web.Response(text="ok")


@contextlib.asynccontextmanager
async def http_receiver(**options: Any) -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver(**options)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver._handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, receiver.host, 0)
    await site.start()
    server = site._server
    assert server is not None
    receiver.port = int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    try:
        yield receiver
    finally:
        await runner.cleanup()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def smtp_receiver() -> Any:
    """A real SMTP server on 127.0.0.1 (its own thread); yields (port, mailbox)."""
    box = _Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


def mail_url(port: int) -> str:
    return (
        f"mailto://example.com:{port}?smtp=127.0.0.1&mode=insecure"
        "&to=trader@example.com&from=hmt@example.com"
    )


def text_of(message: Message) -> str:
    """A received mail's plain-text body."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    return ""
