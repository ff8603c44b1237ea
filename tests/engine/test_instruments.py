"""The instrument master: one fetch per broker day, the last good copy through an outage."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from hmt.core.broker import BrokerError, ErrorKind
from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.instruments import Instrument, Listing
from hmt.core.types import Exchange, InstrumentToken
from hmt.engine.instruments import InstrumentMaster, InstrumentUnavailable, dump_day

INFY = Instrument(
    id=InstrumentToken(408065),
    exchange=Exchange.NSE,
    tradingsymbol="INFY",
    price_divisor=100,
    tick_size=5,
    lot_size=1,
)
# 10:00 IST on a Monday: that day's dump (08:30 IST) is out.
MORNING = datetime(2026, 11, 30, 4, 30, tzinfo=UTC)


class Source:
    """A broker's master that counts its fetches and can be made to fail."""

    def __init__(self) -> None:
        self.fetches = 0
        self.down: BrokerError | None = None

    async def fetch(self) -> list[Listing]:
        self.fetches += 1
        await asyncio.sleep(0)  # let concurrent callers pile up on the one fetch
        if self.down is not None:
            raise self.down
        return [Listing(INFY, "INFOSYS", "EQ")]

    def unlisted(
        self, token: InstrumentToken, exchange: Exchange, tradingsymbol: str
    ) -> tuple[Instrument, list[FieldError]]:
        errors = [] if exchange is Exchange.NSE else [FieldError("exchange", "mismatch", "no")]
        return Instrument(token, exchange, tradingsymbol, 100, 0, 0), errors


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def master(clock: Clock) -> tuple[InstrumentMaster, Source]:
    source = Source()
    return InstrumentMaster(source, clock=clock, retry_after=timedelta(seconds=30)), source


def test_a_broker_day_starts_when_the_dump_is_published_at_0830_ist() -> None:
    """08:29 IST still belongs to yesterday's dump, 08:30 IST to today's."""
    ist_0829 = datetime(2026, 11, 30, 2, 59, tzinfo=UTC)
    assert dump_day(ist_0829).isoformat() == "2026-11-29"
    assert dump_day(ist_0829 + timedelta(minutes=1)).isoformat() == "2026-11-30"


async def test_one_fetch_per_day_shared_by_concurrent_callers() -> None:
    """Ten concurrent look-ups cost one fetch; the next day's first look-up fetches again."""
    clock = Clock(MORNING)
    instruments, source = master(clock)
    found = await asyncio.gather(
        *(instruments.resolve(INFY.id, Exchange.NSE, "INFY") for _ in range(10))
    )
    assert {f.instrument for f in found} == {INFY}
    assert all(f.listed and f.warning is None for f in found)
    clock.now += timedelta(hours=12)
    await instruments.resolve(INFY.id, Exchange.NSE, "INFY")
    assert source.fetches == 1
    clock.now += timedelta(hours=12)  # 10:00 IST the next day
    await instruments.resolve(INFY.id, Exchange.NSE, "INFY")
    assert source.fetches == 2


async def test_an_unknown_id_is_refused_when_the_master_is_fresh() -> None:
    """An id today's master does not list is a 422-worthy error naming instrument_token."""
    instruments, _ = master(Clock(MORNING))
    with pytest.raises(InvalidTrigger) as info:
        await instruments.resolve(InstrumentToken(999_999), Exchange.NSE, "NOSUCH")
    assert [(e.field, e.rule) for e in info.value.errors] == [("instrument_token", "unknown")]


async def test_an_outage_keeps_the_last_good_copy_with_a_warning() -> None:
    """Yesterday's copy still checks a listed instrument when today's fetch fails, and says so."""
    clock = Clock(MORNING)
    instruments, source = master(clock)
    await instruments.resolve(INFY.id, Exchange.NSE, "INFY")
    clock.now += timedelta(days=1)
    source.down = BrokerError(ErrorKind.RETRY, "could not connect")
    found = await instruments.resolve(INFY.id, Exchange.NSE, "INFY")
    assert (found.instrument, found.listed) == (INFY, True)
    assert found.warning is not None
    assert "instrument list of 2026-11-30" in found.warning
    assert "could not connect" in found.warning


async def test_an_id_the_old_copy_lacks_is_accepted_on_the_id_rules_during_an_outage() -> None:
    """A contract listed today is not in yesterday's copy: unchecked with a warning, not unknown."""
    clock = Clock(MORNING)
    instruments, source = master(clock)
    await instruments.resolve(INFY.id, Exchange.NSE, "INFY")
    clock.now += timedelta(days=1)
    source.down = BrokerError(ErrorKind.RETRY, "could not connect")
    found = await instruments.resolve(InstrumentToken(12073986), Exchange.NSE, "NEWLISTING")
    assert found.listed is False
    assert found.warning is not None
    assert "not checked" in found.warning


async def test_no_copy_at_all_accepts_on_the_brokers_id_rules_with_a_warning() -> None:
    """At 06:00 IST with no session and no copy, a stop-loss is still accepted, marked unchecked;
    the broker's id rules still refuse what they can; the search has nothing to show."""
    clock = Clock(datetime(2026, 11, 30, 0, 30, tzinfo=UTC))  # 06:00 IST
    instruments, source = master(clock)
    source.down = BrokerError(ErrorKind.AUTH, "Incorrect `api_key` or `access_token`.")
    found = await instruments.resolve(INFY.id, Exchange.NSE, "INFY")
    assert (found.listed, found.instrument.tick_size) == (False, 0)
    assert found.warning is not None
    assert "not checked" in found.warning
    with pytest.raises(InvalidTrigger):
        await instruments.resolve(INFY.id, Exchange.BSE, "INFY")
    with pytest.raises(InstrumentUnavailable):
        await instruments.listings()


async def test_a_failed_fetch_is_not_retried_until_retry_after() -> None:
    """During an outage each request costs no new fetch for 30 s; then the master is asked again."""
    clock = Clock(MORNING)
    instruments, source = master(clock)
    source.down = BrokerError(ErrorKind.RETRY, "could not connect")
    for _ in range(5):
        await instruments.resolve(INFY.id, Exchange.NSE, "INFY")
    assert source.fetches == 1
    source.down = None
    clock.now += timedelta(seconds=31)
    found = await instruments.resolve(INFY.id, Exchange.NSE, "INFY")
    assert (source.fetches, found.listed, found.warning) == (2, True, None)


async def test_an_empty_dump_counts_as_unavailable() -> None:
    """A master with no instruments would refuse every id: it is treated as a failed fetch."""
    instruments, source = master(Clock(MORNING))

    async def empty() -> list[Listing]:
        return []

    source.fetch = empty  # type: ignore[method-assign]
    found = await instruments.resolve(INFY.id, Exchange.NSE, "INFY")
    assert found.listed is False
    assert found.warning is not None
    assert "empty" in found.warning


async def test_each_kept_copy_is_handed_on_once_and_a_failed_fetch_is_not() -> None:
    """`kept` runs after a fetch is kept (the composition freezes the copy there), once per
    copy: not for a reuse of the day's copy, not for a failed fetch."""
    clock, kept = Clock(MORNING), []
    source = Source()
    instruments = InstrumentMaster(source, clock=clock, kept=lambda: kept.append(instruments._copy))
    await instruments.resolve(INFY.id, Exchange.NSE, "INFY")
    await instruments.resolve(INFY.id, Exchange.NSE, "INFY")
    assert len(kept) == 1
    assert kept[0] is not None
    assert kept[0].by_id[INFY.id] == INFY  # called with the new copy in place
    clock.now += timedelta(days=1)
    source.down = BrokerError(ErrorKind.RETRY, "could not connect")
    await instruments.resolve(INFY.id, Exchange.NSE, "INFY")
    assert len(kept) == 1
    source.down = None
    clock.now += timedelta(seconds=31)
    await instruments.resolve(INFY.id, Exchange.NSE, "INFY")
    assert len(kept) == 2
    assert kept[1] is not kept[0]
