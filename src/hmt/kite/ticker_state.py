"""What the ticker client reports about itself: its state, its counters, its connection events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class TickerState(StrEnum):
    """The client's state, as /health shows it."""

    STOPPED = "stopped"
    CONNECTING = "connecting"  # first handshake(s) in flight
    CONNECTED = "connected"  # every connection the subscriptions need is open
    RECONNECTING = "reconnecting"  # a connection dropped and is waiting out its backoff
    TOKEN_INVALID = "token_invalid"  # noqa: S105 (a state, not a secret). HTTP 403 on the handshake: waiting for a new access token


class LinkEventKind(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RESUBSCRIBED = "resubscribed"  # every token of the connection sent, in its mode
    BACKOFF = "backoff"  # waiting `delay_s` before reconnect attempt `attempt`
    WATCHDOG = "watchdog"  # no frame for longer than the watchdog allows
    TOKEN_INVALID = "token_invalid"  # noqa: S105 (an event name, not a secret)


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """Something that happened to one connection, at `at` (the event loop's clock, seconds)."""

    kind: LinkEventKind
    link: int
    at: float
    attempt: int = 0
    delay_s: float = 0.0
    tokens: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TickerStats:
    """A snapshot of the client's counters (monotonic since construction)."""

    state: TickerState
    connected: bool
    connections: int  # open sockets
    connections_needed: int  # sockets the current subscriptions need
    subscribed_tokens: int
    frames: int  # every frame received, heartbeats and text included
    heartbeats: int
    ticks: int  # packets decoded
    bad_frames: Mapping[str, int]  # by FrameError kind
    handshakes: int  # connection attempts
    reconnects: int  # attempts after a connection or an attempt ended
    watchdog_trips: int
    order_updates: int
    server_errors: int
    handler_errors: int
    last_frame_age_s: float | None  # None before the first frame
    ticks_by_link: Mapping[int, int] = field(default_factory=dict)  # packets by connection index
