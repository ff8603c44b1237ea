"""Kite's token rules: the segment in the low byte and its price divisor."""

from __future__ import annotations

from hmt.kite.segments import divisor_for

INFY = 408065


def test_divisor_follows_the_segment_byte() -> None:
    """Paise for equity, 10^7 for NSE currency, 10^4 for NCO; unknown segments fall back to 100."""
    assert divisor_for(INFY) == 100
    assert divisor_for((1 << 8) | 3) == 10_000_000  # cds
    assert divisor_for((1 << 8) | 6) == 10_000  # bcd
    assert divisor_for((1 << 8) | 12) == 10_000  # nco
    assert divisor_for((1 << 8) | 200) == 100  # unknown segment: the clients' fallback
