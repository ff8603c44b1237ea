"""The engine's counters and its tick-to-order latency histogram."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from hmt.core.throttle import Limit

# Microseconds, from 1 us to 60 s, three significant digits.
_LOWEST_US, _HIGHEST_US, _DIGITS = 1, 60_000_000, 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def _histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)


# The latencies whose percentiles the sampler also takes per window.
WINDOWED = ("tick_to_order", "evaluate", "claim")

# Raw samples kept before they are folded into a histogram, at most.
FOLD_EVERY = 4096


@dataclass
class EngineStats:
    """What DESIGN section 6 lists under /stats, kept as the engine runs.

    The two latencies are recorded on the tick path and on an order's way out
    (just before its request is written), where the code runs cold between
    orders: an HDR `record_value` there cost about 20 us (issue 12). So a
    sample is only appended to a list there, and folded into its histogram
    when the histogram is read (`latency()`, the properties) or every
    `FOLD_EVERY` samples.
    """

    ticks_processed: int = 0
    triggers_fired: int = 0
    triggered_orders: int = 0  # orders the broker accepted
    failed_orders: int = 0
    retries: int = 0
    lost_claims: int = 0
    unresolved: int = 0
    reconciled: int = 0  # rows the broker's order book settled as placed
    bad_ticks: int = 0
    # Orders waiting for a slot of the broker's rate limits (the executor's queue).
    orders_queued: int = 0
    # The PostgreSQL change feed: from a notification's arrival to the book in step.
    change_feed_lag_s: float = 0.0
    change_feed_lag_max_s: float = 0.0  # since the sampler last read it
    changes_applied: int = 0
    # The executor's throttle, read at scrape and sample time (None without one).
    headroom_of: Callable[[], tuple[tuple[Limit, int], ...]] | None = field(
        default=None, repr=False
    )
    _tick_to_order: HdrHistogram = field(default_factory=_histogram, repr=False)
    _evaluate: HdrHistogram = field(default_factory=_histogram, repr=False)
    _claim: HdrHistogram = field(default_factory=_histogram, repr=False)
    # The same samples since the sampler last read them (its window's percentiles).
    _windows: dict[str, HdrHistogram] = field(
        default_factory=lambda: {name: _histogram() for name in WINDOWED}, repr=False
    )
    _tick_to_order_s: list[float] = field(default_factory=list, repr=False)
    _evaluate_s: list[float] = field(default_factory=list, repr=False)
    _claim_s: list[float] = field(default_factory=list, repr=False)

    def record_tick_to_order(self, seconds: float) -> None:
        """From the tick reaching the engine to its order request being written (claim included)."""
        self._tick_to_order_s.append(seconds)
        if len(self._tick_to_order_s) >= FOLD_EVERY:
            self._fold_all()

    def record_evaluate(self, seconds: float) -> None:
        """The in-process path: decode, book, hand-off to the executor."""
        self._evaluate_s.append(seconds)
        if len(self._evaluate_s) >= FOLD_EVERY:
            self._fold_all()

    def record_claim(self, seconds: float) -> None:
        """One claim's transaction, from its start to its commit (won or lost)."""
        self._claim_s.append(seconds)
        if len(self._claim_s) >= FOLD_EVERY:
            self._fold_all()

    def record_change(self, lag_s: float) -> None:
        """A change-feed notification applied `lag_s` after it arrived."""
        self.changes_applied += 1
        self.change_feed_lag_s = lag_s
        self.change_feed_lag_max_s = max(self.change_feed_lag_max_s, lag_s)

    @property
    def tick_to_order(self) -> HdrHistogram:
        """Every tick-to-order sample so far (us)."""
        self._fold_all()
        return self._tick_to_order

    @property
    def evaluate(self) -> HdrHistogram:
        """Every evaluate sample so far (us)."""
        self._fold_all()
        return self._evaluate

    @property
    def claim(self) -> HdrHistogram:
        """Every claim's duration so far (us)."""
        self._fold_all()
        return self._claim

    def headroom(self) -> tuple[tuple[Limit, int], ...]:
        """Per broker rate window, the orders it would still take now."""
        return () if self.headroom_of is None else self.headroom_of()

    def take_window(self) -> dict[str, dict[str, Any]]:
        """The percentiles since the last call (the sampler's window), then start a new window."""
        self._fold_all()
        taken = {name: _summary(histogram) for name, histogram in self._windows.items()}
        for histogram in self._windows.values():
            histogram.reset()
        return taken

    def latency(self) -> dict[str, Any]:
        return {
            "tick_to_order_us": _summary(self.tick_to_order),
            "evaluate_us": _summary(self.evaluate),
            "claim_us": _summary(self.claim),
        }

    def _fold_all(self) -> None:
        windows = self._windows
        _fold(self._tick_to_order, windows["tick_to_order"], self._tick_to_order_s)
        _fold(self._evaluate, windows["evaluate"], self._evaluate_s)
        _fold(self._claim, windows["claim"], self._claim_s)


def _fold(histogram: HdrHistogram, window: HdrHistogram, samples: list[float]) -> None:
    for seconds in samples:
        value = _clamp(seconds)
        histogram.record_value(value)
        window.record_value(value)
    samples.clear()


def _clamp(seconds: float) -> int:
    return min(_HIGHEST_US, max(_LOWEST_US, round(seconds * 1_000_000)))


def _summary(histogram: HdrHistogram) -> dict[str, Any]:
    count = histogram.get_total_count()
    summary: dict[str, Any] = {"count": count}
    for point in PERCENTILES:
        key = f"p{point:g}".replace(".", "_")
        summary[key] = histogram.get_value_at_percentile(point) if count else None
    summary["max"] = histogram.get_max_value() if count else None
    return summary
