"""The engine's counters and its tick-to-order latency histogram."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

# Microseconds, from 1 us to 60 s, three significant digits.
_LOWEST_US, _HIGHEST_US, _DIGITS = 1, 60_000_000, 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def _histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)


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
    _tick_to_order: HdrHistogram = field(default_factory=_histogram, repr=False)
    _evaluate: HdrHistogram = field(default_factory=_histogram, repr=False)
    _tick_to_order_s: list[float] = field(default_factory=list, repr=False)
    _evaluate_s: list[float] = field(default_factory=list, repr=False)

    def record_tick_to_order(self, seconds: float) -> None:
        """From the tick reaching the engine to its order request being written (claim included)."""
        self._tick_to_order_s.append(seconds)
        if len(self._tick_to_order_s) >= FOLD_EVERY:
            _fold(self._tick_to_order, self._tick_to_order_s)

    def record_evaluate(self, seconds: float) -> None:
        """The in-process path: decode, book, hand-off to the executor."""
        self._evaluate_s.append(seconds)
        if len(self._evaluate_s) >= FOLD_EVERY:
            _fold(self._evaluate, self._evaluate_s)

    @property
    def tick_to_order(self) -> HdrHistogram:
        """Every tick-to-order sample so far (us)."""
        _fold(self._tick_to_order, self._tick_to_order_s)
        return self._tick_to_order

    @property
    def evaluate(self) -> HdrHistogram:
        """Every evaluate sample so far (us)."""
        _fold(self._evaluate, self._evaluate_s)
        return self._evaluate

    def latency(self) -> dict[str, Any]:
        return {
            "tick_to_order_us": _summary(self.tick_to_order),
            "evaluate_us": _summary(self.evaluate),
        }


def _fold(histogram: HdrHistogram, samples: list[float]) -> None:
    for seconds in samples:
        histogram.record_value(_clamp(seconds))
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
