"""The JSON text messages: client commands out, server messages in, garbage never raising."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hmt.kite.ticker_messages import (
    BadText,
    ClientCommand,
    OrderUpdate,
    ServerError,
    ServerMessage,
    checked_tokens,
    decode_client_text,
    decode_server_text,
    encode_mode,
    encode_server_text,
    encode_subscribe,
    encode_unsubscribe,
)
from hmt.kite.ticks import FrameError, Mode
from tests.support.services import kite_fixture


def test_client_messages_have_the_documented_shape() -> None:
    """subscribe/unsubscribe/mode encode exactly as FACTS.md 1.2 shows, tokens as numbers."""
    assert json.loads(encode_subscribe([408065, 884737])) == {
        "a": "subscribe",
        "v": [408065, 884737],
    }
    assert json.loads(encode_unsubscribe([884737])) == {"a": "unsubscribe", "v": [884737]}
    assert json.loads(encode_mode(Mode.FULL, [408065])) == {"a": "mode", "v": ["full", [408065]]}


@pytest.mark.parametrize("bad", [0, -1, 2**32, "408065", 1.5, True, None])
def test_tokens_outside_uint32_are_refused_by_name(bad: object) -> None:
    """A token that is not an int in 1..2**32-1 is a ValueError that names it."""
    with pytest.raises(ValueError, match="instrument token"):
        checked_tokens([408065, bad])  # type: ignore[list-item]


@given(st.lists(st.integers(1, 2**32 - 1), max_size=20), st.sampled_from(Mode))
def test_client_messages_round_trip(tokens: list[int], mode: Mode) -> None:
    """What the client encodes, a server decodes back to the same command."""
    assert decode_client_text(encode_subscribe(tokens)) == ClientCommand("subscribe", (*tokens,))
    assert decode_client_text(encode_unsubscribe(tokens)) == ClientCommand(
        "unsubscribe", (*tokens,)
    )
    assert decode_client_text(encode_mode(mode, tokens)) == ClientCommand("mode", (*tokens,), mode)


def test_server_messages_decode_by_type() -> None:
    """order is an OrderUpdate (the postback fixture); error and message are their own types."""
    postback = json.loads(kite_fixture("postback.json").read_text())
    update = decode_server_text(encode_server_text("order", postback))
    assert isinstance(update, OrderUpdate)
    assert (update.order_id, update.status) == ("220303000308932", "COMPLETE")
    assert decode_server_text('{"type":"error","data":"bad"}') == ServerError("bad")
    assert decode_server_text('{"type":"message","data":"hi"}') == ServerMessage("hi")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", FrameError.BAD_TEXT),
        ("{", FrameError.BAD_TEXT),
        ("[1,2]", FrameError.BAD_TEXT),
        ('{"type":"order","data":"x"}', FrameError.BAD_TEXT),
        ('{"type":"tick","data":1}', FrameError.UNKNOWN_TEXT_TYPE),
        ("{}", FrameError.UNKNOWN_TEXT_TYPE),
        (b"\xff\xfe", FrameError.BAD_TEXT),
        ("[" * 100_000, FrameError.BAD_TEXT),
    ],
)
def test_malformed_server_text_is_a_bad_text_result(text: str | bytes, kind: FrameError) -> None:
    """Malformed server text is a BadText of the documented kind, never an exception."""
    result = decode_server_text(text)
    assert isinstance(result, BadText)
    assert result.kind is kind


@pytest.mark.parametrize(
    "text",
    ['{"a":"mode","v":["fast",[1]]}', '{"a":"mode","v":[["x"],[1]]}', '{"a":"subscribe","v":1}',
     '{"a":"subscribe","v":["1"]}', '{"a":"drop"}', "nope",
     # Found by fuzz/ticker_text.py: an unhashable action used to raise TypeError.
     '{"a":[],"v":[1]}', '{"a":{},"v":[1]}'],
)  # fmt: skip
def test_malformed_client_text_is_a_bad_text_result(text: str) -> None:
    """Malformed client commands (as a server reads them) are BadText, never an exception."""
    assert isinstance(decode_client_text(text), BadText)


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_random_text_never_raises(text: str | bytes) -> None:
    """Random text or bytes decode to some result on both sides."""
    decode_server_text(text)
    decode_client_text(text)
