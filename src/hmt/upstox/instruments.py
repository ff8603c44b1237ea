"""Upstox's instrument master (JSON, gzip) read into core `Instrument`s, and its ids.

Upstox names an instrument by a string key (`NSE_EQ|INE002A01018`); the core
and the store name it by an integer. `instrument_id` derives that integer
from the key alone (a hash), so it is the same every day, on every engine,
without a table to keep: 2^52 plus 48 bits of SHA-256, which stays below
2^53 (exact in JSON and JavaScript) and far above any Kite token (< 2^32),
so ids of the two brokers never meet. A collision inside one master is
refused when the master is read (docs/upstox/INSTRUMENTS.md).

Prices: the master's `tick_size` is in paise (FACTS 4); the instrument's
divisor is the smallest power of ten that makes its tick whole (`prices`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hmt.core.broker import BrokerError, ErrorKind
from hmt.core.errors import FieldError
from hmt.core.instruments import Instrument, Listing
from hmt.core.types import Exchange, InstrumentToken
from hmt.upstox.prices import divisor_for_tick, tick_from_paise
from hmt.upstox.rest import UpstoxRest

MASTER_URL = "https://assets.upstox.com/market-quote/instruments/exchange/complete.json.gz"
ID_BASE = 1 << 52
_ID_BITS = 48

# The exchange hmt calls each Upstox segment (FACTS 4); indices are watch-only.
SEGMENT_EXCHANGES: dict[str, Exchange] = {
    "NSE_EQ": Exchange.NSE,
    "BSE_EQ": Exchange.BSE,
    "NSE_FO": Exchange.NFO,
    "BSE_FO": Exchange.BFO,
    "NCD_FO": Exchange.CDS,
    "BCD_FO": Exchange.BCD,
    "MCX_FO": Exchange.MCX,
    "NSE_COM": Exchange.NCO,
    "NSE_INDEX": Exchange.NSE,
    "BSE_INDEX": Exchange.BSE,
    "MCX_INDEX": Exchange.MCX,
}


class MasterError(ValueError):
    """A master that cannot be used as a whole (not JSON, not a list, an id collision)."""


def instrument_id(key: str) -> InstrumentToken:
    """The integer hmt uses for the instrument Upstox calls `key`."""
    digest = hashlib.sha256(key.encode()).digest()
    return InstrumentToken(ID_BASE + (int.from_bytes(digest[:6], "big") & ((1 << _ID_BITS) - 1)))


def is_upstox_id(token: int) -> bool:
    return ID_BASE <= token < ID_BASE + (1 << _ID_BITS)


def segment_of(key: str) -> str:
    return key.split("|", 1)[0]


@dataclass(slots=True)
class Master:
    """One day's master: its listings, and the key of each instrument id."""

    listings: list[Listing] = field(default_factory=list)
    keys: dict[int, str] = field(default_factory=dict)
    divisors: dict[int, int] = field(default_factory=dict)
    skipped: int = 0  # rows that were not instruments hmt can read

    def key_for(self, token: int) -> str:
        """The Upstox key of an instrument id; `UnknownInstrument` if this master lacks it."""
        try:
            return self.keys[token]
        except KeyError:
            raise UnknownInstrument(token) from None

    def divisor_for(self, token: int) -> int:
        """The instrument's price divisor; `UnknownInstrument` if this master lacks it."""
        try:
            return self.divisors[token]
        except KeyError:
            raise UnknownInstrument(token) from None


class UnknownInstrument(KeyError):
    """An instrument id today's Upstox master does not list."""

    def __init__(self, token: int) -> None:
        self.token = token
        super().__init__(f"instrument {token} is not in today's Upstox master")

    def __str__(self) -> str:
        return str(self.args[0])


class UpstoxInstruments:
    """The engine's `InstrumentSource` for Upstox, keeping the day's master for the ports.

    `key_for` and `divisor_for` answer from the last master fetched, so the order
    port and the feed use the same day's keys as the checks did.
    """

    def __init__(self, rest: UpstoxRest, url: str = MASTER_URL) -> None:
        self._rest = rest
        self._url = url
        self.master = Master()

    async def fetch(self) -> list[Listing]:
        """Every instrument Upstox lists today, or a classified `BrokerError`."""
        data = await self._rest.raw(self._url)
        try:
            master = parse_master(data)
        except MasterError as exc:
            raise BrokerError(ErrorKind.FINAL, f"the Upstox master: {exc}") from None
        self.master = master
        return master.listings

    def key_for(self, token: int) -> str:
        return self.master.key_for(token)

    def divisor_for(self, token: int) -> int:
        return self.master.divisor_for(token)

    @staticmethod
    def unlisted(
        token: InstrumentToken, exchange: Exchange, tradingsymbol: str
    ) -> tuple[Instrument, list[FieldError]]:
        return unlisted(token, exchange, tradingsymbol)


def parse_master(data: bytes) -> Master:
    """Every instrument of a master file (gzip or plain JSON array); bad rows are skipped."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise MasterError(f"the master is not a readable gzip file: {exc}") from None
    try:
        rows = json.loads(data)
    except ValueError:
        raise MasterError("the master is not JSON") from None
    if not isinstance(rows, list):
        raise MasterError("the master is not a JSON array")
    return build_master(rows)


def build_master(rows: Iterable[Any]) -> Master:
    master = Master()
    for row in rows:
        try:
            key, listing = _listing(row)
        except (KeyError, ValueError, TypeError):
            master.skipped += 1
            continue
        token = int(listing.instrument.id)
        known = master.keys.get(token)
        if known is not None and known != key:
            raise MasterError(f"instrument ids collide: {known!r} and {key!r}")
        if known is None:
            master.keys[token] = key
            master.divisors[token] = listing.instrument.price_divisor
            master.listings.append(listing)
    return master


def _listing(row: Mapping[str, Any]) -> tuple[str, Listing]:
    key = row["instrument_key"]
    if not isinstance(key, str) or "|" not in key:
        raise ValueError("instrument_key")
    segment = segment_of(key)
    exchange = SEGMENT_EXCHANGES[segment]
    index = segment.endswith("_INDEX") or row.get("instrument_type") == "INDEX"
    tick_size = row.get("tick_size")
    if index and tick_size is None:
        divisor, tick = 100, 0
    else:
        rupees = tick_from_paise(tick_size)
        divisor = divisor_for_tick(rupees)
        tick = int(rupees * divisor)
    lot = row.get("lot_size", 1 if not index else 0)
    if isinstance(lot, bool) or not isinstance(lot, int | float) or lot < 0 or lot != int(lot):
        raise ValueError("lot_size")
    symbol = row.get("trading_symbol") or row.get("tradingsymbol")
    if not isinstance(symbol, str) or not symbol:
        raise ValueError("trading_symbol")
    instrument = Instrument(
        id=instrument_id(key),
        exchange=exchange,
        tradingsymbol=symbol,
        price_divisor=divisor,
        tick_size=tick,
        lot_size=int(lot) if index else max(int(lot), 1),
        tradable=not index and tick > 0,
    )
    return key, Listing(
        instrument, str(row.get("name") or ""), str(row.get("instrument_type") or "")
    )


def unlisted(
    token: InstrumentToken, exchange: Exchange, tradingsymbol: str
) -> tuple[Instrument, list[FieldError]]:
    """What Upstox's id rules alone say when no master can be had: only that the id is ours.

    Unlike Kite's tokens, a hashed id carries no segment, so the exchange and
    the symbol stay unchecked (tick and lot 0, as `hmt.kite.instruments.unlisted`).
    """
    errors = []
    if not is_upstox_id(token):
        errors.append(
            FieldError("instrument_token", "unknown", f"{token} is not an Upstox instrument id")
        )
    instrument = Instrument(
        id=token,
        exchange=exchange,
        tradingsymbol=tradingsymbol,
        price_divisor=100,
        tick_size=0,
        lot_size=0,
    )
    return instrument, errors
