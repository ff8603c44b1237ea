"""Two brokers in one engine (docs/accounts.md): the feed and the master that serve both,
each id routed to the broker that names it, the second broker's parts arriving later."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from hmt.compose.brokers import BrokerFeeds, BrokerSources
from hmt.core.broker import BrokerError, ErrorKind
from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.instruments import Instrument, Listing
from hmt.core.types import Exchange, InstrumentToken
from hmt.engine.instruments import InstrumentMaster
from hmt.engine.ports import FeedStatus
from hmt.upstox.instruments import instrument_id, is_upstox_id

INFY = InstrumentToken(408065)
RELIANCE = instrument_id("NSE_EQ|INE002A01018")
MORNING = datetime(2026, 11, 30, 4, 30, tzinfo=UTC)  # 10:00 IST: the day's dump is out


class Feed:
    """A broker's feed that records what it was asked."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.subscribed: set[int] = set()
        self.started = 0
        self.stopped = 0

    def subscribe(self, tokens: Iterable[int]) -> None:
        self.subscribed.update(tokens)

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        self.subscribed.difference_update(tokens)

    async def start(self) -> None:
        self.started += 1

    async def stop(self) -> None:
        self.stopped += 1

    @property
    def connected(self) -> bool:
        return self.name == "kite"

    def status(self) -> FeedStatus:
        return FeedStatus(state=self.name, connected=self.connected)


class Source:
    def __init__(self, *instruments: Instrument) -> None:
        self.listings = [Listing(i, i.tradingsymbol, "EQ") for i in instruments]
        self.fetches = 0
        self.down: BrokerError | None = None

    async def fetch(self) -> list[Listing]:
        self.fetches += 1
        if self.down is not None:
            raise self.down
        return list(self.listings)

    def unlisted(
        self, token: InstrumentToken, exchange: Exchange, tradingsymbol: str
    ) -> tuple[Instrument, list[FieldError]]:
        return Instrument(token, exchange, f"{tradingsymbol}@{self}", 100, 5, 1), []


def _instrument(token: int, symbol: str) -> Instrument:
    return Instrument(InstrumentToken(token), Exchange.NSE, symbol, 100, 5, 1)


def test_the_id_spaces_never_meet() -> None:
    """The premise of one book for both: a Kite token (below 2^32) is never an Upstox id."""
    assert not is_upstox_id((1 << 32) - 1)
    assert is_upstox_id(RELIANCE)


async def test_each_id_is_subscribed_on_its_brokers_feed_and_waits_for_it() -> None:
    kite = Feed("kite")
    feeds = BrokerFeeds(kite, is_upstox_id)
    await feeds.start()
    feeds.subscribe([INFY, RELIANCE])
    assert kite.subscribed == {INFY}
    assert feeds.waiting == {RELIANCE}  # no Upstox feed yet: never sent to Kite's
    upstox = Feed("upstox")
    await feeds.attach(upstox)
    assert (upstox.subscribed, upstox.started, feeds.waiting) == ({RELIANCE}, 1, set())
    feeds.unsubscribe([RELIANCE, INFY])
    assert (kite.subscribed, upstox.subscribed) == (set(), set())
    assert (feeds.connected, feeds.status().state) == (True, "kite")  # the default's
    second = feeds.second_status()
    assert second is not None
    assert second.state == "upstox"
    await feeds.stop()
    assert (kite.stopped, upstox.stopped) == (1, 1)
    with pytest.raises(ValueError, match="attached already"):
        await feeds.attach(Feed("upstox"))


async def test_a_feed_attached_before_start_starts_with_the_engine() -> None:
    feeds = BrokerFeeds(Feed("kite"), is_upstox_id)
    upstox = Feed("upstox")
    feeds.unsubscribe([RELIANCE])  # nothing waiting: nothing to do
    await feeds.attach(upstox)
    assert upstox.started == 0
    await feeds.start()
    assert upstox.started == 1


async def test_the_master_lists_both_brokers_once_the_second_is_attached() -> None:
    kite = Source(_instrument(INFY, "INFY"))
    sources = BrokerSources(kite, is_upstox_id)
    master = InstrumentMaster(sources, clock=lambda: MORNING, retry_after=timedelta(seconds=30))
    assert (await master.resolve(INFY, Exchange.NSE, "INFY")).listed
    with pytest.raises(InvalidTrigger):
        await master.resolve(RELIANCE, Exchange.NSE, "RELIANCE")
    upstox = Source(_instrument(RELIANCE, "RELIANCE"))
    sources.attach(upstox)
    master.expire()  # as `LinkedUpstox` does: the day's copy lacks Upstox's list
    assert not master.fresh()
    found = await master.resolve(RELIANCE, Exchange.NSE, "RELIANCE")
    assert (found.instrument.tradingsymbol, found.listed) == ("RELIANCE", True)
    assert (kite.fetches, upstox.fetches) == (2, 1)
    assert master.fresh()
    assert len(await master.listings()) == 2


async def test_a_failing_second_master_keeps_the_last_copy_and_its_id_rules() -> None:
    """Upstox's list unavailable: the copy in hand still checks Kite's instruments (with a
    warning), and an Upstox id is judged on Upstox's id rules, not Kite's."""
    kite = Source(_instrument(INFY, "INFY"))
    sources = BrokerSources(kite, is_upstox_id)
    master = InstrumentMaster(sources, clock=lambda: MORNING, retry_after=timedelta(seconds=30))
    await master.copy()
    upstox = Source()
    upstox.down = BrokerError(ErrorKind.RETRY, "assets host down")
    sources.attach(upstox)
    master.expire()
    found = await master.resolve(INFY, Exchange.NSE, "INFY")
    assert found.listed
    assert found.warning is not None
    assert "assets host down" in found.warning
    unlisted = await master.resolve(RELIANCE, Exchange.NSE, "RELIANCE")
    assert unlisted.instrument.tradingsymbol == f"RELIANCE@{upstox}"
    assert not unlisted.listed
