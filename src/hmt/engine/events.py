"""What the engine tells live viewers: prices (throttled) and trigger changes, in process.

The tick path pays one truth test when nobody listens (`EventHub.listening`).
Prices are published at most once per `price_interval` per instrument; a
price that arrives inside the interval is held and sent when it ends, so a
viewer always sees the last price. A slow subscriber loses its oldest events,
never slows the engine.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from hmt.waits import woken

PRICE_INTERVAL_S = 0.25  # four prices a second per instrument at most
QUEUE_LIMIT = 1_000


@dataclass(frozen=True, slots=True)
class PriceEvent:
    instrument_token: int
    # Wire units. Viewers format it with the divisor of their own triggers on this
    # instrument (api/stream.py), so the tick path carries no divisor.
    ltp: int


@dataclass(frozen=True, slots=True)
class TriggerChanged:
    """Something happened to one trigger; readers fetch its row for the new state."""

    trigger_id: str
    user_id: str


Event = PriceEvent | TriggerChanged


class Subscription:
    """One viewer's queue of events; iterate with `next()`, end with `close()`."""

    def __init__(
        self,
        hub: EventHub,
        *,
        reader: asyncio.AbstractEventLoop | None = None,
        leave: Callable[[Subscription], None] | None = None,
    ) -> None:
        """`reader`: the loop that calls `next()` when it is not the hub's (the API on its
        own thread): `put` then wakes it thread-safely, and `leave` detaches on `close`."""
        self._hub = hub
        self._events: deque[Event] = deque(maxlen=QUEUE_LIMIT)
        self._ready = asyncio.Event()
        self._reader = reader
        self._leave = leave or hub.unsubscribe
        self.dropped = 0

    def put(self, event: Event) -> None:
        if len(self._events) == QUEUE_LIMIT:
            self.dropped += 1
        self._events.append(event)
        if self._reader is None:
            self._ready.set()
        else:
            self._reader.call_soon_threadsafe(self._ready.set)

    async def next(self, within: float) -> Event | None:
        """The next event, or None if none came within `within` seconds."""
        if not self._events:
            self._ready.clear()
            if not await woken(self._ready, within):
                return None
        # Across threads a wake-up may outlive the event it was for: then there is none.
        return self._events.popleft() if self._events else None

    def close(self) -> None:
        self._leave(self)


class EventHub:
    """In-process publish/subscribe between the engine and the live stream."""

    def __init__(self, price_interval: float = PRICE_INTERVAL_S) -> None:
        self._subscriptions: set[Subscription] = set()
        self._interval = price_interval
        self._last_sent: dict[int, float] = {}
        self._held: dict[int, int] = {}  # instrument -> latest price waiting for its slot
        self.listening = False

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        self.attach(subscription)
        return subscription

    def attach(self, subscription: Subscription) -> None:
        """Start delivering to `subscription` (on the hub's loop)."""
        self._subscriptions.add(subscription)
        self.listening = True

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        self.listening = bool(self._subscriptions)
        if not self.listening:
            self._last_sent.clear()
            self._held.clear()

    def price(self, instrument_token: int, ltp: int) -> None:
        """A new last price; sent now if the instrument's slot is free, else when it is."""
        if instrument_token in self._held:
            self._held[instrument_token] = ltp  # its flush is already scheduled
            return
        now = time.monotonic()
        wait = self._last_sent.get(instrument_token, -self._interval) + self._interval - now
        if wait <= 0:
            self._send_price(instrument_token, ltp, now)
            return
        self._held[instrument_token] = ltp
        asyncio.get_running_loop().call_later(wait, self._flush, instrument_token)

    def changed(self, trigger_id: str, user_id: str) -> None:
        """A trigger's row changed (or is about to: a fired leg is being claimed)."""
        self._publish(TriggerChanged(trigger_id, user_id))

    def _flush(self, instrument_token: int) -> None:
        ltp = self._held.pop(instrument_token, None)
        if ltp is not None and self.listening:
            self._send_price(instrument_token, ltp, time.monotonic())

    def _send_price(self, instrument_token: int, ltp: int, now: float) -> None:
        self._last_sent[instrument_token] = now
        self._publish(PriceEvent(instrument_token, ltp))

    def _publish(self, event: Event) -> None:
        for subscription in self._subscriptions:
            subscription.put(event)
