"""Kite's instrument master: the daily `/instruments` CSV dump, read into core `Instrument`s.

Kite generates the dump once a day (FACTS 1.6: fetch it at about 08:30 IST);
its prices (tick size) are rupees, which become wire units with the
segment's divisor. When no dump can be had, `unlisted` says what Kite's token
rules alone can tell: the exchange segment in the token's low byte, and
whether it is an index.
"""

from __future__ import annotations

import asyncio
import csv
import io
from decimal import Decimal, InvalidOperation

from hmt.core.errors import FieldError
from hmt.core.instruments import Instrument, Listing
from hmt.core.types import Exchange, InstrumentToken
from hmt.kite.rest import KiteRest
from hmt.kite.segments import EXCHANGE_SEGMENTS, divisor_for, is_index, segment_of

# The whole dump: every exchange, so one fetch a day serves every check.
DUMP_PATH = "/instruments"
INDICES = "INDICES"  # the `segment` column of an index row


def parse_dump(text: str) -> list[Listing]:
    """Every instrument of a Kite dump; a malformed row or an unknown exchange is skipped.

    Indices are kept (they can be watched) but marked not tradable.
    """
    found = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            found.append(_listing(row))
        except (KeyError, ValueError, InvalidOperation, TypeError):
            continue
    return found


def _listing(row: dict[str, str]) -> Listing:
    token = int(row["instrument_token"])
    if token <= 0:
        raise ValueError("instrument_token")
    divisor = divisor_for(token)
    tick = Decimal(row.get("tick_size") or "0") * divisor
    if tick != tick.to_integral_value() or tick < 0:
        raise ValueError("tick_size")  # finer than the segment's wire unit: not Kite's
    lot = int(row.get("lot_size") or 0)
    index = row.get("segment") == INDICES or is_index(token) or tick == 0
    instrument = Instrument(
        id=InstrumentToken(token),
        exchange=Exchange(row["exchange"]),
        tradingsymbol=row["tradingsymbol"],
        price_divisor=divisor,
        tick_size=int(tick),
        lot_size=max(lot, 1) if not index else lot,
        tradable=not index,
    )
    return Listing(instrument, row.get("name") or "", row.get("instrument_type") or "")


KITE_TOKEN_LIMIT = 1 << 32  # Kite's instrument tokens are unsigned 32-bit (FACTS)


def unlisted(
    token: InstrumentToken, exchange: Exchange, tradingsymbol: str
) -> tuple[Instrument, list[FieldError]]:
    """What Kite's token rules alone say about an instrument the master could not confirm.

    Only for when no master can be fetched: the symbol, tick and lot size stay
    unchecked (tick and lot 0), the exchange is checked against the token's
    segment and an index is refused.
    """
    errors = []
    if token >= KITE_TOKEN_LIMIT:  # the API takes any broker's ids; Kite's are 32-bit
        errors.append(
            FieldError("instrument_token", "unknown", f"{token} is not a Kite instrument token")
        )
    # A token that is not positive is the core's to name ("positive").
    elif token > 0 and segment_of(token) not in EXCHANGE_SEGMENTS[exchange] and not is_index(token):
        errors.append(
            FieldError(
                "exchange",
                "mismatch",
                f"instrument {token} is not on {exchange} (Kite's token segment says otherwise)",
            )
        )
    instrument = Instrument(
        id=token,
        exchange=exchange,
        tradingsymbol=tradingsymbol,
        price_divisor=divisor_for(token),
        tick_size=0,
        lot_size=0,
        tradable=not is_index(token),
    )
    return instrument, errors


class KiteInstruments:
    """The instrument master through Kite's REST client (the engine's `InstrumentSource`)."""

    def __init__(self, rest: KiteRest) -> None:
        self._rest = rest

    async def fetch(self) -> list[Listing]:
        """Today's dump; a classified `BrokerError` when Kite cannot be asked or refuses."""
        text = await self._rest.csv(DUMP_PATH)
        # Kite's full dump is some 100,000 rows: parse it off the event loop that carries ticks.
        return await asyncio.to_thread(parse_dump, text)

    def unlisted(
        self, token: InstrumentToken, exchange: Exchange, tradingsymbol: str
    ) -> tuple[Instrument, list[FieldError]]:
        return unlisted(token, exchange, tradingsymbol)
