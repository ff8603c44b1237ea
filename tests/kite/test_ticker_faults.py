"""RELIABILITY.md test 8, the feed fault catalogue: the ticker client through a fault proxy.

Each scenario breaks the path between the client and the protocol test server
and prints its figures: time to detect, time until every token is resubscribed,
whether the resubscribed set equals the active set, and the reconnect attempts
against the backoff schedule. Timings are printed, never asserted; what is
asserted is the behaviour (set equality, attempt numbers within the schedule,
no reconnect storm on 403).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from hmt.kite.backoff import nominal_delay
from hmt.kite.ticker import Ticker
from hmt.kite.ticker_protocol import frame_packets
from hmt.kite.ticker_state import LinkEvent, LinkEventKind, TickerState
from hmt.kite.ticks import Mode
from tests.support.eventually import eventually
from tests.support.fault_proxy import FaultProxy
from tests.support.kite_ws import API_KEY, GOOD_TOKEN, KiteWsServer

BASE_S, CAP_S, JITTER, WATCHDOG_S = 0.05, 0.4, 0.2, 0.3
# 60 NSE equities in ltp, 5 in full, 5 NFO in quote, 2 indices in full, 2 CDS in ltp.
ACTIVE = {
    **{(i << 8) | 1: Mode.LTP for i in range(1000, 1060)},
    **{(i << 8) | 1: Mode.FULL for i in range(2000, 2005)},
    **{(i << 8) | 2: Mode.QUOTE for i in range(3000, 3005)},
    **{(i << 8) | 9: Mode.FULL for i in (1001, 1002)},
    **{(i << 8) | 3: Mode.LTP for i in (4001, 4002)},
}


@dataclass
class Rig:
    """Server, proxy and client, and what the client reported."""

    server: KiteWsServer
    proxy: FaultProxy
    ticker: Ticker
    events: list[LinkEvent] = field(default_factory=list)
    ltps: list[tuple[int, int]] = field(default_factory=list)

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def after(self, kind: LinkEventKind, since: float) -> list[LinkEvent]:
        return [e for e in self.events if e.kind is kind and e.at >= since]

    async def resubscribed_since(self, since: float, within: float = 10.0) -> LinkEvent:
        await eventually(lambda: self.after(LinkEventKind.RESUBSCRIBED, since), within=within)
        await eventually(lambda: self.server.subscriptions() == self.ticker.subscriptions())
        return self.after(LinkEventKind.RESUBSCRIBED, since)[0]

    def report(self, name: str, since: float, detected: LinkEvent, back: LinkEvent) -> None:
        """Print the scenario's figures and check the backoff attempts against the schedule."""
        equal = self.server.subscriptions() == self.ticker.subscriptions() == ACTIVE
        print(f"\n[{name}] time to detect: {detected.at - since:.3f} s ({detected.reason})")
        print(f"[{name}] time until resubscribed: {back.at - since:.3f} s ({back.tokens} tokens)")
        print(f"[{name}] resubscribed set == active set: {equal} ({len(ACTIVE)} tokens)")
        rows = self.schedule(since)
        print(f"[{name}] reconnect attempts (attempt, waited s, nominal s): {rows}")
        print(f"[{name}] handshakes at server: {self.server.handshakes}, via proxy: "
              f"{self.proxy.accepted}")  # fmt: skip
        assert equal

    def schedule(self, since: float) -> list[tuple[int, float, float]]:
        """(attempt, delay, nominal) of each backoff since `since`, checked against the schedule."""
        rows = []
        for event in self.after(LinkEventKind.BACKOFF, since):
            nominal = nominal_delay(event.attempt, BASE_S, CAP_S)
            assert nominal * (1 - JITTER) <= event.delay_s <= nominal
            rows.append((event.attempt, round(event.delay_s, 3), nominal))
        return rows


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    seed = random.randrange(2**32)
    print(f"jitter seed={seed}")
    async with KiteWsServer() as server, FaultProxy(server.port) as proxy:
        events: list[LinkEvent] = []
        ltps: list[tuple[int, int]] = []
        ticker = Ticker(
            proxy.url, API_KEY, GOOD_TOKEN,
            on_ltp=lambda t, p: ltps.append((t, p)), on_event=events.append,
            reconnect_delay_ms=BASE_S * 1000, reconnect_max_delay_ms=CAP_S * 1000,
            jitter=JITTER, watchdog_s=WATCHDOG_S, stable_after_s=0.5, open_timeout_s=0.5,
            rng=random.Random(seed),
        )  # fmt: skip
        for mode in Mode:
            ticker.subscribe([t for t, m in ACTIVE.items() if m is mode], mode)
        built = Rig(server, proxy, ticker, events, ltps)
        async with ticker:
            yield built


async def _connected(rig: Rig) -> None:
    await eventually(lambda: rig.ticker.state is TickerState.CONNECTED)
    await rig.resubscribed_since(0.0)


async def test_drop_mid_stream(rig: Rig) -> None:
    """The proxy closes the connection (FIN): detected at once, backoff, every token back."""
    await _connected(rig)
    since = rig.now()
    rig.proxy.cut()
    await eventually(lambda: rig.after(LinkEventKind.DISCONNECTED, since))
    back = await rig.resubscribed_since(since)
    rig.report("drop mid-stream", since, rig.after(LinkEventKind.DISCONNECTED, since)[0], back)
    assert [a for a, _, _ in rig.schedule(since)] == [1]


async def test_reset_mid_stream(rig: Rig) -> None:
    """The proxy resets the connection (RST): the same recovery as a clean close."""
    await _connected(rig)
    since = rig.now()
    rig.proxy.reset()
    await eventually(lambda: rig.after(LinkEventKind.DISCONNECTED, since))
    back = await rig.resubscribed_since(since)
    rig.report("reset mid-stream", since, rig.after(LinkEventKind.DISCONNECTED, since)[0], back)


async def test_handshake_drop(rig: Rig) -> None:
    """The next handshakes are lost: each failed attempt backs off longer, then it connects."""
    await _connected(rig)
    rig.proxy.drop_next = 3
    since = rig.now()
    rig.proxy.cut()
    back = await rig.resubscribed_since(since)
    detected = rig.after(LinkEventKind.DISCONNECTED, since)[0]
    rig.report("handshake drop", since, detected, back)
    assert [a for a, _, _ in rig.schedule(since)] == [1, 2, 3, 4]
    assert rig.proxy.dropped == 3


async def test_silent_partition_trips_the_watchdog(rig: Rig) -> None:
    """Bytes stop flowing both ways, sockets stay open: the heartbeat watchdog detects it."""
    await _connected(rig)
    since = rig.now()
    rig.proxy.stall()
    await eventually(lambda: rig.after(LinkEventKind.WATCHDOG, since))
    rig.proxy.heal()
    back = await rig.resubscribed_since(since)
    detected = rig.after(LinkEventKind.WATCHDOG, since)[0]
    rig.report("silent partition", since, detected, back)
    assert rig.ticker.stats().watchdog_trips == 1


async def test_drop_during_backoff(rig: Rig) -> None:
    """A cut, then the attempts made during backoff fail too: attempts keep climbing, then back."""
    await _connected(rig)
    since = rig.now()
    rig.proxy.cut()
    await eventually(lambda: rig.after(LinkEventKind.BACKOFF, since))
    rig.proxy.drop_next = 2
    back = await rig.resubscribed_since(since)
    rig.report("drop during backoff", since, rig.after(LinkEventKind.DISCONNECTED, since)[0], back)
    assert [a for a, _, _ in rig.schedule(since)] == [1, 2, 3]


async def test_flapping_connection_backs_off_without_a_storm(rig: Rig) -> None:
    """Connections that die soon after opening never reset the backoff: attempts keep growing."""
    await _connected(rig)
    rig.proxy.flap_after_s = 0.1  # shorter than stable_after_s
    since = rig.now()
    rig.proxy.cut()
    await eventually(lambda: len(rig.after(LinkEventKind.BACKOFF, since)) >= 6)
    rig.proxy.flap_after_s = None
    healed = rig.now()
    rig.proxy.cut()  # end any connection opened while flapping (it has a cut pending)
    back = await rig.resubscribed_since(healed)
    await eventually(lambda: rig.ticker.state is TickerState.CONNECTED)
    attempts = [a for a, _, _ in rig.schedule(since)]
    rig.report("flapping", since, rig.after(LinkEventKind.DISCONNECTED, since)[0], back)
    assert attempts[:6] == [1, 2, 3, 4, 5, 6]  # never reset to 1 while flapping
    flaps = rig.proxy.accepted
    print(f"[flapping] connections while flapping: {flaps}, backoffs: {len(attempts)}")


async def test_403_token_exception_no_reconnect_storm(rig: Rig) -> None:
    """The token expires: one 403, then token_invalid and silence until a new token arrives."""
    await _connected(rig)
    rig.server.valid_tokens = {"next-day-token"}
    since = rig.now()
    rig.proxy.cut()
    await eventually(lambda: rig.ticker.state is TickerState.TOKEN_INVALID)
    detected = rig.after(LinkEventKind.TOKEN_INVALID, since)[0]
    window = 20 * BASE_S  # absence needs a window: a retrying client would try ~5 times
    await asyncio.sleep(window)
    print(f"\n[403] handshakes rejected in {detected.at - since + window:.2f} s: "
          f"{rig.server.rejected}")  # fmt: skip
    assert rig.server.rejected == 1
    assert rig.ticker.state is TickerState.TOKEN_INVALID
    given = rig.now()
    rig.ticker.set_access_token("next-day-token")
    back = await rig.resubscribed_since(given)
    print(f"[403] time from new token to resubscribed: {back.at - given:.3f} s")
    rig.report("403 TokenException", since, detected, back)
    assert rig.server.rejected == 1


async def test_garbled_frame_keeps_the_connection(rig: Rig) -> None:
    """Garbled binary frames are counted and skipped; the socket stays and ticks keep coming."""
    await _connected(rig)
    token = next(iter(ACTIVE))
    await rig.server.send_all(b"\xff\xff\x00\x08garbage!")
    await rig.server.send_all(frame_packets([b"\x00" * 13]))
    await rig.server.send_all(b"")
    await rig.server.push({token: 777})
    await eventually(lambda: (token, 777) in rig.ltps)
    stats = rig.ticker.stats()
    print(f"\n[garbled frame] bad frames by kind: {stats.bad_frames}, reconnects: "
          f"{stats.reconnects}")  # fmt: skip
    assert stats.bad_frames == {"truncated": 1, "unknown_packet_size": 1, "empty": 1}
    assert stats.reconnects == 0


async def test_price_beyond_threshold_while_disconnected(rig: Rig) -> None:
    """Prices that moved while the feed was down arrive as the first tick after reconnecting."""
    await _connected(rig)
    moved = {token: 9_000_000 + i for i, token in enumerate(list(ACTIVE)[:10])}
    rig.proxy.drop_next = 2  # stay down for a few attempts while the market moves
    since = rig.now()
    rig.proxy.cut()
    await eventually(lambda: rig.after(LinkEventKind.DISCONNECTED, since))
    rig.server.prices.update(moved)
    seen_before = len(rig.ltps)
    back = await rig.resubscribed_since(since)
    await eventually(lambda: {t for t, _ in rig.ltps[seen_before:]} >= set(moved))
    first = {}
    for token, ltp in rig.ltps[seen_before:]:
        first.setdefault(token, ltp)
    hits = sum(first[token] == price for token, price in moved.items())
    rig.report("price beyond threshold", since, rig.after(LinkEventKind.DISCONNECTED, since)[0],
               back)  # fmt: skip
    print(f"[price beyond threshold] first tick after reconnect at the moved price: "
          f"{hits}/{len(moved)}")  # fmt: skip
    assert hits == len(moved)
