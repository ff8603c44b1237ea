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
import random
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hmt.kite.backoff import backoff_delay
from hmt.kite.subscriptions import (
    DEFAULT_BATCH,
    MAX_CONNECTIONS,
    MAX_TOKENS_PER_CONNECTION,
    SubscriptionPlan,
    changes,
)
from hmt.kite.ticker_frames import FrameSink, OnLtp, OnOrderUpdate, OnTicks
from hmt.kite.ticker_handshake import (
    auth_url,
    check_token,
    connect_options,
    public_url,
    redact,
)
from hmt.kite.ticker_state import LinkEvent, LinkEventKind, TickerState, TickerStats
from hmt.kite.ticks import Mode
from hmt.waits import within

log = structlog.get_logger("hmt.kite.ticker")

OnEvent = Callable[[LinkEvent], object]


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
        check_token(access_token)
        self._url = url
        self._public_url = public_url(url)
        self._api_key = api_key
        self._access_token = access_token
        self._frames = FrameSink(on_ltp, on_ticks, on_order_update)
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
        # The connection loops' own wait after a 403 (no handshake until a new token), not
        # the session's validity: the engine's BrokerSession decides that, told by the
        # TOKEN_INVALID event.
        self._awaiting_token = False
        self._token_changed = asyncio.Event()
        self.handshakes = self.reconnects = self.watchdog_trips = 0

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
        check_token(access_token)
        self._access_token = access_token
        if self._awaiting_token:
            self._awaiting_token = False
            log.info("ticker_new_token", url=self._public_url)
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
                    await within(link.ws.close(), 2)
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
            if self._awaiting_token:
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
                ws = await connect(
                    auth_url(self._url, self._api_key, token),
                    **connect_options(self._open_timeout_s),
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status == 403:
                    self._rejected(link, token)
                    continue
                link.reason = f"handshake refused: HTTP {status}"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure to connect is retried, forever
                link.reason = f"handshake failed: {redact(exc, self._access_token)}"
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
            "ticker_down",
            link=link.index,
            url=self._public_url,
            reason=link.reason,
            attempt=link.attempt,
            retry_in_s=round(delay, 2),
        )
        self._emit(LinkEventKind.BACKOFF, link, attempt=link.attempt, delay_s=delay)
        await asyncio.sleep(delay)

    def _rejected(self, link: _Link, token: str) -> None:
        """HTTP 403: wait for a new token, unless one arrived while this handshake ran."""
        if token != self._access_token:
            return
        if not self._awaiting_token:
            log.error("ticker_token_rejected", url=self._public_url, status=403)
        self._awaiting_token = True
        link.reason = "HTTP 403: access token invalid or expired"
        self._emit(LinkEventKind.TOKEN_INVALID, link, reason=link.reason)

    async def _session(self, link: _Link, ws: ClientConnection) -> float:
        """Serve one open socket until it ends; how long it lived, in seconds."""
        opened = link.last_frame = self._clock()
        link.ws, link.told, link.state, link.reason = ws, {}, TickerState.CONNECTED, ""
        log.info("ticker_connected", link=link.index, url=self._public_url)
        self._emit(LinkEventKind.CONNECTED, link)
        link.dirty.set()
        helpers = [
            asyncio.create_task(self._write(link, ws)),
            asyncio.create_task(self._watch(link, ws)),
        ]
        try:
            on_frame, clock = self._frames.on_frame, self._clock
            async for message in ws:
                link.last_frame = clock()
                on_frame(link.index, message)
        except ConnectionClosed:
            pass
        except Exception:  # a bug of ours must cost a reconnect, not the feed
            log.exception("ticker_read_failed", link=link.index)
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
            log.exception("ticker_send_failed", link=link.index)
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

    # --- reporting -------------------------------------------------------------------

    def _emit(self, kind: LinkEventKind, link: _Link, **detail: Any) -> None:
        if self._on_event is not None:
            event = LinkEvent(kind, link.index, self._clock(), **detail)
            self._frames.call(self._on_event, event)

    @property
    def state(self) -> TickerState:
        if not self._running:
            return TickerState.STOPPED
        if self._awaiting_token:
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
        sink = self._frames
        return TickerStats(
            state=state,
            connected=state is TickerState.CONNECTED,
            connections=sum(link.ws is not None for link in self._links),
            connections_needed=len(self._links),
            subscribed_tokens=len(self._plan),
            frames=sink.frames,
            heartbeats=sink.heartbeats,
            ticks=sink.ticks,
            bad_frames=dict(sink.bad),
            handshakes=self.handshakes,
            reconnects=self.reconnects,
            watchdog_trips=self.watchdog_trips,
            order_updates=sink.order_updates,
            server_errors=sink.server_errors,
            handler_errors=sink.handler_errors,
            last_frame_age_s=(self._clock() - max(seen)) if seen else None,
            ticks_by_link=dict(enumerate(sink.link_ticks)),
        )


def _no_clock() -> float:
    raise RuntimeError("the ticker reads its clock only once started")
