"""The composition's Upstox half: the Upstox adapter in the engine's ports (docs/upstox/WIRING.md).

`UpstoxRest` is the REST client (orders on api-hft, the rest on api), and
`UpstoxInstruments` the `InstrumentSource` that keeps the day's master, whose
`key_for` and `divisor_for` the order port and the feed read: Upstox names an
instrument by a string key that only the master knows, while the engine and
the store name it by the integer id `hmt.upstox.instruments.instrument_id`
derives from that key.

So neither the feed nor the order port can use an id before the master is
read, and the engine starts (recovery may send an order, the book subscribes)
before the supervisor's background fetch ends. `UpstoxFeedPort` holds such ids
(`pending`) and subscribes them as soon as a master that lists them is read;
at start it reads the master first (unless no login has happened yet, when
Upstox would refuse it). `UpstoxOrderPort` reads the master before placing an
order for an id it does not know: if no master could be read at all, the
order is a RETRY (nothing was sent); an id the day's master does not list is
FINAL. An id no master lists stays pending in the feed and is logged.

This module and `hmt.compose` are the only ones that import `hmt.upstox`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog

from hmt.compose.brokers import BrokerFeeds, BrokerSources, is_loopback
from hmt.config import Broker, ConfigError, Settings
from hmt.core.broker import BrokerError, ErrorKind, OrderReport
from hmt.core.errors import FieldError
from hmt.core.instruments import Instrument, Listing
from hmt.core.model import OrderIntent
from hmt.core.types import Exchange, InstrumentToken, Leg
from hmt.engine.fills import Fills
from hmt.engine.ports import FeedStatus
from hmt.engine.service import Engine
from hmt.engine.session import BrokerSession
from hmt.upstox.feed import FeedState, UpstoxFeed
from hmt.upstox.instruments import UnknownInstrument, UpstoxInstruments
from hmt.upstox.orders import UpstoxOrders, only_our_tags
from hmt.upstox.portfolio import StreamState, UpstoxPortfolio
from hmt.upstox.rest import UpstoxRest
from hmt.upstox.session import UpstoxLogin

log = structlog.get_logger("hmt.compose.upstox")

# Rows other tools stored without a divisor, for an id today's master does not list:
# rupees in paise, as every Upstox cash and F&O instrument but currencies.
FALLBACK_DIVISOR = 100


class UpstoxMaster:
    """`UpstoxInstruments` as the engine's `InstrumentSource`, telling `on_read` of each
    master read (so the feed subscribes the ids that waited for it)."""

    def __init__(self, instruments: UpstoxInstruments) -> None:
        self.instruments = instruments
        self.on_read: list[Callable[[], None]] = []

    async def fetch(self) -> list[Listing]:
        listings = await self.instruments.fetch()
        for listener in self.on_read:
            listener()
        return listings

    def unlisted(
        self, token: InstrumentToken, exchange: Exchange, tradingsymbol: str
    ) -> tuple[Instrument, list[FieldError]]:
        return self.instruments.unlisted(token, exchange, tradingsymbol)

    def divisor_of(self, token: int) -> int:
        """The id's divisor in today's master, else `FALLBACK_DIVISOR` (the store's rows
        written without one)."""
        try:
            return self.instruments.divisor_for(token)
        except UnknownInstrument:
            return FALLBACK_DIVISOR


class UpstoxOrderPort:
    """`UpstoxOrders` as the engine's `OrderPort`: an order waits for the master its key is in."""

    def __init__(
        self,
        orders: UpstoxOrders,
        instruments: UpstoxInstruments,
        read_master: Callable[[], Awaitable[object]],
    ) -> None:
        self.orders_api = orders
        self._instruments = instruments
        self._read_master = read_master

    def tag(self, trigger_id: str, leg: Leg, position: int = 0) -> str:
        return self.orders_api.tag(trigger_id, leg, position)

    async def place(self, intent: OrderIntent) -> str:
        token = int(intent.instrument_token)
        if token not in self._instruments.master.keys:
            await self._read_master()
            if not self._instruments.master.keys:
                raise BrokerError(
                    ErrorKind.RETRY, "the Upstox instrument master is not read yet: not sent"
                )
        return await self.orders_api.place(intent)

    async def find(self, tag: str) -> list[OrderReport]:
        return await self.orders_api.find(tag)

    async def orders(self) -> list[OrderReport]:
        return await self.orders_api.orders()


class UpstoxFeedPort:
    """The Upstox feed as the engine's `Feed`: ids wait for the master that names them."""

    def __init__(
        self,
        feed: Callable[[Callable[[FeedState], None]], UpstoxFeed],
        instruments: UpstoxInstruments,
        read_master: Callable[[], Awaitable[object]],
        *,
        read_at_start: bool,
    ) -> None:
        self.feed = feed(self._moved)
        self._instruments = instruments
        self._read_master = read_master
        self._read_at_start = read_at_start
        self.pending: set[int] = set()
        self.on_state: Callable[[FeedState], None] | None = None  # set by the composition
        self._running = False
        self._tasks: set[asyncio.Task[None]] = set()

    def _split(self, tokens: Iterable[int]) -> tuple[list[int], set[int]]:
        """The ids today's master lists, and those it does not (yet)."""
        known: list[int] = []
        waiting: set[int] = set()
        for token in tokens:
            try:
                self._instruments.key_for(token)
            except UnknownInstrument:
                waiting.add(token)
            else:
                known.append(token)
        return known, waiting

    def subscribe(self, tokens: Iterable[int]) -> None:
        known, waiting = self._split(tokens)
        self.pending |= waiting
        if known:
            self.feed.subscribe(known)

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        tokens = set(tokens)
        self.pending -= tokens
        known, _ = self._split(tokens)
        if known:
            self.feed.unsubscribe(known)

    def master_read(self) -> None:
        """A master is in: subscribe the ids that waited for it."""
        if not self.pending:
            return
        known, waiting = self._split(self.pending)
        self.pending = waiting
        if known:
            self.feed.subscribe(known)
        if waiting:
            log.warning("upstox_instruments_unlisted", count=len(waiting))

    def set_access_token(self, access_token: str) -> None:
        self.feed.set_access_token(access_token)
        if self.pending and self._running:  # the master may not have been readable before
            task = asyncio.get_running_loop().create_task(self._read())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _read(self) -> None:
        await self._read_master()  # its failure is logged and kept by the master's holder

    async def start(self) -> None:
        self._running = True
        if self._read_at_start and self.pending:
            await self._read()
        await self.feed.start()

    async def stop(self) -> None:
        self._running = False
        for task in list(self._tasks):
            task.cancel()
        await self.feed.stop()

    def _moved(self, state: FeedState) -> None:
        if self._running and self.on_state is not None:
            self.on_state(state)

    @property
    def connected(self) -> bool:
        return self.feed.connected

    def status(self) -> FeedStatus:
        stats = self.feed.stats
        return FeedStatus(
            state=stats.state.value,
            connected=self.feed.connected,
            connections=int(self.feed.connected),
            subscribed_tokens=len(self.feed.subscriptions()),
            reconnects=stats.reconnects,
            bad_frames=dict(stats.bad_frames),
            last_frame_age_s=stats.last_frame_age_s,
            ticks=stats.ticks,
            ticks_by_connection={0: stats.ticks},  # one connection per app and user
        )


@dataclass(frozen=True, slots=True)
class UpstoxParts:
    rest: UpstoxRest
    master: UpstoxMaster
    orders: UpstoxOrderPort
    feed: UpstoxFeedPort
    login: UpstoxLogin | None
    portfolio: UpstoxPortfolio  # order updates: the fills hear of a fill at once


def upstox_parts(
    settings: Settings,
    access_token: str,
    *,
    on_ltp: Callable[[int, int], object],
    on_order: Callable[[OrderReport], object],
    on_portfolio_state: Callable[[StreamState], object],
    read_master: Callable[[], Awaitable[object]],
    awaiting_login: bool,
) -> UpstoxParts:
    """The Upstox adapter's objects, wired to each other as docs/upstox/WIRING.md says."""
    rest = UpstoxRest(
        access_token=access_token,
        api_url=settings.upstox_api_url,
        order_url=settings.upstox_orders_url,
        timeout=settings.upstox_timeout_ms / 1000,
    )
    instruments = UpstoxInstruments(rest, settings.upstox_master)
    master = UpstoxMaster(instruments)
    orders = UpstoxOrderPort(UpstoxOrders(rest, instruments.key_for), instruments, read_master)
    reconnect_s = max(settings.reconnect_delay_ms, 1) / 1000

    def feed(on_state: Callable[[FeedState], None]) -> UpstoxFeed:
        return UpstoxFeed(
            access_token,
            key_for=instruments.key_for,
            divisor_for=instruments.divisor_for,
            on_ltp=on_ltp,
            api_url=settings.upstox_api_url,
            on_state=on_state,
            reconnect_delay_s=reconnect_s,
            reconnect_max_delay_s=max(60.0, reconnect_s),
        )

    port = UpstoxFeedPort(feed, instruments, read_master, read_at_start=not awaiting_login)
    master.on_read.append(port.master_read)
    portfolio = UpstoxPortfolio(
        access_token,
        on_order=on_order,
        api_url=settings.upstox_api_url,
        on_state=on_portfolio_state,
        reconnect_delay_s=reconnect_s,
        reconnect_max_delay_s=max(60.0, reconnect_s),
    )
    return UpstoxParts(rest, master, orders, port, _login(settings), portfolio)


def _login(settings: Settings) -> UpstoxLogin | None:
    secret = settings.upstox_client_secret
    if secret is None:
        return None
    if not settings.upstox_client_id or not settings.upstox_redirect_uri:
        raise ConfigError(
            "HMT_UPSTOX_CLIENT_SECRET is set: an Upstox login also needs HMT_UPSTOX_CLIENT_ID "
            "and HMT_UPSTOX_REDIRECT_URI"
        )
    return UpstoxLogin(
        client_id=settings.upstox_client_id,
        client_secret=secret.get_secret_value(),
        redirect_uri=settings.upstox_redirect_uri,
        api_url=settings.upstox_api_url,
    )


def on_feed_state(session: BrokerSession, engine: Engine, fills: Fills, state: FeedState) -> None:
    """The Upstox feed's moves, read as the Kite ticker's link events are."""
    if state is FeedState.TOKEN_INVALID:  # the feed's authorize answered 401
        session.expired("Upstox refused the access token (401 at the feed's authorize)")
    elif state is FeedState.RECONNECTING:
        engine.feed_lost("reconnect", "the Upstox feed's connection ended")
    elif state is FeedState.CONNECTED:
        fills.poke()  # fills may have been missed while it was down


def on_order_update(fills: Fills, report: OrderReport) -> None:
    """An order update from the portfolio stream: an order of ours goes to the fills (a
    waiting bracket's entry is applied at once; another of ours pokes the sweep)."""
    ours = only_our_tags(report)
    if ours is not None:
        fills.on_update(ours)


def on_portfolio_state(session: BrokerSession, fills: Fills, state: StreamState) -> None:
    """The portfolio stream's moves: its 401 is the session's expiry, as the feed's; after
    it (re)connects the sweep reads the book, for updates sent while it was down."""
    log.info("upstox_portfolio_stream", state=state.value)
    if state is StreamState.TOKEN_INVALID:
        session.expired("Upstox refused the access token (401 at the portfolio stream's authorize)")
    elif state is StreamState.CONNECTED:
        fills.poke()


# --- linked Upstox accounts in a Kite engine's process (docs/accounts.md) ----------------

# Used in place of a linked account's access token until its first session: Upstox
# refuses it (401), so the account waits in `awaiting_login` and nothing is sent.
AWAITING_LOGIN = "awaiting-upstox-login"


def paper_refusal(settings: Settings) -> str | None:
    """Why paper mode may not trade Upstox accounts with these settings (an Upstox
    address that is not loopback: RELIABILITY test 22), or None."""
    if settings.broker is not Broker.PAPER:
        return None
    urls = {
        "HMT_UPSTOX_API_URL": settings.upstox_api_url,
        "HMT_UPSTOX_ORDER_URL": settings.upstox_orders_url,
        "HMT_UPSTOX_MASTER_URL": settings.upstox_master,
    }
    for name, url in urls.items():
        if not is_loopback(url):
            return (
                f"HMT_BROKER=paper trades Upstox accounts only on the simulator, but {name} "
                f"is {url}: start `hmt sim --broker upstox` and set HMT_UPSTOX_API_URL to it"
            )
    return None


@dataclass(frozen=True, slots=True)
class LinkedParts:
    """One linked Upstox account's own clients: what its session's token reaches."""

    rest: UpstoxRest
    orders: UpstoxOrderPort
    feed: UpstoxFeedPort | None  # the shared feed, when it runs on this account's token


class LinkedUpstox:
    """A Kite engine's linked Upstox accounts: one master and one feed for all of them
    (Upstox allows one feed connection per app and user), and each account's own REST
    client and order port.

    The feed and the master are made with the first account linked, on its token,
    and attached to the engine's `BrokerFeeds` and `BrokerSources`; the engine's
    master is told to fetch again, now with Upstox's list. The feed stays on that
    account's token: when it lapses, Upstox's prices stop until it is renewed
    (moving the feed to another Upstox account's token is not built).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        on_ltp: Callable[[int, int], object],
        feeds: BrokerFeeds,
        sources: BrokerSources,
        read_master: Callable[[], Awaitable[object]],
        expire_master: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._on_ltp = on_ltp
        self._feeds = feeds
        self._sources = sources
        self._read_master = read_master
        self._expire_master = expire_master
        self.master: UpstoxMaster | None = None
        self._instruments: UpstoxInstruments | None = None
        self.feed: UpstoxFeedPort | None = None
        self.feed_account: str | None = None

    def divisor_of(self, token: int) -> int:
        """An Upstox id's divisor (the store's rows written without one)."""
        if self.master is None:
            return FALLBACK_DIVISOR
        return self.master.divisor_of(token)

    async def parts(self, account_id: str, access_token: str | None) -> LinkedParts:
        settings = self._settings
        rest = linked_rest(settings, access_token)
        if self._instruments is None:
            await self._share(account_id, rest, access_token)
        instruments = self._instruments
        assert instruments is not None
        orders = UpstoxOrderPort(
            UpstoxOrders(rest, instruments.key_for), instruments, self._read_master
        )
        return LinkedParts(rest, orders, self.feed if account_id == self.feed_account else None)

    async def _share(self, account_id: str, rest: UpstoxRest, access_token: str | None) -> None:
        settings = self._settings
        instruments = UpstoxInstruments(rest, settings.upstox_master)
        master = UpstoxMaster(instruments)
        reconnect_s = max(settings.reconnect_delay_ms, 1) / 1000

        def feed(on_state: Callable[[FeedState], None]) -> UpstoxFeed:
            return UpstoxFeed(
                access_token or AWAITING_LOGIN,
                key_for=instruments.key_for,
                divisor_for=instruments.divisor_for,
                on_ltp=self._on_ltp,
                api_url=settings.upstox_api_url,
                on_state=on_state,
                reconnect_delay_s=reconnect_s,
                reconnect_max_delay_s=max(60.0, reconnect_s),
            )

        port = UpstoxFeedPort(
            feed, instruments, self._read_master, read_at_start=access_token is not None
        )
        master.on_read.append(port.master_read)
        self._instruments, self.master, self.feed, self.feed_account = (
            instruments,
            master,
            port,
            account_id,
        )
        self._sources.attach(master)
        self._expire_master()  # the day's copy lacks Upstox's list: fetched again
        await self._feeds.attach(port)
        log.info("upstox_accounts_wired", feed_account=account_id)

    async def release(self, account_id: str) -> None:
        """The account the shared feed and master run on is unlinked, and no other Upstox
        account is traded (`AccountMaker.remove` checks): the feed stopped and both
        detached, so the next Upstox account linked shares them afresh on its token."""
        if account_id != self.feed_account:
            return
        feed, master = self.feed, self.master
        self._instruments = self.master = self.feed = self.feed_account = None
        if master is not None:
            self._sources.detach(master)
            self._expire_master()  # the day's copy lists Upstox's instruments no more
        if feed is not None:
            await self._feeds.detach(feed)
        log.info("upstox_accounts_unwired", feed_account=account_id)


def linked_rest(settings: Settings, access_token: str | None) -> UpstoxRest:
    """A linked Upstox account's own REST client (orders and its book), on its token."""
    return UpstoxRest(
        access_token=access_token or AWAITING_LOGIN,
        api_url=settings.upstox_api_url,
        order_url=settings.upstox_orders_url,
        timeout=settings.upstox_timeout_ms / 1000,
    )


class EngineUpstox:
    """An Upstox engine's linked Upstox accounts: each its own REST client and order port
    over the engine's own master (the one `upstox_parts` made), so no second master and
    no second feed: the engine's feed, on the default account's token, serves every
    account's instruments (a tick is the instrument's, whoever trades it). A linked
    account's lapse stops its orders only; the default account's stops the feed."""

    feed_account: str | None = None  # the feed is the default account's, never a linked one's

    def __init__(
        self,
        settings: Settings,
        master: UpstoxMaster,
        read_master: Callable[[], Awaitable[object]],
    ) -> None:
        self._settings = settings
        self.master = master
        self._read_master = read_master

    async def parts(self, account_id: str, access_token: str | None) -> LinkedParts:
        rest = linked_rest(self._settings, access_token)
        instruments = self.master.instruments
        orders = UpstoxOrderPort(
            UpstoxOrders(rest, instruments.key_for), instruments, self._read_master
        )
        return LinkedParts(rest, orders, None)

    async def release(self, account_id: str) -> None:
        """Nothing is shared on a linked account's token: nothing to let go."""


def on_linked_feed_state(session: BrokerSession, state: FeedState) -> None:
    """The shared Upstox feed's moves, for the linked account whose token it runs on."""
    if state is FeedState.TOKEN_INVALID:
        session.expired("Upstox refused the access token (401 at the feed's authorize)")
    elif state is FeedState.RECONNECTING:
        # Upstox's ticks carry no day range here: no instrument is marked blind.
        log.info("upstox_feed_reconnecting")
