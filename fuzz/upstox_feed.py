"""Coverage-guided fuzzing of the Upstox v3 feed decoder (atheris / libFuzzer).

Run: `python -m fuzz.upstox_feed -runs=20000 CORPUS_DIR`. Invariants checked on
every input: `decode_frame` raises nothing but `FeedError`; every price it
returns has a string key and a non-zero float; turning it into units raises
nothing but `FeedError`; the simulator's frames decode to what they carry.
"""

from __future__ import annotations

from fuzz.harness import instrumented, main

with instrumented(__name__ == "__main__"):
    from hmt.sim.upstox import wire
    from hmt.upstox.feed_codec import FeedError, decode_frame
    from hmt.upstox.prices import to_units


def check(frame: bytes) -> None:
    """Decode `frame` and check every invariant; AssertionError if one breaks."""
    try:
        decoded = decode_frame(frame)
    except FeedError:
        return
    assert -(2**31) <= decoded.type < 2**31, decoded.type
    for key, ltp in decoded.prices:
        assert isinstance(key, str), key
        assert key, "a price without a key"
        assert isinstance(ltp, float), ltp
        assert ltp != 0.0
        try:
            units = to_units(ltp, 100)
        except FeedError:
            continue
        assert isinstance(units, int)


def seeds() -> list[bytes]:
    """Frames of every mode, a market_info frame, and an empty one, to start from."""
    quotes = [
        (wire.Quote("NSE_EQ|INE002A01018", 2500.05, ltt=1, ltq=2, cp=2499.0), "ltpc"),
        (wire.Quote("NSE_FO|43919", 24200.1), "full"),
        (wire.Quote("NSE_INDEX|Nifty 50", 24150.2, index=True), "full"),
        (wire.Quote("NSE_FO|50001", 12.5), "option_greeks"),
    ]
    return [
        b"",
        wire.feed_response(wire.TYPE_LIVE, 1_764_547_200_000, quotes),
        wire.feed_response(wire.TYPE_INITIAL, 0, quotes[:1]),
        wire.market_info(1, {"NSE_EQ": "NORMAL_OPEN", "NSE_FO": "CLOSING_END"}),
    ]


if __name__ == "__main__":
    main(check, seeds())
