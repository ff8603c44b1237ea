"""Which connection carries which instrument, in which mode, and what to send to get there.

Kite allows 3000 instruments per WebSocket and 3 WebSockets per API key
(FACTS.md 1.8). The plan fills connection 0 first and opens the next only when
the previous ones are full, so a small watchlist uses one socket. A token
stays on its connection until it is unsubscribed: moving it would need an
unsubscribe on one socket and a subscribe on another for no gain.

The plan is pure bookkeeping. `changes` turns "what this socket was told" and
"what it should carry" into the messages that close the gap, so a fresh socket
(told nothing) gets every token resubscribed in its mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hmt.kite.ticker_messages import (
    checked_tokens,
    encode_mode,
    encode_subscribe,
    encode_unsubscribe,
)
from hmt.kite.ticks import Mode

MAX_TOKENS_PER_CONNECTION = 3000
MAX_CONNECTIONS = 3
DEFAULT_BATCH = 1000  # tokens per subscribe/mode message: about 8 KB of JSON


class SubscriptionLimitError(ValueError):
    """More instruments than the connections allowed per API key can carry."""


class SubscriptionPlan:
    """The desired subscriptions, spread over at most `max_connections` connections."""

    __slots__ = ("_owner", "connections", "max_connections", "per_connection")

    def __init__(
        self,
        per_connection: int = MAX_TOKENS_PER_CONNECTION,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        if per_connection < 1 or max_connections < 1:
            raise ValueError("per_connection and max_connections must be at least 1")
        self.per_connection = per_connection
        self.max_connections = max_connections
        # connections[i]: token -> mode that connection i should carry.
        self.connections: list[dict[int, Mode]] = [{}]
        self._owner: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._owner)

    def __contains__(self, token: object) -> bool:
        return token in self._owner

    def modes(self) -> dict[int, Mode]:
        """Every subscribed token with its mode."""
        return {token: mode for conn in self.connections for token, mode in conn.items()}

    def connection_of(self, token: int) -> int | None:
        return self._owner.get(token)

    def subscribe(self, tokens: Iterable[int], mode: Mode) -> set[int]:
        """Carry `tokens` in `mode` (new ones or a mode change); the connections touched.

        All or nothing: if the new tokens do not fit, SubscriptionLimitError and
        no change.
        """
        mode = Mode(mode)
        wanted = list(dict.fromkeys(checked_tokens(tokens)))
        new = [token for token in wanted if token not in self._owner]
        capacity = self.per_connection * self.max_connections
        if len(self._owner) + len(new) > capacity:
            raise SubscriptionLimitError(
                f"{len(self._owner) + len(new)} instruments requested, but one API key allows "
                f"{self.max_connections} connections of {self.per_connection} instruments "
                f"({capacity} in all); {len(self._owner)} are subscribed now"
            )
        touched: set[int] = set()
        for token in wanted:
            index = self._owner.get(token)
            if index is None:
                index = self._place(token)
            if self.connections[index].get(token) is not mode:
                self.connections[index][token] = mode
                touched.add(index)
        return touched

    def unsubscribe(self, tokens: Iterable[int]) -> set[int]:
        """Stop carrying `tokens` (unknown ones are ignored); the connections touched."""
        touched: set[int] = set()
        for token in checked_tokens(tokens):
            index = self._owner.pop(token, None)
            if index is not None:
                del self.connections[index][token]
                touched.add(index)
        return touched

    def _place(self, token: int) -> int:
        index = next(
            (i for i, conn in enumerate(self.connections) if len(conn) < self.per_connection),
            len(self.connections),
        )
        if index == len(self.connections):
            self.connections.append({})
        self._owner[token] = index
        return index


def _batches(tokens: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(tokens), size):
        yield tokens[start : start + size]


def changes(
    told: Mapping[int, Mode], wanted: Mapping[int, Mode], batch: int = DEFAULT_BATCH
) -> list[str]:
    """The messages that take a socket from carrying `told` to carrying `wanted`.

    Unsubscribes first, then subscribes, then one `mode` message per mode for
    every token that is new or changed: the mode after a bare subscribe is not
    documented (FACTS.md 1.2), so it is always sent.
    """
    gone = [token for token in told if token not in wanted]
    added = [token for token in wanted if token not in told]
    by_mode: dict[Mode, list[int]] = {}
    for token, mode in wanted.items():
        if told.get(token) is not mode:
            by_mode.setdefault(mode, []).append(token)
    messages = [encode_unsubscribe(part) for part in _batches(gone, batch)]
    messages += [encode_subscribe(part) for part in _batches(added, batch)]
    for mode in Mode:
        messages += [encode_mode(mode, part) for part in _batches(by_mode.get(mode, []), batch)]
    return messages
