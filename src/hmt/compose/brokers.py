"""Two brokers in one engine: the feed and the instrument master that serve both.

A Kite engine may trade linked Upstox accounts (docs/accounts.md, "Two brokers
in one process"). Their instrument ids never meet Kite's: Kite's tokens are
below 2^32, the ids `hmt.upstox.instruments.instrument_id` derives from
Upstox's keys are at 2^52 and above. So one book keyed by id holds both
brokers' triggers, a tick evaluates only its own broker's, and what differs
is where an id is subscribed and where it is looked up. `BrokerFeeds` is the
engine's one `Feed` over the two brokers' feeds, `BrokerSources` its one
`InstrumentSource` over the two masters; an id goes to the second broker's
part when `owns` says it is that broker's.

The second broker's parts arrive when its first account is linked, which may
be after start: until then its ids wait (subscriptions) or are looked up on
the first broker's rules (an unknown instrument).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import structlog

from hmt.core.errors import FieldError
from hmt.core.instruments import Instrument, Listing
from hmt.core.types import Exchange, InstrumentToken
from hmt.engine.ports import Feed, FeedStatus, InstrumentSource

log = structlog.get_logger("hmt.compose.brokers")


class BrokerFeeds:
    """The first broker's feed, and the second's once attached, as the engine's `Feed`.

    `connected` and `status` are the first broker's (the default account's feed,
    which /health judges); `second_status` is the other's, for /stats.
    """

    def __init__(self, first: Feed, owns: Callable[[int], bool]) -> None:
        self.first = first
        self.second: Feed | None = None
        self._owns = owns
        self.waiting: set[int] = set()  # the second broker's ids before its feed is here
        self._running = False

    def _split(self, tokens: Iterable[int]) -> tuple[list[int], list[int]]:
        mine: list[int] = []
        theirs: list[int] = []
        for token in tokens:
            (theirs if self._owns(token) else mine).append(token)
        return mine, theirs

    def subscribe(self, tokens: Iterable[int]) -> None:
        mine, theirs = self._split(tokens)
        if mine:
            self.first.subscribe(mine)
        if theirs:
            if self.second is None:
                self.waiting.update(theirs)
            else:
                self.second.subscribe(theirs)

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        mine, theirs = self._split(tokens)
        if mine:
            self.first.unsubscribe(mine)
        if theirs:
            self.waiting.difference_update(theirs)
            if self.second is not None:
                self.second.unsubscribe(theirs)

    async def attach(self, feed: Feed) -> None:
        """The second broker's feed: given the ids that waited, started if the engine runs."""
        if self.second is not None:
            raise ValueError("the second broker's feed is attached already")
        self.second = feed
        if self.waiting:
            feed.subscribe(sorted(self.waiting))
            self.waiting.clear()
        if self._running:
            await feed.start()

    async def detach(self, feed: Feed) -> None:
        """The second broker's feed is no longer used (its last account unlinked): stopped;
        a later `attach` may give another."""
        if self.second is not feed:
            return
        self.second = None
        await feed.stop()

    async def start(self) -> None:
        self._running = True
        await self.first.start()
        if self.second is not None:
            await self.second.start()

    async def stop(self) -> None:
        self._running = False
        if self.second is not None:
            await self.second.stop()
        await self.first.stop()

    @property
    def connected(self) -> bool:
        return self.first.connected

    def status(self) -> FeedStatus:
        return self.first.status()

    def second_status(self) -> FeedStatus | None:
        return None if self.second is None else self.second.status()


class BrokerSources:
    """The first broker's instrument master with the second's once attached: one list
    (ids never collide), and the id rules of the broker an id belongs to."""

    def __init__(self, first: InstrumentSource, owns: Callable[[int], bool]) -> None:
        self.first = first
        self.second: InstrumentSource | None = None
        self._owns = owns

    def attach(self, source: InstrumentSource) -> None:
        self.second = source

    def detach(self, source: InstrumentSource) -> None:
        if self.second is source:
            self.second = None

    async def fetch(self) -> list[Listing]:
        """Both lists, or the `BrokerError` of either: the master keeps its last good copy
        and tries again (`hmt.engine.instruments`), rather than a copy of the day that
        silently lacks one broker."""
        listings = list(await self.first.fetch())
        if self.second is not None:
            listings += await self.second.fetch()
        return listings

    def unlisted(
        self, token: InstrumentToken, exchange: Exchange, tradingsymbol: str
    ) -> tuple[Instrument, list[FieldError]]:
        source = self.second if self.second is not None and self._owns(token) else self.first
        return source.unlisted(token, exchange, tradingsymbol)


def is_loopback(url: str) -> bool:
    """Whether `url`'s host is this machine (paper mode's test 22: a simulator's address)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
