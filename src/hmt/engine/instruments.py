"""The broker's instrument master, fetched once a day and kept: the checks and the search read it.

A copy belongs to the day the broker generated it. Kite generates its dump at
about 08:30 IST (FACTS 1.6), so a day here runs from 08:30 IST to 08:30 IST:
a copy fetched at 07:00 is yesterday's and is replaced by the first request
after 08:30.

When the master cannot be fetched (the broker is down, or at 06:00 IST the
session has expired and nobody has logged in yet), what a trader needs is
that a stop-loss can still be placed now (docs/api.md, "Instrument checks"):
- the last good copy, even an older day's, still checks every instrument it
  lists (a listed instrument's symbol, tick and lot rarely change overnight);
- an instrument no copy lists is accepted on the broker's id rules alone
  (`InstrumentSource.unlisted`: Kite checks the exchange against the token's
  segment and refuses indices), with a warning in the response saying what
  was not checked.
A failed fetch is not retried for `retry_after`, so a broker outage costs
each create nothing but the warning, rather than a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import structlog

from hmt.core.broker import BrokerError, ErrorKind
from hmt.core.errors import InvalidTrigger
from hmt.core.instruments import Instrument, Listing
from hmt.core.types import Exchange, InstrumentToken
from hmt.core.validation import unknown_instrument
from hmt.engine.ports import InstrumentSource

log = structlog.get_logger("hmt.instruments")

IST = timezone(timedelta(hours=5, minutes=30))
# When the broker's new dump is out (Kite: about 08:30 IST).
PUBLISHED_AT = timedelta(hours=8, minutes=30)
RETRY_AFTER = timedelta(seconds=30)


def dump_day(now: datetime) -> date:
    """The day of the newest dump the broker has published at `now`."""
    return (now.astimezone(IST) - PUBLISHED_AT).date()


@dataclass(frozen=True, slots=True)
class Copy:
    """One fetched master: its day, its listings, and its instruments by id."""

    day: date
    listings: Sequence[Listing]
    by_id: Mapping[InstrumentToken, Instrument]

    @classmethod
    def of(cls, day: date, listings: Sequence[Listing]) -> Copy:
        return cls(day, listings, {item.instrument.id: item.instrument for item in listings})


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a trigger's instrument is checked against, and in what units its prices are."""

    instrument: Instrument
    listed: bool  # from the master (its tick and lot size are known), not the id rules alone
    warning: str | None = None  # set when the master could not be fetched


class InstrumentUnavailable(Exception):
    """No copy of the master at all (for the search, which has nothing to show)."""


class InstrumentMaster:
    """The day's copy of the broker's instrument master, fetched on first use (the supervisor
    asks for it at start-up, in the background)."""

    def __init__(
        self,
        source: InstrumentSource,
        *,
        clock: Callable[[], datetime],
        retry_after: timedelta = RETRY_AFTER,
        kept: Callable[[], None] = lambda: None,
    ) -> None:
        """`kept` runs after each new copy replaces the last (the composition exempts the
        copy's objects from the cyclic collector there: `hmt.engine.supervisor`)."""
        self.source = source
        self.clock = clock
        self.retry_after = retry_after
        self._kept = kept
        self._copy: Copy | None = None
        self._failed_at: datetime | None = None
        self._failure = ""
        self._stale = False  # today's copy no longer lists every source's instruments
        self._lock = asyncio.Lock()

    def expire(self) -> None:
        """The source lists more than the copy in hand (a second broker's master was
        attached): the next `copy` fetches again, and the copy in hand stays the fallback."""
        self._stale, self._failed_at = True, None

    def fresh(self) -> bool:
        """Today's copy is in hand: `copy`, `resolve` and `listings` await nothing (an API
        on another thread may then call them from its own loop)."""
        return (
            self._copy is not None and not self._stale and self._copy.day == dump_day(self.clock())
        )

    async def copy(self) -> tuple[Copy | None, str]:
        """Today's copy if it can be had, else the last good one (or None), and why not."""
        today = dump_day(self.clock())
        if self._copy is not None and self._copy.day == today and not self._stale:
            return self._copy, ""
        async with self._lock:  # one fetch for every request that waits on it
            now = self.clock()
            if self._copy is not None and self._copy.day == today and not self._stale:
                return self._copy, ""
            if self._failed_at is not None and now - self._failed_at < self.retry_after:
                return self._copy, self._failure
            try:
                listings = await self.source.fetch()
                if not listings:
                    raise BrokerError(ErrorKind.FINAL, "the broker's instrument list is empty")
            except BrokerError as error:
                self._failed_at, self._failure = now, str(error)
                log.warning("instrument_master_unavailable", reason=self._failure)
                return self._copy, self._failure
            self._copy, self._failed_at, self._stale = Copy.of(today, listings), None, False
            self._kept()  # a replaced copy is still freed by reference counting
            log.info("instrument_master_fetched", day=today.isoformat(), instruments=len(listings))
            return self._copy, ""

    async def listings(self) -> Sequence[Listing]:
        """Every listed instrument, for the search; `InstrumentUnavailable` with no copy."""
        copy, why = await self.copy()
        if copy is None:
            raise InstrumentUnavailable(f"the broker's instrument list is unavailable: {why}")
        return copy.listings

    async def resolve(
        self, token: InstrumentToken, exchange: Exchange, tradingsymbol: str
    ) -> Resolution:
        """The instrument a trigger names, or `InvalidTrigger` when the master says it is none.

        The core's validation then checks the trigger against it (symbol,
        exchange, tradable, tick and lot size).
        """
        copy, why = await self.copy()
        found = None if copy is None else copy.by_id.get(token)
        if copy is not None and found is not None:
            warning = None
            if why:
                warning = (
                    f"checked against the broker's instrument list of {copy.day}: "
                    f"today's could not be fetched ({why})"
                )
            return Resolution(found, listed=True, warning=warning)
        if copy is not None and not why:
            raise InvalidTrigger([unknown_instrument(token)])
        # No usable master: what the broker's id rules alone can tell.
        instrument, errors = self.source.unlisted(token, exchange, tradingsymbol)
        if errors:
            raise InvalidTrigger(errors)
        return Resolution(instrument, listed=False, warning=_unchecked(why))


def _unchecked(why: str) -> str:
    return (
        f"the broker's instrument list is unavailable ({why}): the symbol, tick size and lot "
        "size were not checked; make sure the symbol is the instrument_token's"
    )
