"""Kite's token rules: the segment in the low byte, its price divisor, and what can be ordered."""

from __future__ import annotations

from hmt.core.types import Exchange
from hmt.kite.segments import divisor_for, token_errors

INFY, NIFTY, USDINR = 408065, 256265, 412675


def test_divisor_follows_the_segment_byte() -> None:
    """Paise for equity, 10^7 for NSE currency, 10^4 for NCO; unknown segments fall back to 100."""
    assert divisor_for(INFY) == 100
    assert divisor_for((1 << 8) | 3) == 10_000_000  # cds
    assert divisor_for((1 << 8) | 6) == 10_000  # bcd
    assert divisor_for((1 << 8) | 12) == 10_000  # nco
    assert divisor_for((1 << 8) | 200) == 100  # unknown segment: the clients' fallback


def test_token_errors_name_field_and_rule() -> None:
    """An index is not tradable and a token must belong to its exchange; a good pair passes."""
    assert token_errors(INFY, Exchange.NSE) == []
    assert token_errors(USDINR, Exchange.CDS) == []
    [index] = token_errors(NIFTY, Exchange.NSE)
    assert (index.field, index.rule) == ("instrument_token", "tradable")
    [wrong] = token_errors(INFY, Exchange.BSE)
    assert (wrong.field, wrong.rule) == ("instrument_token", "exchange")
    assert "does not belong to BSE" in wrong.message
    assert token_errors(0, Exchange.NSE) == []  # the core's "positive" rule names it
