"""Where the ticker client's frames go: decoded, counted, and handed to the callbacks.

`on_frame` is the hot path: a binary frame goes through the fast decoder
straight to `on_ltp(token, ltp)` for each packet, prices as ints in wire units;
only if `on_ticks` is set is it decoded a second time into typed ticks. Nothing
here raises on a bad frame or a failing callback: both are counted, and logged
sparingly so that a bad feed cannot flood the log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from hmt.kite.ticker_messages import OrderUpdate, ServerError, ServerMessage, decode_server_text
from hmt.kite.ticker_protocol import decode_frame, decode_ltps
from hmt.kite.ticks import FrameError, Tick

log = structlog.get_logger("hmt.kite.ticker")

OnLtp = Callable[[int, int], object]
OnTicks = Callable[[tuple[Tick, ...]], object]
OnOrderUpdate = Callable[[OrderUpdate], object]


class FrameSink:
    """The callbacks and the frame counters of one ticker client."""

    def __init__(
        self,
        on_ltp: OnLtp | None = None,
        on_ticks: OnTicks | None = None,
        on_order_update: OnOrderUpdate | None = None,
    ) -> None:
        self._on_ltp = on_ltp
        self._on_ticks = on_ticks
        self._on_order_update = on_order_update
        self._logged: set[str] = set()
        self.bad: Counter[str] = Counter()
        self.frames = self.heartbeats = self.ticks = 0
        # Packets per connection index (Kite allows 3 per API key): a list, not a dict,
        # for one indexed add per frame.
        self.link_ticks: list[int] = []
        self.order_updates = self.server_errors = self.handler_errors = 0

    def on_frame(self, link: int, message: str | bytes) -> None:
        """Count, decode and hand on one frame from connection `link`; never raises."""
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
        try:
            self.link_ticks[link] += len(tokens)
        except IndexError:
            self.link_ticks.extend([0] * (link + 1 - len(self.link_ticks)))
            self.link_ticks[link] += len(tokens)
        if self._on_ltp is not None and tokens:
            self._deliver(tokens, ltps)
        if self._on_ticks is not None:
            ticks = decode_frame(message).ticks
            if ticks:
                self.call(self._on_ticks, ticks)

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

    def _on_text(self, link: int, text: str | bytes) -> None:
        message = decode_server_text(text)
        if isinstance(message, OrderUpdate):
            self.order_updates += 1
            if self._on_order_update is not None:
                self.call(self._on_order_update, message)
        elif isinstance(message, ServerError):
            self.server_errors += 1
            log.warning("ticker_server_error", link=link, message=message.message[:200])
        elif isinstance(message, ServerMessage):
            log.info("ticker_broker_message", message=message.message[:200])
        else:
            self._count_bad(message.kind, link, message.reason)

    def _count_bad(self, kind: FrameError, link: int, detail: str) -> None:
        self.bad[kind.value] += 1
        if kind.value not in self._logged:  # once per kind: a bad feed must not flood the log
            self._logged.add(kind.value)
            # Once per kind: further ones are only counted (TickerStats.bad_frames).
            log.warning("ticker_malformed_frame", kind=kind.value, link=link, detail=detail)

    def call(self, handler: Callable[[Any], object], value: object) -> None:
        """Run a callback; if it raises, log and count it instead of ending the feed."""
        try:
            handler(value)
        except Exception:
            self._handler_failed(getattr(handler, "__name__", "handler"))

    def _handler_failed(self, name: str) -> None:
        self.handler_errors += 1
        if self.handler_errors == 1 or self.handler_errors % 1000 == 0:
            log.exception("ticker_handler_failed", handler=name, failures=self.handler_errors)
