"""The sampler: one row per window with rates, counts, window percentiles and headroom."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hmt.core.samples import Sample
from hmt.core.throttle import KITE_ORDER_LIMITS, Throttle
from hmt.engine.health import Health, Verdict
from hmt.engine.ports import FeedStatus
from hmt.engine.sampler import Sampler
from hmt.engine.stats import EngineStats


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_each_row_covers_its_window_only() -> None:
    clock, stats, written, compacted = Clock(), EngineStats(), [], []
    feed = {"ticks": {0: 0, 1: 0}, "reconnects": 0}
    verdict = [Health(Verdict.OK, ())]
    throttle = Throttle(KITE_ORDER_LIMITS)
    stats.headroom_of = lambda: throttle.headroom(1000.0)

    async def write(sample: Sample) -> None:
        written.append(sample)

    async def compact(now: datetime) -> None:
        compacted.append(now)

    sampler = Sampler(
        stats=stats,
        feed=lambda: FeedStatus(
            state="connected",
            connected=True,
            reconnects=feed["reconnects"],
            ticks=sum(feed["ticks"].values()),
            ticks_by_connection=dict(feed["ticks"]),
        ),
        health=lambda: verdict[0],
        write=write,
        compact=compact,
        clock=clock,
        interval=10,
        compact_every=2,
    )
    stats.record_tick_to_order(0.5)  # before the first window: not in any row
    sampler.begin()

    feed["ticks"] = {0: 300, 1: 100}
    stats.triggered_orders, stats.retries = 2, 1
    stats.record_tick_to_order(0.002)
    stats.record_tick_to_order(0.004)
    stats.record_claim(0.001)
    stats.orders_queued = 3
    stats.record_change(0.25)
    throttle.take(999.5)
    clock.now += timedelta(seconds=10)
    first = await sampler.sample()

    assert first.at == datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    assert first.seconds == 10
    f = first.figures
    assert f["ticks_per_s"] == 40.0
    assert f["ticks_per_s_by_connection"] == {"0": 30.0, "1": 10.0}
    assert (f["orders_placed"], f["order_retries"], f["orders_failed"]) == (2, 1, 0)
    assert 3990 <= f["tick_to_order_p99_us"] <= 4010  # not the 0.5 s before begin()
    assert 990 <= f["claim_p50_us"] <= 1010
    assert f["evaluate_p99_us"] is None
    assert f["orders_queued"] == 3
    assert f["change_feed_lag_ms"] == 250.0
    assert (f["headroom_per_second"], f["headroom_per_minute"], f["headroom_per_day"]) == (
        9,
        199,
        2999,
    )
    assert f["health"] == "ok"
    assert compacted == []

    # The next window: nothing happened but a reconnect and a degraded verdict.
    feed["reconnects"] = 1
    verdict[0] = Health(Verdict.DEGRADED, ("no recent ticks",))
    stats.orders_queued = 0
    clock.now += timedelta(seconds=10)
    second = await sampler.sample()
    g = second.figures
    assert second.at == first.at + timedelta(seconds=10)
    assert (g["ticks_per_s"], g["orders_placed"], g["reconnects"]) == (0.0, 0, 1)
    assert g["tick_to_order_p99_us"] is None
    assert g["change_feed_lag_ms"] == 0.0
    assert g["health"] == "degraded"
    assert written == [first, second]
    assert compacted == [clock.now]  # every second row
    # The cumulative histogram still has every sample, the window's are gone.
    assert stats.tick_to_order.get_total_count() == 3
