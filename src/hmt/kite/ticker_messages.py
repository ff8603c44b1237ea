"""The Kite ticker's JSON text messages, both ways, sans I/O (FACTS.md 1.2-1.3).

Client to server: `{"a": "subscribe"|"unsubscribe", "v": [tokens]}` and
`{"a": "mode", "v": [mode, [tokens]]}`. Server to client:
`{"type": "order"|"error"|"message", "data": ...}`. Market data is always
binary and these are always text: the caller routes by the frame's opcode.

Decoders never raise on what the network sends: a malformed message comes
back as `BadText`, naming the `FrameError` kind and what was wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hmt.kite.ticks import FrameError, Mode

MAX_TOKEN = 0xFFFF_FFFF  # tokens are uint32 on the wire
_MODES = tuple(mode.value for mode in Mode)


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order postback pushed over the socket (`type: order`), as the broker sent it."""

    data: Mapping[str, Any]

    @property
    def order_id(self) -> str | None:
        value = self.data.get("order_id")
        return None if value is None else str(value)

    @property
    def status(self) -> str | None:
        value = self.data.get("status")
        return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class ServerError:
    """An error string from the server (`type: error`)."""

    message: str


@dataclass(frozen=True, slots=True)
class ServerMessage:
    """A broker message or alert (`type: message`)."""

    message: str


@dataclass(frozen=True, slots=True)
class BadText:
    """A text frame that could not be read: its kind and a short reason."""

    kind: FrameError
    reason: str


ServerText = OrderUpdate | ServerError | ServerMessage | BadText


def decode_server_text(text: str | bytes) -> ServerText:
    """Read one text frame from the server; never raises."""
    try:
        message = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        return BadText(FrameError.BAD_TEXT, f"not JSON: {type(exc).__name__}")
    if not isinstance(message, dict):
        return BadText(FrameError.BAD_TEXT, f"a JSON {type(message).__name__}, not an object")
    kind = message.get("type")
    data = message.get("data")
    if kind == "order":
        if not isinstance(data, dict):
            return BadText(FrameError.BAD_TEXT, "order message without an object in 'data'")
        return OrderUpdate(data)
    if kind == "error":
        return ServerError(data if isinstance(data, str) else json.dumps(data))
    if kind == "message":
        return ServerMessage(data if isinstance(data, str) else json.dumps(data))
    return BadText(FrameError.UNKNOWN_TEXT_TYPE, f"unknown message type {str(kind)[:40]!r}")


def encode_server_text(kind: str, data: object) -> str:
    """A server-to-client text message (servers and tests use it)."""
    return json.dumps({"type": kind, "data": data}, separators=(",", ":"))


def checked_tokens(tokens: Iterable[int]) -> list[int]:
    """The tokens as a list, each an int in uint32 range; ValueError naming the first bad one."""
    out = list(tokens)
    for token in out:
        if type(token) is not int or not 0 < token <= MAX_TOKEN:
            raise ValueError(f"instrument token {token!r} is not an integer in 1..{MAX_TOKEN}")
    return out


def _dump(message: dict[str, object]) -> str:
    return json.dumps(message, separators=(",", ":"))


def encode_subscribe(tokens: Iterable[int]) -> str:
    """`{"a":"subscribe","v":[...]}`."""
    return _dump({"a": "subscribe", "v": checked_tokens(tokens)})


def encode_unsubscribe(tokens: Iterable[int]) -> str:
    """`{"a":"unsubscribe","v":[...]}`."""
    return _dump({"a": "unsubscribe", "v": checked_tokens(tokens)})


def encode_mode(mode: Mode, tokens: Iterable[int]) -> str:
    """`{"a":"mode","v":[mode,[...]]}`."""
    return _dump({"a": "mode", "v": [Mode(mode).value, checked_tokens(tokens)]})


@dataclass(frozen=True, slots=True)
class ClientCommand:
    """A client's request, as a server reads it: action, its tokens, and the mode for `mode`."""

    action: str
    tokens: tuple[int, ...]
    mode: Mode | None = None


def decode_client_text(text: str | bytes) -> ClientCommand | BadText:
    """Read a client-to-server message (the simulator's and test server's side); never raises."""
    try:
        message = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        return BadText(FrameError.BAD_TEXT, f"not JSON: {type(exc).__name__}")
    if not isinstance(message, dict):
        return BadText(FrameError.BAD_TEXT, "not a JSON object")
    action, value = message.get("a"), message.get("v")
    mode: Mode | None = None
    if action == "mode":
        if not (isinstance(value, list) and len(value) == 2 and value[0] in _MODES):
            return BadText(FrameError.BAD_TEXT, 'mode needs ["ltp"|"quote"|"full", [tokens]]')
        mode, value = Mode(value[0]), value[1]
    elif not isinstance(action, str) or action not in {"subscribe", "unsubscribe"}:
        return BadText(FrameError.BAD_TEXT, f"unknown action {str(action)[:40]!r}")
    if not isinstance(value, list):
        return BadText(FrameError.BAD_TEXT, f"{action} needs a list of tokens")
    try:
        tokens = checked_tokens(value)
    except ValueError as exc:
        return BadText(FrameError.BAD_TEXT, str(exc))
    return ClientCommand(str(action), tuple(tokens), mode)
