"""The fuzz harnesses' invariants under Hypothesis, on structured inputs bytes rarely reach.

libFuzzer mutates bytes, so it seldom builds a well-formed JSON object with a
documented key, or a CSV row whose token is in the universe. These tests drive
the same `check` functions (fuzz/*.py) with inputs shaped like the real thing
and broken in one place, so both tools enforce one set of invariants.
"""

from __future__ import annotations

import json
import struct

from hypothesis import given
from hypothesis import strategies as st

from fuzz import replay_csv, ticker_frames, ticker_text
from hmt.kite.ticker_protocol import PACKET_SIZES

SIZES = st.sampled_from([*sorted(PACKET_SIZES), 0, 1, 7, 9, 45, 183, 185, 65535])


@st.composite
def framed(draw: st.DrawFn) -> bytes:
    """A count, then packets of plausible or wrong sizes, bodies cut short or padded."""
    packets = draw(st.lists(st.tuples(SIZES, st.binary(max_size=200)), max_size=6))
    count = draw(st.one_of(st.just(len(packets)), st.integers(0, 65535)))
    parts = [struct.pack(">H", count)]
    for size, noise in packets:
        body = (noise * (size // max(len(noise), 1) + 1))[:size] if noise else bytes(size)
        parts.append(struct.pack(">H", size) + draw(st.sampled_from([body, body[: size // 2]])))
    parts.append(draw(st.binary(max_size=4)))
    return b"".join(parts)


@given(framed())
def test_framed_garbage_keeps_the_frame_invariants(frame: bytes) -> None:
    """Both decoders agree, never raise, and every value fits its wire type."""
    ticker_frames.check(frame)


WORDS = st.sampled_from(
    ["order", "error", "message", "subscribe", "unsubscribe", "mode", "ltp", "quote", "full"]
)
JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
    WORDS, st.text(max_size=8),
)  # fmt: skip
KEYS = st.one_of(st.sampled_from(["type", "data", "a", "v"]), st.text(max_size=4))
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(KEYS, inner, max_size=4),
    ),
    max_leaves=12,
)


@given(st.fixed_dictionaries({}, optional={"type": JSON, "data": JSON, "a": JSON, "v": JSON}))
def test_json_shaped_text_keeps_the_message_invariants(message: dict[str, object]) -> None:
    """Objects with the documented keys and any values decode to the documented shapes."""
    ticker_text.check(json.dumps(message).encode())


@given(
    st.fixed_dictionaries({"a": st.sampled_from(["subscribe", "unsubscribe", "mode"]), "v": JSON})
)
def test_commands_with_any_argument_keep_the_message_invariants(
    message: dict[str, object],
) -> None:
    """A documented action with any argument is a command with valid tokens, or BadText."""
    ticker_text.check(json.dumps(message).encode())


CELL = {
    "time": st.one_of(
        st.integers(0, 2**33).map(str), st.sampled_from(
            ["nan", "inf", "-1e400", "2026-01-01T09:15:00", "2026-13-01", "1e309", "", " 5 "]
        )),
    "token": st.one_of(st.sampled_from(["408065", "738561", "256265", "1", "-408065", "x", ""])),
    "ltp": st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True, places=None).map(str),
        st.sampled_from(["1500.05", "1e999999999", "42949672.95", "42949672.96", "-0", "0.001"]),
    ),
    "volume": st.one_of(st.integers(-5, 2**33).map(str), st.sampled_from(["", "many", "1e3"])),
}  # fmt: skip
ROW = st.lists(
    st.tuples(CELL["time"], CELL["token"], CELL["ltp"], st.one_of(st.none(), CELL["volume"])),
    max_size=5,
)


@given(ROW, st.booleans())
def test_csv_shaped_replays_keep_the_replay_invariants(
    rows: list[tuple[str, str, str, str | None]], header: bool
) -> None:
    """Rows with each cell sound or broken parse to sound rows or a ReplayError naming a line."""
    lines = ["timestamp,token,ltp,volume"] if header else []
    lines += [",".join(cell for cell in row if cell is not None) for row in rows]
    replay_csv.check("\n".join(lines).encode())
