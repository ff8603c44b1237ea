"""Hypothesis strategies for Kite ticks and frames: every packet kind, every segment."""

from __future__ import annotations

from hypothesis import strategies as st

from hmt.kite.segments import INDICES_SEGMENT, SEGMENT_DIVISORS
from hmt.kite.ticks import FullTick, IndexTick, LtpTick, QuoteTick, Tick

U32 = 0xFFFF_FFFF
# Every known segment, plus two unknown ones (divisor 100 in every client).
SEGMENTS = [*sorted(SEGMENT_DIVISORS), 0, 255]

# Extremes matter: 0, 2**31 - 1 / 2**31 (where signed and unsigned readings part), 2**32 - 1.
u32 = st.one_of(st.sampled_from([0, 1, 2**31 - 1, 2**31, U32]), st.integers(0, U32))
u16 = st.one_of(st.sampled_from([0, 1, 0xFFFF]), st.integers(0, 0xFFFF))
i32 = st.one_of(st.sampled_from([-(2**31), -1, 0, 2**31 - 1]), st.integers(-(2**31), 2**31 - 1))


@st.composite
def tokens(draw: st.DrawFn, segments: list[int] | None = None) -> int:
    """An instrument token: (exchange_token << 8) | segment, nonzero."""
    segment = draw(st.sampled_from(segments or SEGMENTS))
    exchange_token = draw(st.one_of(st.sampled_from([1, 0xFFFFFF]), st.integers(1, 0xFFFFFF)))
    return exchange_token << 8 | segment


index_tokens = tokens([INDICES_SEGMENT])

ltp_ticks = st.builds(LtpTick, tokens(), u32)
index_ticks = st.builds(
    # Kite sends these for indices; the codec reads them by length, so any segment goes.
    IndexTick,
    st.one_of(index_tokens, tokens()),
    u32,
    u32,
    u32,
    u32,
    u32,
    i32,
    st.one_of(st.none(), u32),
)
quote_ticks = st.builds(QuoteTick, tokens(), *[u32] * 10)
full_ticks = st.builds(
    FullTick, tokens(), *[u32] * 15,
    st.tuples(*[u32, u32, u16] * 10),
)  # fmt: skip
any_tick: st.SearchStrategy[Tick] = st.one_of(ltp_ticks, index_ticks, quote_ticks, full_ticks)
