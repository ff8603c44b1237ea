"""The Kite ticker client: WebSocket connections that stay up 24/7 and hand ticks on.

One asyncio task per connection (at most 3 per API key, 3000 instruments each;
see `subscriptions`). Each task connects, sends what its socket should carry,
reads frames until the socket ends, then waits out an exponential backoff and
starts again, forever. Around that loop:

- a watchdog closes a socket that has been silent (heartbeats count) for
  `watchdog_s`: a half-open TCP connection never ends by itself;
- a fresh socket is told every token in its mode (`subscriptions.changes`);
- HTTP 403 on the handshake means the access token is invalid or expired;
  reconnecting with it cannot succeed, so the client waits in `token_invalid`
  until `set_access_token` gives it a new one (FACTS.md 1.1).

Ticks go to `on_ltp(token, ltp)` straight from the fast decoder, prices as ints
in wire units, and, if given, to `on_ticks(ticks)` fully decoded. Handlers run
on the event loop and must not block. Subscription methods must be called from
the loop's thread. The access token is never logged: the URL carries it, so
only the URL without its query string is.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hmt import __version__
from hmt.kite.backoff import backoff_delay
from hmt.kite.subscriptions import (
    DEFAULT_BATCH,
    MAX_CONNECTIONS,
    MAX_TOKENS_PER_CONNECTION,
    SubscriptionPlan,
    changes,
)
from hmt.kite.ticker_messages import (
    OrderUpdate,
    ServerError,
    ServerMessage,
    decode_server_text,
)
from hmt.kite.ticker_protocol import decode_frame, decode_ltps
from hmt.kite.ticker_state import LinkEvent, LinkEventKind, TickerState, TickerStats
from hmt.kite.ticks import FrameError, Mode, Tick

log = logging.getLogger(__name__)

OnLtp = Callable[[int, int], object]
OnTicks = Callable[[tuple[Tick, ...]], object]
OnOrderUpdate = Callable[[OrderUpdate], object]
OnEvent = Callable[[LinkEvent], object]


class _QuietWire(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger handed to websockets, minus its debug lines: they print the request path,
    which carries the access token."""

    def isEnabledFor(self, level: int) -> bool:  # logging's name
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_WIRE_LOG = _QuietWire(logging.getLogger("hmt.kite.wire"), {})


class _Link:
    """One WebSocket connection's state: what its socket was told, and its timers."""

    __slots__ = ("attempt", "dirty", "index", "last_frame", "reason", "state", "task", "told", "ws")

    def __init__(self, index: int) -> None:
        self.index = index
        self.state = TickerState.STOPPED
        self.ws: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.told: dict[int, Mode] = {}  # what the current socket carries
        self.dirty = asyncio.Event()  # the plan changed: send the difference
        self.attempt = 0  # failed attempts since the last stable connection
        self.last_frame: float | None = None
        self.reason = ""


class Ticker:
    """A Kite ticker client over up to `max_connections` WebSockets."""

    def __init__(
        self,
        url: str,
        api_key: str,
        access_token: str,
        *,
        on_ltp: OnLtp | None = None,
        on_ticks: OnTicks | None = None,
        on_order_update: OnOrderUpdate | None = None,
        on_event: OnEvent | None = None,
        reconnect_delay_ms: float = 5000,
        reconnect_max_delay_ms: float = 60_000,
        jitter: float = 0.2,
        watchdog_s: float = 5.0,
        stable_after_s: float = 30.0,
        open_timeout_s: float = 10.0,
        per_connection: int = MAX_TOKENS_PER_CONNECTION,
        max_connections: int = MAX_CONNECTIONS,
        batch: int = DEFAULT_BATCH,
        rng: random.Random | None = None,
    ) -> None:
        if reconnect_delay_ms <= 0 or reconnect_max_delay_ms < reconnect_delay_ms:
            raise ValueError("need 0 < reconnect_delay_ms <= reconnect_max_delay_ms")
        if not 0 <= jitter < 1 or watchdog_s <= 0 or batch < 1:
            raise ValueError("need 0 <= jitter < 1, watchdog_s > 0 and batch >= 1")
        _check_token(access_token)
        self._url = url
        self._public_url = urlsplit(url)._replace(query="", fragment="").geturl()
        self._api_key = api_key
        self._access_token = access_token
        self._on_ltp = on_ltp
        self._on_ticks = on_ticks
        self._on_order_update = on_order_update
        self._on_event = on_event
        self._base_s = reconnect_delay_ms / 1000
        self._cap_s = reconnect_max_delay_ms / 1000
        self._jitter = jitter
        self._watchdog_s = watchdog_s
        self._stable_after_s = stable_after_s
        self._open_timeout_s = open_timeout_s
        self._batch = batch
        self._rng = rng or random.Random()
        self._plan = SubscriptionPlan(per_connection, max_connections)
        self._links: list[_Link] = [_Link(0)]
        self._running = False
        self._clock: Callable[[], float] = _no_clock
        self._token_invalid = False
        self._token_changed = asyncio.Event()
        self._logged: set[str] = set()
        self._bad: Counter[str] = Counter()
        self.frames = self.heartbeats = self.ticks = 0
        self.handshakes = self.reconnects = self.watchdog_trips = 0
        self.order_updates = self.server_errors = self.handler_errors = 0

    # --- subscriptions -------------------------------------------------------------

    def subscribe(self, tokens: Iterable[int], mode: Mode = Mode.LTP) -> None:
        """Carry `tokens` in `mode` (also changes the mode of tokens already carried).

        SubscriptionLimitError, and no change, if they do not fit in the
        connections one API key may open.
        """
        self._touch(self._plan.subscribe(tokens, mode))

    def set_mode(self, mode: Mode, tokens: Iterable[int]) -> None:
        """Change the mode of `tokens` (subscribing any that are not yet)."""
        self.subscribe(tokens, mode)

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        """Stop carrying `tokens`; unknown ones are ignored."""
        self._touch(self._plan.unsubscribe(tokens))

    def subscriptions(self) -> dict[int, Mode]:
        """Every token the client carries (or will once connected), with its mode."""
        return self._plan.modes()

    def _touch(self, indexes: set[int]) -> None:
        for index in sorted(indexes):
            while index >= len(self._links):
                link = _Link(len(self._links))
                self._links.append(link)
                if self._running:
                    self._start_link(link)
            self._links[index].dirty.set()

    # --- lifecycle -----------------------------------------------------------------

    def set_access_token(self, access_token: str) -> None:
        """Use `access_token` from the next handshake on; ends a `token_invalid` wait."""
        _check_token(access_token)
        self._access_token = access_token
        if self._token_invalid:
            self._token_invalid = False
            log.info("kite ticker: new access token, reconnecting to %s", self._public_url)
        waiting, self._token_changed = self._token_changed, asyncio.Event()
        waiting.set()

    async def start(self) -> None:
        """Start the connection tasks; returns at once (see `stats()` for progress)."""
        if self._running:
            return
        self._running = True
        self._clock = asyncio.get_running_loop().time
        for link in self._links:
            self._start_link(link)

    async def stop(self) -> None:
        """Close every connection and end the tasks."""
        self._running = False
        for link in self._links:
            if link.ws is not None:
                try:
                    await asyncio.wait_for(link.ws.close(), timeout=2)
                except (TimeoutError, ConnectionClosed, OSError):
                    link.ws.transport.abort()
        tasks = [link.task for link in self._links if link.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in self._links:
            link.task = None
            link.state = TickerState.STOPPED

    async def __aenter__(self) -> Ticker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _stopped(self) -> bool:
        return not self._running

    def _start_link(self, link: _Link) -> None:
        link.task = asyncio.create_task(self._run(link), name=f"kite-ticker-{link.index}")

    # --- one connection, forever ---------------------------------------------------

    async def _run(self, link: _Link) -> None:
        first = True
        while self._running:
            if self._token_invalid:
                link.state = TickerState.TOKEN_INVALID
                await self._token_changed.wait()
                continue
            token = self._access_token
            self.handshakes += 1
            if not first:
                self.reconnects += 1
            first = False
            link.state = TickerState.CONNECTING if link.attempt == 0 else link.state
            try:
                ws = await connect(self._auth_url(token), **self._connect_options())
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status == 403:
                    self._rejected(link, token)
                    continue
                link.reason = f"handshake refused: HTTP {status}"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure to connect is retried, forever
                link.reason = f"handshake failed: {self._redact(exc)}"
            else:
                lived = await self._session(link, ws)
                if lived >= self._stable_after_s:
                    link.attempt = 0
            if self._stopped():  # stop() may have run while this task awaited
                break
            await self._backoff(link)

    async def _backoff(self, link: _Link) -> None:
        link.attempt += 1
        delay = backoff_delay(link.attempt, self._base_s, self._cap_s, self._jitter, self._rng)
        link.state = TickerState.RECONNECTING
        log.warning(
            "kite ticker: connection %d to %s down (%s); attempt %d in %.2f s",
            link.index, self._public_url, link.reason, link.attempt, delay,
        )  # fmt: skip
        self._emit(LinkEventKind.BACKOFF, link, attempt=link.attempt, delay_s=delay)
        await asyncio.sleep(delay)

    def _rejected(self, link: _Link, token: str) -> None:
        """HTTP 403: wait for a new token, unless one arrived while this handshake ran."""
        if token != self._access_token:
            return
        if not self._token_invalid:
            log.error(
                "kite ticker: access token rejected (HTTP 403) by %s; waiting for a new token",
                self._public_url,
            )
        self._token_invalid = True
        link.reason = "HTTP 403: access token invalid or expired"
        self._emit(LinkEventKind.TOKEN_INVALID, link, reason=link.reason)

    async def _session(self, link: _Link, ws: ClientConnection) -> float:
        """Serve one open socket until it ends; how long it lived, in seconds."""
        opened = link.last_frame = self._clock()
        link.ws, link.told, link.state, link.reason = ws, {}, TickerState.CONNECTED, ""
        log.info("kite ticker: connection %d open to %s", link.index, self._public_url)
        self._emit(LinkEventKind.CONNECTED, link)
        link.dirty.set()
        helpers = [
            asyncio.create_task(self._write(link, ws)),
            asyncio.create_task(self._watch(link, ws)),
        ]
        try:
            async for message in ws:
                self._on_frame(link, message)
        except ConnectionClosed:
            pass
        except Exception:  # a bug of ours must cost a reconnect, not the feed
            log.exception("kite ticker: connection %d failed while reading", link.index)
            link.reason = link.reason or "reader failed"
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            ws.transport.abort()
            link.ws = None
        if not link.reason:
            link.reason = f"closed, code {ws.close_code} {(ws.close_reason or '')[:60]}".strip()
        self._emit(LinkEventKind.DISCONNECTED, link, reason=link.reason)
        return self._clock() - opened

    async def _write(self, link: _Link, ws: ClientConnection) -> None:
        """Send what the plan adds or removes for this socket, whenever it changes."""
        resubscribed = False
        try:
            while True:
                await link.dirty.wait()
                link.dirty.clear()
                wanted = dict(self._plan.connections[link.index])
                for message in changes(link.told, wanted, self._batch):
                    await ws.send(message)
                link.told = wanted
                if not resubscribed:
                    resubscribed = True
                    self._emit(LinkEventKind.RESUBSCRIBED, link, tokens=len(wanted))
        except ConnectionClosed:
            return
        except Exception:
            log.exception("kite ticker: connection %d failed while sending", link.index)
            link.reason = "writer failed"
            ws.transport.abort()

    async def _watch(self, link: _Link, ws: ClientConnection) -> None:
        """Close the socket once no frame has come for `watchdog_s`."""
        while True:
            await asyncio.sleep(self._watchdog_s / 4)
            silent = self._clock() - (link.last_frame or 0.0)
            if silent > self._watchdog_s:
                self.watchdog_trips += 1
                link.reason = f"no frame for {silent:.2f} s (watchdog)"
                self._emit(LinkEventKind.WATCHDOG, link, reason=link.reason)
                ws.transport.abort()
                return

    # --- frames ----------------------------------------------------------------------

    def _on_frame(self, link: _Link, message: str | bytes) -> None:
        link.last_frame = self._clock()
        self.frames += 1
        if message.__class__ is not bytes:
            self._on_text(link, message)
            return
        if len(message) == 1:
            self.heartbeats += 1
            return
        tokens, ltps, error = decode_ltps(message)
        if error is not None:
            self._count_bad(error, link, f"{len(message)} bytes, starting {message[:16]!r}")
        self.ticks += len(tokens)
        if self._on_ltp is not None and tokens:
            self._deliver(tokens, ltps)
        if self._on_ticks is not None:
            ticks = decode_frame(message).ticks
            if ticks:
                self._call(self._on_ticks, ticks)

    def _deliver(self, tokens: Sequence[int], ltps: Sequence[int]) -> None:
        """Hand each (token, ltp) to on_ltp; one that raises does not stop the rest."""
        handler = self._on_ltp
        assert handler is not None
        n = len(tokens)
        start = 0
        while start < n:
            i = start
            try:
                for i in range(start, n):
                    handler(tokens[i], ltps[i])
            except Exception:
                self._handler_failed("on_ltp")
            start = i + 1

    def _on_text(self, link: _Link, text: str | bytes) -> None:
        message = decode_server_text(text)
        if isinstance(message, OrderUpdate):
            self.order_updates += 1
            if self._on_order_update is not None:
                self._call(self._on_order_update, message)
        elif isinstance(message, ServerError):
            self.server_errors += 1
            log.warning("kite ticker: server error on connection %d: %.200s", link.index,
                        message.message)  # fmt: skip
        elif isinstance(message, ServerMessage):
            log.info("kite ticker: broker message: %.200s", message.message)
        else:
            self._count_bad(message.kind, link, message.reason)

    def _count_bad(self, kind: FrameError, link: _Link, detail: str) -> None:
        self._bad[kind.value] += 1
        if kind.value not in self._logged:  # once per kind: a bad feed must not flood the log
            self._logged.add(kind.value)
            log.warning(
                "kite ticker: malformed frame (%s) on connection %d: %s; counting further ones",
                kind.value, link.index, detail,
            )  # fmt: skip

    def _call(self, handler: Callable[[Any], object], value: object) -> None:
        try:
            handler(value)
        except Exception:
            self._handler_failed(getattr(handler, "__name__", "handler"))

    def _handler_failed(self, name: str) -> None:
        self.handler_errors += 1
        if self.handler_errors == 1 or self.handler_errors % 1000 == 0:
            log.exception("kite ticker: %s raised (%d so far)", name, self.handler_errors)

    # --- reporting -------------------------------------------------------------------

    def _emit(self, kind: LinkEventKind, link: _Link, **detail: Any) -> None:
        if self._on_event is not None:
            self._call(self._on_event, LinkEvent(kind, link.index, self._clock(), **detail))

    @property
    def state(self) -> TickerState:
        if not self._running:
            return TickerState.STOPPED
        if self._token_invalid:
            return TickerState.TOKEN_INVALID
        states = {link.state for link in self._links}
        if states == {TickerState.CONNECTED}:
            return TickerState.CONNECTED
        if TickerState.RECONNECTING in states:
            return TickerState.RECONNECTING
        return TickerState.CONNECTING

    def stats(self) -> TickerStats:
        """The counters and state now."""
        seen = [link.last_frame for link in self._links if link.last_frame is not None]
        state = self.state
        return TickerStats(
            state=state,
            connected=state is TickerState.CONNECTED,
            connections=sum(link.ws is not None for link in self._links),
            connections_needed=len(self._links),
            subscribed_tokens=len(self._plan),
            frames=self.frames,
            heartbeats=self.heartbeats,
            ticks=self.ticks,
            bad_frames=dict(self._bad),
            handshakes=self.handshakes,
            reconnects=self.reconnects,
            watchdog_trips=self.watchdog_trips,
            order_updates=self.order_updates,
            server_errors=self.server_errors,
            handler_errors=self.handler_errors,
            last_frame_age_s=(self._clock() - max(seen)) if seen else None,
        )

    # --- the handshake -------------------------------------------------------------

    def _auth_url(self, token: str) -> str:
        query = urlencode({"api_key": self._api_key, "access_token": token})
        return f"{self._url}{'&' if '?' in self._url else '?'}{query}"

    def _connect_options(self) -> dict[str, Any]:
        return {
            "additional_headers": {"X-Kite-Version": "3"},
            "user_agent_header": f"hmt/{__version__}",
            "open_timeout": self._open_timeout_s,
            "close_timeout": 2,
            # Our watchdog judges liveness by Kite's heartbeats; pings would add nothing.
            "ping_interval": None,
            "compression": None,  # as the official client: ticks are small and CPU is not
            "max_size": 2**22,  # 3000 full packets are about 560 KB
            "logger": _WIRE_LOG,
        }

    def _redact(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        return text.replace(self._access_token, "***")[:200]


def _check_token(access_token: str) -> None:
    if not isinstance(access_token, str) or not access_token:
        raise ValueError("access_token must be a non-empty string")


def _no_clock() -> float:
    raise RuntimeError("the ticker reads its clock only once started")
