"""The performance history's rows, and how fine rows fold into coarser ones.

A sample is one row of the engine's key figures over a window (`seconds`
long, starting `at`). The sampler writes a row every 10 s; rows older than an
hour are folded into one per minute, and rows older than a day are deleted
(docs/operations.md, "Performance history"). Folding keeps what an operator
looks for in a bad minute: rates are averaged, counts summed, latency
percentiles, queue depth and lag take the worst of the minute, headroom the
least, and the health verdict the worst seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# Verdicts from best to worst: a folded row keeps the worst of its rows.
VERDICT_ORDER = ("ok", "disabled", "degraded", "down")

MEAN = (
    "ticks_per_s",
    "ticks_per_s_by_connection",
)
SUM = ("orders_placed", "orders_failed", "order_retries", "reconnects", "ticks")
WORST = (
    "tick_to_order_p50_us",
    "tick_to_order_p99_us",
    "evaluate_p50_us",
    "evaluate_p99_us",
    "claim_p50_us",
    "claim_p99_us",
    "orders_queued",
    "change_feed_lag_ms",
)
LEAST = ("headroom_per_second", "headroom_per_minute", "headroom_per_day")
# Every figure a row carries; the page, /metrics and the Grafana board show these.
FIGURES = (*MEAN, *SUM, *WORST, *LEAST, "health")

Figures = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Sample:
    """The figures of the window [at, at + seconds)."""

    at: datetime
    seconds: int
    figures: Figures


def fold(rows: Sequence[Sample], at: datetime, seconds: int) -> Sample:
    """One row standing for `rows` (which lie within [at, at + seconds))."""
    if not rows:
        raise ValueError("nothing to fold")
    figures: dict[str, Any] = {}
    for name in MEAN:
        values = [row.figures.get(name) for row in rows]
        figures[name] = _mean(values)
    for name in SUM:
        figures[name] = sum(int(row.figures.get(name) or 0) for row in rows)
    for name in WORST:
        figures[name] = _extreme([row.figures.get(name) for row in rows], max)
    for name in LEAST:
        figures[name] = _extreme([row.figures.get(name) for row in rows], min)
    figures["health"] = worst_verdict(str(row.figures.get("health", "ok")) for row in rows)
    return Sample(at=at, seconds=seconds, figures=figures)


def fold_older(
    rows: Iterable[Sample], before: datetime, seconds: int
) -> tuple[list[Sample], list[Sample]]:
    """(folded rows, rows they replace): every row of a whole `seconds` bucket ending by `before`.

    Buckets are aligned to `seconds` since midnight UTC, so two compactions of the
    same data fold the same rows the same way. A bucket still open at `before` is
    left alone, its rows unfolded.
    """
    step = timedelta(seconds=seconds)
    buckets: dict[datetime, list[Sample]] = {}
    for row in rows:
        if row.seconds >= seconds:
            continue
        start = _floor(row.at, seconds)
        if start + step <= before:
            buckets.setdefault(start, []).append(row)
    folded = [
        fold(sorted(group, key=lambda r: r.at), start, seconds) for start, group in buckets.items()
    ]
    replaced = [row for group in buckets.values() for row in group]
    return sorted(folded, key=lambda r: r.at), replaced


def worst_verdict(verdicts: Iterable[str]) -> str:
    worst = 0
    for verdict in verdicts:
        rank = VERDICT_ORDER.index(verdict) if verdict in VERDICT_ORDER else len(VERDICT_ORDER) - 1
        worst = max(worst, rank)
    return VERDICT_ORDER[worst]


def _floor(at: datetime, seconds: int) -> datetime:
    midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
    into = (at - midnight) // timedelta(seconds=seconds)
    return midnight + into * timedelta(seconds=seconds)


def _mean(values: Sequence[Any]) -> Any:
    present = [value for value in values if value is not None]
    if not present:
        return None
    if isinstance(present[0], Mapping):
        keys = {key for value in present for key in value}
        return {
            key: round(sum(float(value.get(key, 0.0)) for value in present) / len(present), 3)
            for key in sorted(keys)
        }
    return round(sum(float(value) for value in present) / len(present), 3)


def _extreme(values: Sequence[Any], pick: Any) -> Any:
    present = [value for value in values if value is not None]
    return pick(present) if present else None
