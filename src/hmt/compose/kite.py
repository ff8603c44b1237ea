"""The composition's Kite half: the ticker as the engine's `Feed`, the login exchange, and
how the ticker's events and order updates reach the session, the engine and the fills.

`hmt.compose.build` makes Kite's REST client, order port, instruments, quotes
and history from these (docs/engine.md); only the composition imports it.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from hmt.config import ConfigError, Settings
from hmt.core.broker import BrokerError
from hmt.engine.fills import Fills
from hmt.engine.ports import FeedStatus
from hmt.engine.service import Engine
from hmt.engine.session import BrokerSession
from hmt.kite.orders import report_from_row
from hmt.kite.session import exchange_request_token
from hmt.kite.ticker import Ticker
from hmt.kite.ticker_messages import OrderUpdate
from hmt.kite.ticker_state import LinkEvent, LinkEventKind
from hmt.kite.ticks import FullTick, LtpTick, Mode, Tick

log = structlog.get_logger("hmt.compose")


class TickerFeed:
    """The ticker as the engine's `Feed`: every instrument in the configured mode."""

    def __init__(self, ticker: Ticker, mode: Mode) -> None:
        self.ticker = ticker
        self._mode = mode

    def subscribe(self, tokens: Iterable[int]) -> None:
        self.ticker.subscribe(tokens, self._mode)

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        self.ticker.unsubscribe(tokens)

    def set_access_token(self, access_token: str) -> None:
        self.ticker.set_access_token(access_token)

    async def start(self) -> None:
        await self.ticker.start()

    async def stop(self) -> None:
        await self.ticker.stop()

    @property
    def connected(self) -> bool:
        return self.ticker.stats().connected

    def status(self) -> FeedStatus:
        stats = self.ticker.stats()
        return FeedStatus(
            state=stats.state.value,
            connected=stats.connected,
            connections=stats.connections,
            subscribed_tokens=stats.subscribed_tokens,
            reconnects=stats.reconnects,
            bad_frames=stats.bad_frames,
            last_frame_age_s=stats.last_frame_age_s,
            ticks=stats.ticks,
            ticks_by_connection=stats.ticks_by_link,
        )


class KiteLogin:
    """Kite's login exchange: request token + API secret -> access token."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def __call__(self, request_token: str) -> str:
        secret = self._settings.kite_api_secret
        if secret is None or not self._settings.kite_api_key:
            raise ConfigError("Kite login needs HMT_KITE_API_KEY and HMT_KITE_API_SECRET")
        return await exchange_request_token(
            api_url=self._settings.kite_api_url,
            api_key=self._settings.kite_api_key,
            request_token=request_token,
            api_secret=secret.get_secret_value(),
        )


def on_order_update(fills: Fills, update: OrderUpdate) -> None:
    try:
        report = report_from_row(dict(update.data))
    except BrokerError:
        log.warning("order_update_unreadable")
        return
    fills.on_update(report)


def on_link_event(session: BrokerSession, engine: Engine, event: LinkEvent, fills: Fills) -> None:
    # The ticker's 403 is the same expired session an order would meet: say so now.
    if event.kind is LinkEventKind.TOKEN_INVALID:
        session.expired(event.reason)
    # Blind from here until the first look after reconnecting (missed touches). The
    # watchdog's trip comes first when the feed stalled; the first reason is kept.
    elif event.kind is LinkEventKind.WATCHDOG:
        engine.feed_lost("stall", event.reason)
    elif event.kind is LinkEventKind.DISCONNECTED:
        engine.feed_lost("reconnect", event.reason)
    elif event.kind is LinkEventKind.CONNECTED:
        fills.poke()  # order updates may have been missed while it was down


def day_ranges(engine: Engine, ticks: tuple[Tick, ...]) -> None:
    """Quote and full ticks' day high and low, after their LTPs went through `on_ltp`;
    a full tick's best bid and ask for the legs trailing them."""
    for tick in ticks:
        if not isinstance(tick, LtpTick):
            engine.on_range(tick.instrument_token, tick.high, tick.low)
        if isinstance(tick, FullTick):
            depth = tick.depth  # (quantity, price, orders) x 5 bids, then x 5 asks
            engine.on_depth(tick.instrument_token, tick.last_price, depth[1], depth[16])
