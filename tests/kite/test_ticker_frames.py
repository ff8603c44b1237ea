"""Frame dispatch without sockets: counting, the fast path to on_ltp, failing callbacks."""

from __future__ import annotations

from hmt.kite.ticker_frames import FrameSink
from hmt.kite.ticker_messages import encode_server_text
from hmt.kite.ticker_protocol import HEARTBEAT, encode_frame, frame_packets
from hmt.kite.ticks import LtpTick, QuoteTick, Tick


def test_frames_are_counted_and_ticks_handed_on_in_order() -> None:
    """Heartbeats, tick frames and text are counted; on_ltp gets each pair, on_ticks the ticks."""
    pairs: list[tuple[int, int]] = []
    typed: list[Tick] = []
    sink = FrameSink(lambda t, p: pairs.append((t, p)), typed.extend)
    ticks = [LtpTick(256265, 5), QuoteTick(408065, 7, *[0] * 9)]
    for frame in (HEARTBEAT, encode_frame(ticks), encode_server_text("message", "hello")):
        sink.on_frame(0, frame)
    assert pairs == [(256265, 5), (408065, 7)]
    assert typed == ticks
    assert (sink.frames, sink.heartbeats, sink.ticks, dict(sink.bad)) == (3, 1, 2, {})


def test_bad_frames_counted_by_kind_and_good_packets_still_delivered() -> None:
    """A frame with an unknown packet size still delivers its good packet, and is counted."""
    pairs: list[tuple[int, int]] = []
    sink = FrameSink(lambda t, p: pairs.append((t, p)))
    good = encode_frame([LtpTick(408065, 9)])[4:]
    sink.on_frame(1, frame_packets([b"\x00" * 3, good]))
    sink.on_frame(1, b"")
    sink.on_frame(1, "[]")
    assert pairs == [(408065, 9)]
    assert dict(sink.bad) == {"unknown_packet_size": 1, "empty": 1, "bad_text": 1}


def test_a_raising_callback_is_counted_not_raised() -> None:
    """on_ltp raising on the first pair: the second is still delivered, one error counted."""
    seen: list[int] = []

    def on_ltp(token: int, ltp: int) -> None:
        seen.append(ltp)
        if ltp == 1:
            raise ValueError("bug")

    sink = FrameSink(on_ltp, on_order_update=lambda update: 1 / 0)
    sink.on_frame(0, encode_frame([LtpTick(1 << 8 | 1, 1), LtpTick(2 << 8 | 1, 2)]))
    sink.on_frame(0, encode_server_text("order", {"order_id": "1"}))
    assert seen == [1, 2]
    assert (sink.handler_errors, sink.order_updates) == (2, 1)


def test_ticks_are_counted_per_connection() -> None:
    """The performance page's ticks/s per connection: packets by the socket they came on."""
    sink = FrameSink(lambda t, p: None)
    two = encode_frame([LtpTick(256265, 5), LtpTick(408065, 7)])
    sink.on_frame(2, two)
    sink.on_frame(0, encode_frame([LtpTick(408065, 8)]))
    sink.on_frame(2, two)
    sink.on_frame(1, HEARTBEAT)  # a heartbeat carries no tick
    assert sink.link_ticks == [1, 0, 4]
    assert sink.ticks == sum(sink.link_ticks) == 5
