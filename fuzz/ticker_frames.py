"""Coverage-guided fuzzing of the ticker's binary decoders (atheris / libFuzzer).

Run: `python -m fuzz.ticker_frames -runs=20000 CORPUS_DIR`. Invariants checked
on every input: neither decoder raises; both agree on tokens and on the error;
every decoded value fits its wire type; no more packets than the frame can hold.
"""

from __future__ import annotations

from dataclasses import fields

from fuzz.harness import instrumented, main

with instrumented(__name__ == "__main__"):
    from hmt.kite.ticker_protocol import decode_frame, decode_ltps, encode_frame, frame_packets
    from hmt.kite.ticks import FrameError, FullTick, IndexTick, LtpTick, QuoteTick

U32 = 0xFFFF_FFFF
I32 = (-(2**31), 2**31 - 1)
MIN_PACKET = 2 + 8  # a length prefix and the smallest (ltp) packet


def check(frame: bytes) -> None:
    """Decode `frame` both ways and check every invariant; AssertionError if one breaks."""
    decoded = decode_frame(frame)
    tokens, ltps, error = decode_ltps(frame)
    assert error is None or isinstance(error, FrameError), error
    assert error == decoded.error, (error, decoded.error)
    assert decoded.heartbeat == (len(frame) == 1)
    assert len(tokens) == len(ltps) == len(decoded.ticks)
    assert [t.instrument_token for t in decoded.ticks] == list(tokens)
    assert [t.last_price for t in decoded.ticks] == list(ltps)
    if len(frame) >= 2:
        assert len(tokens) <= min(int.from_bytes(frame[:2], "big"), len(frame) // MIN_PACKET)
    for tick in decoded.ticks:
        check_tick(tick)


def check_tick(tick: object) -> None:
    """Every field within its wire type, and every derived view computable."""
    for spec in fields(tick):  # type: ignore[arg-type]
        value = getattr(tick, spec.name)
        if spec.name == "change" and isinstance(tick, IndexTick):
            assert I32[0] <= value <= I32[1], (spec.name, value)
        elif isinstance(value, int):
            assert 0 <= value <= U32, (spec.name, value)
        elif isinstance(value, tuple):
            assert all(isinstance(v, int) and 0 <= v <= U32 for v in value), spec.name
    # What the UI and tools read from a tick must not raise either.
    for view in ("mode", "divisor", "tradable", "exchange_at", "last_trade_at", "bids", "asks"):
        getattr(tick, view, None)
    tick.decimal(tick.last_price)  # type: ignore[attr-defined]


def seeds() -> list[bytes]:
    """Sound frames of every packet kind, a heartbeat and a mixed frame, to start from."""
    ltp = LtpTick(408065, 157315)
    quote = QuoteTick(408065, *range(1, 11))
    index = IndexTick(256265, 2500005, 1, 2, 3, 4, -5)
    index_full = IndexTick(256265, 2500005, 1, 2, 3, 4, 5, 1767000000)
    full = FullTick(408065, *range(1, 16), depth=tuple(range(30)))
    return [
        b"\x00",
        encode_frame([ltp]),
        encode_frame([quote, quote]),
        encode_frame([index, index_full]),
        encode_frame([full, ltp, quote, index]),
        frame_packets([b"\x01" * 12, encode_frame([ltp])[4:]]),
    ]


if __name__ == "__main__":
    main(check, seeds())
