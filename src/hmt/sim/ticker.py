"""The ticker: a WebSocket server speaking Kite's streaming protocol (FACTS 1.1-1.4).

Clients connect with `?api_key=&access_token=` (403 otherwise), send
subscribe / unsubscribe / mode messages, and receive binary frames of packets
in their chosen mode, one-byte heartbeats when idle, and order updates as
text messages. Every trade is delivered (not coalesced) so a test that pushes
a price sees exactly that tick; a new subscription gets the current snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter, deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from hmt.sim.faults import WS_CONNECT, WS_FRAME, Fault, FaultKind, FaultPlan
from hmt.sim.prices import Market, Quote
from hmt.sim.wire import HEARTBEAT, Mode, frame, packet
from hmt.waits import woken

MAX_TOKENS = 3000  # per connection (FACTS 1.8)
MAX_PACKETS_PER_FRAME = 1000
MAX_BACKLOG = 100_000  # packets queued for one client before the oldest are dropped
MALFORMED: dict[str, bytes | str] = {
    "bad_length": frame([b"\x00" * 13]),  # a packet length Kite never sends
    "truncated": b"\x00\x02\x00\x08\x00\x06\x3a\x01",  # 2 packets promised, half of one sent
    "short": b"\x00\x01\x00",  # count says 1, the length field is cut
    "bad_json": "{not json",  # a text message that is not JSON
}


class Client:
    """One connection: its subscriptions and what is waiting to be sent."""

    def __init__(self, ws: ServerConnection, access_token: str) -> None:
        self.ws = ws
        self.access_token = access_token
        self.modes: dict[int, Mode] = {}
        self.packets: deque[bytes] = deque()
        self.texts: deque[str | bytes] = deque()
        self.wake = asyncio.Event()
        self.resumed = asyncio.Event()
        self.stalled_until = 0.0  # loop time; inf means until resumed
        self.dropped = 0

    def push(self, data: bytes) -> None:
        if len(self.packets) >= MAX_BACKLOG:
            self.packets.popleft()
            self.dropped += 1
        self.packets.append(data)
        self.wake.set()

    def say(self, message: str | bytes) -> None:
        self.texts.append(message)
        self.wake.set()


class Ticker:
    """The WebSocket side of the simulator."""

    def __init__(
        self,
        market: Market,
        faults: FaultPlan,
        counters: Counter[str],
        authorize: Callable[[str, str], bool],
        heartbeat_interval: float = 2.0,
    ) -> None:
        self.market, self.faults, self.counters = market, faults, counters
        self.authorize = authorize
        self.heartbeat_interval = heartbeat_interval
        self.clients: set[Client] = set()
        # Called with a frame's packets just before it is written (benchmarks
        # time ticks with it); None costs one attribute check per frame.
        self.on_frame: Callable[[list[bytes]], None] | None = None
        self._by_token: dict[int, dict[Client, Mode]] = {}
        self._server: Server | None = None
        # A scripted outage (sim/gaps.py): while set, nothing is sent and market
        # data is not queued (a feed outage loses it); `refusing` fails upgrades.
        self.blackout = False
        self.refusing = False
        self._light = asyncio.Event()
        self._light.set()
        market.listeners.append(self.on_quote)

    async def start(self, host: str, port: int) -> int:
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._upgrade,
            ping_interval=None,
            max_size=2**20,
            compression=None,
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # ---- data in ------------------------------------------------------

    def on_quote(self, quote: Quote) -> None:
        """A trade: queue its packet, in each subscriber's mode."""
        subscribers = self._by_token.get(quote.token)
        if not subscribers or self.blackout:
            return
        encoded: dict[Mode, bytes] = {}
        for client, mode in subscribers.items():
            data = encoded.get(mode)
            if data is None:
                data = encoded[mode] = packet(quote, mode)
            client.push(data)

    def send_order_update(self, payload: dict[str, Any]) -> None:
        """An order's state changed: tell every connection (one user here)."""
        message = json.dumps({"type": "order", "data": payload}, separators=(",", ":"))
        for client in self.clients:
            client.say(message)

    def backlog(self) -> int:
        """The longest queue of unsent packets of any client."""
        return max((len(c.packets) for c in self.clients), default=0)

    # ---- direct faults ------------------------------------------------

    def begin_blackout(self, *, drop: bool) -> None:
        """Send nothing until `end_blackout`; `drop` also cuts every connection and
        refuses new ones (503) meanwhile."""
        self.blackout, self.refusing = True, drop
        self._light.clear()
        for client in self.clients:  # what was not yet sent is lost with the feed
            client.packets.clear()
        if drop:
            self.drop_all()

    def _dark(self) -> bool:
        return self.blackout

    def end_blackout(self) -> None:
        self.blackout = self.refusing = False
        self._light.set()

    def drop_all(self) -> int:
        """Cut every connection's TCP stream without a closing handshake."""
        for client in list(self.clients):
            client.ws.transport.abort()
        return len(self.clients)

    def stall(self, seconds: float | None = None) -> None:
        """Current connections send nothing (no heartbeats either) for a while."""
        until = float("inf") if seconds is None else asyncio.get_running_loop().time() + seconds
        for client in self.clients:
            client.stalled_until = until
            client.resumed.clear()

    def resume(self) -> None:
        for client in self.clients:
            client.stalled_until = 0.0
            client.resumed.set()
            client.wake.set()

    def send_malformed(self, kind: str) -> None:
        """Send every connection one malformed frame of the given kind."""
        for client in self.clients:
            client.say(MALFORMED[kind])

    # ---- connection ---------------------------------------------------

    def _upgrade(self, connection: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlsplit(request.path).query)
        api_key = query.get("api_key", [""])[-1]
        access_token = query.get("access_token", [""])[-1]
        if not self.authorize(api_key, access_token):
            self.counters["ws_rejected"] += 1
            return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")
        if self.refusing:
            self.counters["ws_rejected"] += 1
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable\n")
        fault = self.faults.pick(WS_CONNECT)
        if fault is not None:
            self.counters["ws_rejected"] += 1
            return connection.respond(fault.http_status, fault.text + "\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        client = Client(ws, query.get("access_token", [""])[-1])
        self.clients.add(client)
        self.counters["ws_connections"] += 1
        sender = asyncio.create_task(self._send_loop(client))
        try:
            async for message in ws:
                if isinstance(message, str):
                    self._on_message(client, message)
                else:
                    client.say(_error("binary messages are not understood; send JSON text"))
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            for token in client.modes:
                self._by_token.get(token, {}).pop(client, None)
            sender.cancel()
            # The sender may already have ended on the same closed connection.
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender

    def _on_message(self, client: Client, text: str) -> None:
        try:
            message = json.loads(text)
            action, value = message["a"], message["v"]
        except (ValueError, KeyError, TypeError):
            client.say(_error(f"not a Kite ticker message: {text[:100]!r}"))
            return
        if action == "mode":
            if not (isinstance(value, list) and len(value) == 2 and value[0] in set(Mode)):
                client.say(_error('mode needs ["ltp"|"quote"|"full", [tokens]]'))
                return
            mode, tokens = Mode(value[0]), value[1]
        elif action in ("subscribe", "unsubscribe"):
            mode, tokens = Mode.QUOTE, value
        else:
            client.say(_error(f"unknown action {action!r}"))
            return
        if not isinstance(tokens, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) for t in tokens
        ):
            client.say(_error(f"{action} needs a list of numeric instrument tokens"))
            return
        if action == "unsubscribe":
            for token in tokens:
                client.modes.pop(token, None)
                self._by_token.get(token, {}).pop(client, None)
            return
        self._subscribe(client, tokens, mode if action == "mode" else None)

    def _subscribe(self, client: Client, tokens: list[int], mode: Mode | None) -> None:
        unknown = [t for t in tokens if t not in self.market.quotes]
        if unknown:
            client.say(_error(f"unknown instrument tokens {unknown[:20]}"))
        for token in tokens:
            if token in unknown:
                continue
            if token not in client.modes and len(client.modes) >= MAX_TOKENS:
                client.say(_error(f"at most {MAX_TOKENS} instruments per connection"))
                return
            chosen = mode or client.modes.get(token, Mode.QUOTE)
            client.modes[token] = chosen
            self._by_token.setdefault(token, {})[client] = chosen
            if not self.blackout:
                client.push(packet(self.market.quotes[token], chosen))  # the current snapshot

    async def _send_loop(self, client: Client) -> None:
        loop = asyncio.get_running_loop()
        ws = client.ws
        while True:
            if self.blackout:
                await self._light.wait()
                continue
            if client.stalled_until > loop.time():
                left = client.stalled_until - loop.time()
                await woken(client.resumed, None if left == float("inf") else max(left, 0.0))
                continue
            if not client.packets and not client.texts:
                client.wake.clear()
                if not await woken(client.wake, self.heartbeat_interval):
                    if self._dark():  # the outage may have begun while we waited
                        continue
                    await ws.send(HEARTBEAT)
                    self.counters["heartbeats_sent"] += 1
                continue
            while client.texts:
                await ws.send(client.texts.popleft())
                self.counters["texts_sent"] += 1
            if client.packets:
                count = min(len(client.packets), MAX_PACKETS_PER_FRAME)
                batch = [client.packets.popleft() for _ in range(count)]
                fault = self.faults.pick(WS_FRAME)
                if fault is not None and self._apply(client, fault, loop.time()):
                    return
                if fault is None:
                    data = frame(batch)
                    if self.on_frame is not None:
                        self.on_frame(batch)
                    await ws.send(data)
                    self.counters["frames_sent"] += 1
                    self.counters["ticks_sent"] += count

    def _apply(self, client: Client, fault: Fault, now: float) -> bool:
        """Act on a frame fault instead of sending the frame; True ends the connection."""
        self.counters[f"fault_{fault.kind.value}"] += 1
        if fault.kind is FaultKind.WS_DROP:
            client.ws.transport.abort()
            return True
        if fault.kind is FaultKind.WS_STALL:
            client.stalled_until = now + fault.delay if fault.delay > 0 else float("inf")
            client.resumed.clear()
        elif fault.kind is FaultKind.WS_MALFORMED:
            client.say(MALFORMED[fault.malformed])
        return False


def _error(text: str) -> str:
    return json.dumps({"type": "error", "data": text})
