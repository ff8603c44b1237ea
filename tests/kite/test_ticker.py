"""The ticker client over real loopback sockets, against the protocol-speaking test server."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog

from hmt import logs
from hmt.kite.subscriptions import SubscriptionLimitError
from hmt.kite.ticker import Ticker
from hmt.kite.ticker_messages import OrderUpdate, encode_server_text
from hmt.kite.ticker_protocol import frame_packets
from hmt.kite.ticker_state import LinkEvent, LinkEventKind, TickerState
from hmt.kite.ticks import FullTick, IndexTick, Mode, QuoteTick, Tick
from tests.support.eventually import eventually
from tests.support.kite_ws import API_KEY, GOOD_TOKEN, KiteWsServer
from tests.support.services import kite_fixture

INFY, RELIANCE, NIFTY = 408065, 738561, 256265


class Recorder:
    """Collects what a Ticker hands to its callbacks."""

    def __init__(self) -> None:
        self.ltps: list[tuple[int, int]] = []
        self.ticks: list[Tick] = []
        self.orders: list[OrderUpdate] = []
        self.events: list[LinkEvent] = []

    def on_ltp(self, token: int, ltp: int) -> None:
        self.ltps.append((token, ltp))

    def count(self, kind: LinkEventKind) -> int:
        return sum(event.kind is kind for event in self.events)

    def kwargs(self) -> dict[str, Any]:
        return {
            "on_ltp": self.on_ltp,
            "on_ticks": self.ticks.extend,
            "on_order_update": self.orders.append,
            "on_event": self.events.append,
        }


FAST = {
    "reconnect_delay_ms": 50,
    "reconnect_max_delay_ms": 400,
    "watchdog_s": 0.3,
    "stable_after_s": 0.5,
    "open_timeout_s": 1.0,
}


@pytest.fixture
async def server() -> AsyncIterator[KiteWsServer]:
    async with KiteWsServer() as running:
        yield running


def make_ticker(url: str, rec: Recorder, access_token: str = GOOD_TOKEN, **options: Any) -> Ticker:
    """A Ticker with test timings and a seeded (printed) jitter."""
    seed = random.randrange(2**32)
    print(f"jitter seed={seed}")
    settings = {**FAST, **rec.kwargs(), "rng": random.Random(seed), **options}
    return Ticker(url, API_KEY, access_token, **settings)


async def test_subscribe_and_receive_ticks_in_each_mode(server: KiteWsServer) -> None:
    """Subscribed tokens arrive in their modes: LTP pairs for all, full ticks typed for the UI."""
    rec = Recorder()
    async with make_ticker(server.url, rec) as ticker:
        ticker.subscribe([INFY], Mode.FULL)
        ticker.subscribe([RELIANCE], Mode.QUOTE)
        ticker.subscribe([NIFTY], Mode.FULL)
        await eventually(lambda: server.subscriptions() == ticker.subscriptions())
        await server.push({INFY: 160_005, RELIANCE: 250_000, NIFTY: 2_400_000})
        await eventually(lambda: (INFY, 160_005) in rec.ltps and (NIFTY, 2_400_000) in rec.ltps)
        kinds = {type(t) for t in rec.ticks}
        assert kinds == {FullTick, QuoteTick, IndexTick}
        stats = ticker.stats()
        assert stats.state is TickerState.CONNECTED
        assert stats.connected
        assert (stats.connections, stats.subscribed_tokens) == (1, 3)
        assert stats.ticks == len(rec.ltps) >= 6  # 3 snapshots + 3 pushed
        assert stats.last_frame_age_s is not None
        commands = [(c.action, c.mode) for c in server.conns[0].commands]
        assert ("subscribe", None) in commands
        assert ("mode", Mode.FULL) in commands
    assert ticker.state is TickerState.STOPPED


async def test_runtime_unsubscribe_and_mode_change(server: KiteWsServer) -> None:
    """Unsubscribe and a mode change at runtime reach the server and change what arrives."""
    rec = Recorder()
    async with make_ticker(server.url, rec) as ticker:
        ticker.subscribe([INFY, RELIANCE], Mode.LTP)
        await eventually(lambda: server.subscriptions() == {INFY: Mode.LTP, RELIANCE: Mode.LTP})
        ticker.unsubscribe([RELIANCE, 12345])
        ticker.set_mode(Mode.QUOTE, [INFY])
        await eventually(lambda: server.subscriptions() == {INFY: Mode.QUOTE})
        rec.ticks.clear()
        await server.push({INFY: 1, RELIANCE: 2})
        await eventually(lambda: len(rec.ticks) == 1)
        assert isinstance(rec.ticks[0], QuoteTick)


async def test_subscriptions_go_out_in_batches(server: KiteWsServer) -> None:
    """2,500 tokens with batch 1000 go out as 3 subscribe and 3 mode messages."""
    rec = Recorder()
    tokens = list(range(1 << 8 | 1, 2501 << 8 | 1, 1 << 8))
    async with make_ticker(server.url, rec, batch=1000) as ticker:
        ticker.subscribe(tokens, Mode.LTP)
        await eventually(lambda: len(server.subscriptions()) == 2500)
        sizes = [(c.action, len(c.tokens)) for c in server.conns[0].commands]
        assert sizes == [("subscribe", 1000), ("subscribe", 1000), ("subscribe", 500),
                         ("mode", 1000), ("mode", 1000), ("mode", 500)]  # fmt: skip


async def test_tokens_beyond_one_connection_spread_over_connections(server: KiteWsServer) -> None:
    """6,500 tokens take 3 connections (3000+3000+500); beyond 9,000 is a clear error, no change."""
    rec = Recorder()
    tokens = [(i << 8) | 2 for i in range(1, 6501)]
    async with make_ticker(server.url, rec) as ticker:
        ticker.subscribe(tokens[:3001], Mode.LTP)
        await eventually(lambda: len(server.conns) == 2, within=10)
        await eventually(lambda: len(server.subscriptions()) == 3001, within=10)
        assert sorted(len(c.modes) for c in server.conns) == [1, 3000]
        ticker.subscribe(tokens[3001:], Mode.LTP)
        await eventually(lambda: len(server.subscriptions()) == 6500, within=10)
        assert sorted(len(c.modes) for c in server.conns) == [500, 3000, 3000]
        assert server.subscriptions() == ticker.subscriptions()
        more = [(i << 8) | 2 for i in range(10_000, 12_501)]
        with pytest.raises(SubscriptionLimitError, match=r"9001 instruments requested.*3 conn"):
            ticker.subscribe(more, Mode.LTP)
        assert len(ticker.subscriptions()) == 6500
        assert ticker.stats().connections == ticker.stats().connections_needed == 3


async def test_server_close_reconnects_with_backoff_and_resubscribes_all(
    server: KiteWsServer,
) -> None:
    """When the server drops the socket, the client backs off, reconnects, resubscribes all."""
    rec = Recorder()
    async with make_ticker(server.url, rec) as ticker:
        ticker.subscribe([INFY, RELIANCE], Mode.FULL)
        ticker.subscribe([NIFTY], Mode.QUOTE)
        ticker.subscribe([(7 << 8) | 3], Mode.LTP)
        await eventually(lambda: ticker.state is TickerState.CONNECTED and server.subscriptions())
        before = ticker.subscriptions()
        for round_ in range(1, 4):
            await server.drop_all()
            await eventually(lambda r=round_: rec.count(LinkEventKind.RESUBSCRIBED) == r + 1)
            # The client's event is sent before the server has read the commands: wait for them.
            await eventually(lambda: server.subscriptions() == before)
        backoffs = [e for e in rec.events if e.kind is LinkEventKind.BACKOFF]
        assert [e.attempt for e in backoffs] == [1, 2, 3]  # not stable long enough to reset
        assert all(0.8 * 0.05 * 2 ** (e.attempt - 1) <= e.delay_s <= 0.05 * 2 ** (e.attempt - 1)
                   for e in backoffs)  # fmt: skip
        assert ticker.stats().reconnects == 3


async def test_stable_connection_resets_the_backoff(server: KiteWsServer) -> None:
    """After a connection outlives stable_after_s, the next drop backs off from the base delay."""
    rec = Recorder()
    async with make_ticker(server.url, rec, stable_after_s=0.2) as ticker:
        ticker.subscribe([INFY])
        loop = asyncio.get_running_loop()
        for round_ in range(1, 4):
            await eventually(lambda r=round_: rec.count(LinkEventKind.CONNECTED) == r)
            opened = [e for e in rec.events if e.kind is LinkEventKind.CONNECTED][-1].at
            await eventually(lambda o=opened: loop.time() - o > 0.25)  # outlive stable_after_s
            await server.drop_all()
        await eventually(lambda: rec.count(LinkEventKind.BACKOFF) == 3)
        attempts = [e.attempt for e in rec.events if e.kind is LinkEventKind.BACKOFF]
        assert attempts == [1, 1, 1]


async def test_silent_server_trips_the_watchdog(server: KiteWsServer) -> None:
    """No frame (not even a heartbeat) for watchdog_s: the client drops the socket, reconnects."""
    rec = Recorder()
    async with make_ticker(server.url, rec) as ticker:
        ticker.subscribe([INFY], Mode.LTP)
        await eventually(lambda: rec.count(LinkEventKind.RESUBSCRIBED) == 1)
        server.stalled = True
        await eventually(lambda: ticker.stats().watchdog_trips == 1)
        server.stalled = False
        await eventually(lambda: rec.count(LinkEventKind.RESUBSCRIBED) == 2)
        # The client's event is sent before the server has read the commands: wait for them.
        await eventually(lambda: server.subscriptions() == {INFY: Mode.LTP})
        watchdog = next(e for e in rec.events if e.kind is LinkEventKind.WATCHDOG)
        assert "watchdog" in watchdog.reason


async def test_403_waits_for_a_new_token_without_a_reconnect_storm(server: KiteWsServer) -> None:
    """HTTP 403 puts the client in token_invalid with one handshake; a new token resumes it."""
    rec = Recorder()
    server.valid_tokens = {"tomorrow"}
    async with make_ticker(server.url, rec) as ticker:
        ticker.subscribe([INFY], Mode.QUOTE)
        await eventually(lambda: ticker.state is TickerState.TOKEN_INVALID)
        # Absence needs a window: ten base delays, where a retrying client would try 4 times.
        await asyncio.sleep(0.5)
        assert server.handshakes == server.rejected == 1
        assert ticker.stats().handshakes == 1
        assert rec.count(LinkEventKind.TOKEN_INVALID) == 1
        ticker.set_access_token("tomorrow")
        await eventually(lambda: ticker.state is TickerState.CONNECTED)
        await eventually(lambda: server.subscriptions() == {INFY: Mode.QUOTE})
        assert server.handshakes == 2


async def test_token_expiring_mid_session_goes_to_token_invalid(server: KiteWsServer) -> None:
    """A token revoked while connected: the drop is followed by one 403, then waiting."""
    rec = Recorder()
    async with make_ticker(server.url, rec) as ticker:
        ticker.subscribe([INFY])
        await eventually(lambda: ticker.state is TickerState.CONNECTED)
        server.valid_tokens = {"new-token"}
        await server.drop_all()
        await eventually(lambda: ticker.state is TickerState.TOKEN_INVALID)
        await asyncio.sleep(0.3)  # a window of six base delays for a storm to show
        assert server.rejected == 1
        ticker.set_access_token("new-token")
        await eventually(lambda: server.subscriptions() == {INFY: Mode.LTP})


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Any:
    """hmt's own log set-up (JSON on stderr, at DEBUG for every logger), read back per test."""
    logs.configure(level="debug", json=True)
    yield capsys
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def logged(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Every JSON log line written so far."""
    lines = capsys.readouterr().err.splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_malformed_frames_are_counted_logged_once_and_do_not_stop_ticks(
    server: KiteWsServer, json_logs: pytest.CaptureFixture[str]
) -> None:
    """Garbage binary and text frames are counted by kind, logged once per kind; ticks go on."""
    rec = Recorder()
    async with make_ticker(server.url, rec) as ticker:
        ticker.subscribe([INFY])
        await eventually(lambda: ticker.state is TickerState.CONNECTED and server.subscriptions())
        for _ in range(3):
            await server.send_all(frame_packets([b"\x01" * 12]))
            await server.send_all(b"\x00\x05\x00\x08")
            await server.send_all("{not json")
            await server.send_all(encode_server_text("mystery", 1))
        await server.send_all(encode_server_text("error", "Too many requests"))
        await server.push({INFY: 4242})
        await eventually(lambda: (INFY, 4242) in rec.ltps)
        stats = ticker.stats()
        assert stats.bad_frames == {"unknown_packet_size": 3, "truncated": 3, "bad_text": 3,
                                    "unknown_text_type": 3}  # fmt: skip
        assert stats.server_errors == 1
        assert (stats.connections, stats.reconnects) == (1, 0)
    malformed = [e for e in logged(json_logs) if e["event"] == "ticker_malformed_frame"]
    assert all(e["logger"] == "hmt.kite.ticker" and e["level"] == "warning" for e in malformed)
    assert sorted(e["kind"] for e in malformed) == [
        "bad_text", "truncated", "unknown_packet_size", "unknown_text_type",
    ]  # fmt: skip


async def test_order_updates_are_handed_on(server: KiteWsServer) -> None:
    """A text `order` message reaches on_order_update as the postback payload."""
    rec = Recorder()
    postback = json.loads(kite_fixture("postback.json").read_text())
    async with make_ticker(server.url, rec) as ticker:
        await eventually(lambda: ticker.state is TickerState.CONNECTED and server.conns)
        await server.send_all(encode_server_text("order", postback))
        await eventually(lambda: rec.orders)
        assert rec.orders[0].order_id == "220303000308932"
        assert rec.orders[0].status == "COMPLETE"


async def test_a_raising_handler_does_not_stop_the_feed(server: KiteWsServer) -> None:
    """on_ltp raising for one tick: the others of the frame and later frames are still delivered."""
    seen: list[int] = []

    def on_ltp(token: int, ltp: int) -> None:
        seen.append(ltp)
        if ltp == 2:
            raise RuntimeError("handler bug")

    rec = Recorder()
    tokens = [INFY, RELIANCE, NIFTY]
    async with make_ticker(server.url, rec, on_ltp=on_ltp) as ticker:
        ticker.subscribe(tokens)
        await eventually(lambda: len(seen) == 3)
        await server.push(dict(zip(tokens, [1, 2, 3], strict=True)))
        await eventually(lambda: seen[-3:] == [1, 2, 3])
        await server.push({INFY: 5})
        await eventually(lambda: seen[-1] == 5)
        assert ticker.stats().handler_errors == 1


async def test_access_token_never_reaches_the_logs(
    server: KiteWsServer, json_logs: pytest.CaptureFixture[str]
) -> None:
    """At DEBUG on every logger, across connect, 403 and reconnect, the token is never logged."""
    rec = Recorder()
    canary = "canary-token-5f1d"
    server.valid_tokens = {canary}
    async with make_ticker(server.url, rec, access_token=canary) as ticker:
        ticker.subscribe([INFY])
        await eventually(lambda: ticker.state is TickerState.CONNECTED)
        server.valid_tokens = set()
        await server.drop_all()
        await eventually(lambda: ticker.state is TickerState.TOKEN_INVALID)
    ours = [
        e for e in logged(json_logs) if not e["logger"].startswith("tests.")
    ]  # not the server's
    events = [e["event"] for e in ours]
    assert "ticker_token_rejected" in events
    assert "ticker_connected" in events
    assert canary not in json.dumps(ours)


def test_constructor_rejects_settings_that_cannot_work() -> None:
    """A zero base delay (a hot loop), a cap below the base or an empty token are refused."""
    with pytest.raises(ValueError, match="reconnect_delay_ms"):
        Ticker("ws://x", API_KEY, GOOD_TOKEN, reconnect_delay_ms=0)
    with pytest.raises(ValueError, match="reconnect_delay_ms"):
        Ticker("ws://x", API_KEY, GOOD_TOKEN, reconnect_delay_ms=100, reconnect_max_delay_ms=50)
    with pytest.raises(ValueError, match="access_token"):
        Ticker("ws://x", API_KEY, "")
