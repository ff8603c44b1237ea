"""Kite's instrument-token rules: the exchange segment in a token's low byte, and its price unit.

Kite sends every price as an integer that the client divides by a per-segment
divisor, chosen by `instrument_token & 0xFF` (../shared/kite/FACTS.md 1.6).
These are Kite's rules alone: the core and the store never decode a token;
they get the divisor from the `Instrument` this adapter builds.
"""

from __future__ import annotations

from hmt.core.types import Exchange

SEGMENT_DIVISORS: dict[int, int] = {
    1: 100,  # nse
    2: 100,  # nfo
    3: 10_000_000,  # cds, NSE currency
    4: 100,  # bse
    5: 100,  # bfo
    6: 10_000,  # bcd, BSE currency
    7: 100,  # mcx
    8: 100,  # mcxsx
    9: 100,  # indices
    12: 10_000,  # nco, NSE commodity (kiteconnect 5.2.2)
}
DEFAULT_DIVISOR = 100  # every official client falls back to it for unknown segments
INDICES_SEGMENT = 9

# Which segment byte each exchange's instrument tokens carry.
EXCHANGE_SEGMENTS: dict[Exchange, frozenset[int]] = {
    Exchange.NSE: frozenset({1}),
    Exchange.NFO: frozenset({2}),
    Exchange.CDS: frozenset({3}),
    Exchange.BSE: frozenset({4}),
    Exchange.BFO: frozenset({5}),
    Exchange.BCD: frozenset({6}),
    Exchange.MCX: frozenset({7, 8}),
    Exchange.NCO: frozenset({12}),
}


def segment_of(instrument_token: int) -> int:
    """The exchange segment encoded in the low byte of an instrument token."""
    return instrument_token & 0xFF


def divisor_for(instrument_token: int) -> int:
    """The divisor that turns this instrument's wire prices into rupees."""
    return SEGMENT_DIVISORS.get(instrument_token & 0xFF, DEFAULT_DIVISOR)


def is_index(instrument_token: int) -> bool:
    """Indices (segment 9) tick like instruments but cannot be ordered."""
    return segment_of(instrument_token) == INDICES_SEGMENT
