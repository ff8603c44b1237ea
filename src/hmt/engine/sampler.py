"""The performance history's sampler: every 10 s, one row of the engine's key figures.

Runs as a background loop of the supervisor, never on the tick path: it reads
counters the engine keeps anyway, takes the latency window the stats keep for
it, and hands the row to the store. Rates and counts are over the window since
the previous row; queue depth and headroom are as they stand when it is taken;
the verdict is the health monitor's. Every `compact_every` rows the store's
history is folded and bounded (hmt.store.samples.compact).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hmt.core.samples import Sample
from hmt.engine.health import Health
from hmt.engine.ports import FeedStatus
from hmt.engine.stats import EngineStats

INTERVAL_S = 10.0
COMPACT_EVERY = 6  # rows: once a minute at the default interval

# The broker's rate windows by length, as the history names them.
WINDOW_NAMES = {1.0: "per_second", 60.0: "per_minute", 86_400.0: "per_day"}


@dataclass(frozen=True, slots=True)
class _Reading:
    at: datetime
    ticks: int
    ticks_by_connection: dict[int, int]
    placed: int
    failed: int
    retries: int
    reconnects: int


class Sampler:
    """Takes one row at a time; the times come from `clock`, so tests inject them."""

    def __init__(
        self,
        *,
        stats: EngineStats,
        feed: Callable[[], FeedStatus],
        health: Callable[[], Health],
        write: Callable[[Sample], Awaitable[object]],
        compact: Callable[[datetime], Awaitable[object]],
        clock: Callable[[], datetime],
        interval: float = INTERVAL_S,
        compact_every: int = COMPACT_EVERY,
    ) -> None:
        self.stats = stats
        self._feed = feed
        self._health = health
        self._write = write
        self._compact = compact
        self._clock = clock
        self.interval = interval
        self._compact_every = compact_every
        self._taken = 0
        self._last: _Reading | None = None

    def begin(self) -> None:
        """Start the first window now (the stats' latency window with it)."""
        self.stats.take_window()
        self.stats.change_feed_lag_max_s = 0.0
        self._last = self._read()

    async def sample(self) -> Sample:
        """Write the row of the window since the last one (or since `begin`)."""
        if self._last is None:
            self.begin()
        assert self._last is not None
        now = self._read()
        row = self._row(self._last, now)
        self._last = now
        await self._write(row)
        self._taken += 1
        if self._taken % self._compact_every == 0:
            await self._compact(now.at)
        return row

    def _read(self) -> _Reading:
        stats, feed = self.stats, self._feed()
        return _Reading(
            at=self._clock(),
            ticks=feed.ticks,
            ticks_by_connection=dict(feed.ticks_by_connection),
            placed=stats.triggered_orders,
            failed=stats.failed_orders,
            retries=stats.retries,
            reconnects=feed.reconnects,
        )

    def _row(self, last: _Reading, now: _Reading) -> Sample:
        stats = self.stats
        elapsed = max((now.at - last.at).total_seconds(), 1e-6)
        window = stats.take_window()
        lag = stats.change_feed_lag_max_s
        stats.change_feed_lag_max_s = 0.0
        figures: dict[str, Any] = {
            "ticks": now.ticks - last.ticks,
            "ticks_per_s": round((now.ticks - last.ticks) / elapsed, 3),
            "ticks_per_s_by_connection": {
                str(link): round((count - last.ticks_by_connection.get(link, 0)) / elapsed, 3)
                for link, count in sorted(now.ticks_by_connection.items())
            },
            "orders_placed": now.placed - last.placed,
            "orders_failed": now.failed - last.failed,
            "order_retries": now.retries - last.retries,
            "reconnects": now.reconnects - last.reconnects,
            "orders_queued": stats.orders_queued,
            "change_feed_lag_ms": round(lag * 1000, 3),
            "health": self._health().verdict.value,
        }
        for name, summary in window.items():
            figures[f"{name}_p50_us"] = summary["p50"]
            figures[f"{name}_p99_us"] = summary["p99"]
        for limit, left in stats.headroom():
            figures[f"headroom_{WINDOW_NAMES.get(limit.seconds, f'{limit.seconds:g}s')}"] = left
        return Sample(at=last.at, seconds=max(1, round(elapsed)), figures=figures)
