"""Engine stats: latency percentiles from the HDR histogram, empty and filled."""

from __future__ import annotations

from hmt.engine.stats import FOLD_EVERY, EngineStats


def test_empty_histograms_report_no_percentiles() -> None:
    """Before any order, the latency summary has a zero count and no values."""
    summary = EngineStats().latency()["tick_to_order_us"]
    assert summary == {
        "count": 0,
        "p50": None,
        "p90": None,
        "p99": None,
        "p99_9": None,
        "max": None,
    }


def test_percentiles_follow_the_recorded_values() -> None:
    """A thousand samples of 1..1000 us give percentiles within the histogram's precision."""
    stats = EngineStats()
    for us in range(1, 1001):
        stats.record_tick_to_order(us / 1_000_000)
    summary = stats.latency()["tick_to_order_us"]
    assert summary["count"] == 1000
    assert abs(summary["p50"] - 500) <= 1
    assert abs(summary["p99"] - 990) <= 1
    assert abs(summary["max"] - 1000) <= 1
    stats.record_tick_to_order(0.0)  # clamped to the lowest trackable value, not an error
    stats.record_tick_to_order(3600.0)
    assert stats.latency()["tick_to_order_us"]["count"] == 1002


def test_samples_wait_for_a_reader_or_a_full_buffer_and_none_is_lost() -> None:
    """Recorded samples reach the histogram when it is read, or every FOLD_EVERY samples."""
    stats = EngineStats()
    stats.record_evaluate(0.000_020)
    assert stats._evaluate.get_total_count() == 0  # not folded on the tick path
    assert stats.evaluate.get_total_count() == 1  # the reader folds
    assert stats.latency()["evaluate_us"]["p50"] == 20
    for _ in range(FOLD_EVERY):
        stats.record_tick_to_order(0.001)
    assert stats._tick_to_order.get_total_count() == FOLD_EVERY  # the buffer filled: folded
    stats.record_tick_to_order(0.002)
    summary = stats.latency()["tick_to_order_us"]
    assert summary["count"] == FOLD_EVERY + 1
    assert abs(summary["max"] - 2000) <= 2
