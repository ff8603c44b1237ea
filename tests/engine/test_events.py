"""The engine's event hub: per-instrument price throttling, the last price kept, no cost idle."""

from __future__ import annotations

from hmt.engine.events import EventHub, PriceEvent, TriggerChanged


async def test_a_burst_sends_the_first_price_now_and_the_last_when_the_slot_frees() -> None:
    """Fifty prices in one go: one is sent at once, the burst's last follows; nothing between."""
    hub = EventHub(price_interval=0.05)
    viewer = hub.subscribe()
    for i in range(50):
        hub.price(1, 1000 + i)
    hub.price(2, 7)  # another instrument has its own slot
    first = [await viewer.next(within=0), await viewer.next(within=0)]
    assert first == [PriceEvent(1, 1000), PriceEvent(2, 7)]
    assert await viewer.next(within=0) is None
    assert await viewer.next(within=5) == PriceEvent(1, 1049)
    assert await viewer.next(within=0.2) is None


async def test_changes_reach_every_viewer_and_closed_ones_stop_listening() -> None:
    """Every subscriber gets each change; `listening` is false once the last one closes."""
    hub = EventHub()
    assert hub.listening is False
    one, two = hub.subscribe(), hub.subscribe()
    hub.changed("t1", "alice")
    assert await one.next(within=1) == TriggerChanged("t1", "alice")
    assert await two.next(within=1) == TriggerChanged("t1", "alice")
    one.close()
    assert hub.listening is True
    two.close()
    assert hub.listening is False


async def test_a_slow_viewer_loses_its_oldest_events_and_counts_them() -> None:
    """A viewer that never reads keeps only the newest QUEUE_LIMIT events."""
    hub = EventHub()
    viewer = hub.subscribe()
    for i in range(1_005):
        hub.changed(f"t{i}", "alice")
    assert viewer.dropped == 5
    assert await viewer.next(within=0) == TriggerChanged("t5", "alice")


async def test_a_held_price_is_not_sent_after_everyone_left() -> None:
    """Prices held for a slot are dropped when the last viewer closes."""
    hub = EventHub(price_interval=0.02)
    viewer = hub.subscribe()
    hub.price(1, 10)
    hub.price(1, 11)
    viewer.close()
    later = hub.subscribe()
    assert await later.next(within=0.1) is None
