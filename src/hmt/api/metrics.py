"""Prometheus `/metrics`: the engine's counters, triggers by status, tick-to-order latency.

Read at scrape time from the running engine and the database (a snapshot in a
fresh registry per scrape), so nothing on the tick path changes for metrics.
Needs an operator token unless HMT_METRICS_PUBLIC=true.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hmt.api.auth import scraper
from hmt.api.runtime import Runtime
from hmt.api.schemas import Problem
from hmt.core.events import EventKind
from hmt.core.lifecycle import TRIGGER_STATUSES
from hmt.engine.facade import Facade
from hmt.engine.service import EngineState
from hmt.store.counts import events_of_kind, triggers_by_status

router = APIRouter(tags=["engine"])

# Seconds; an order normally leaves within a few milliseconds of its tick.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Snapshot(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


@router.get(
    "/metrics",
    summary="Prometheus metrics (operator token unless HMT_METRICS_PUBLIC)",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        403: {"model": Problem, "description": "Not an operator token"},
    },
)
async def metrics(runtime: Runtime, _access: Annotated[None, Depends(scraper)]) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await families(runtime)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def families(runtime: Facade) -> list[Metric]:
    engine, stats = runtime.engine, runtime.engine.stats
    ticker = runtime.feed.status()
    by_status = await triggers_by_status(runtime.db)
    retries = await events_of_kind(runtime.db, EventKind.RETRY)

    def counter(name: str, doc: str, value: float) -> Metric:
        return CounterMetricFamily(name, doc, value=value)

    triggers = GaugeMetricFamily(
        "hmt_triggers", "Triggers by status (every user)", labels=["status"]
    )
    for status in TRIGGER_STATUSES:
        triggers.add_metric([status.value], by_status.get(status.value, 0))
    state = GaugeMetricFamily("hmt_engine_state", "1 for the engine's state", labels=["state"])
    for each in EngineState:
        state.add_metric([each.value], 1 if engine.state is each else 0)
    return [
        counter("hmt_ticks_processed", "Ticks the engine evaluated", stats.ticks_processed),
        counter("hmt_triggers_fired", "Trigger legs that fired", stats.triggers_fired),
        counter("hmt_orders_placed", "Orders the broker accepted", stats.triggered_orders),
        counter("hmt_orders_failed", "Triggers that ended failed", stats.failed_orders),
        counter(
            "hmt_order_retries",
            "Order attempts after the first (from the event history: survives restarts)",
            retries,
        ),
        counter("hmt_orders_unresolved", "Orders left for reconciliation", stats.unresolved),
        counter("hmt_ticker_reconnects", "Ticker reconnections", ticker.reconnects),
        GaugeMetricFamily(
            "hmt_ticker_connected", "1 while the ticker is connected", value=int(ticker.connected)
        ),
        GaugeMetricFamily(
            "hmt_active_triggers", "Triggers in the engine's book", value=len(engine.book)
        ),
        state,
        triggers,
        _latency(runtime),
    ]


def _latency(runtime: Facade) -> Metric:
    """The engine's HdrHistogram (microseconds) as cumulative Prometheus buckets."""
    histogram = runtime.engine.stats.tick_to_order
    recorded = [
        (item.value_iterated_to / 1_000_000, item.count_at_value_iterated_to)
        for item in histogram.get_recorded_iterator()
    ]
    total = histogram.get_total_count()
    buckets = [
        (str(bound), float(sum(n for value, n in recorded if value <= bound))) for bound in BUCKETS
    ]
    buckets.append(("+Inf", float(total)))
    return HistogramMetricFamily(
        "hmt_tick_to_order_seconds",
        "From a tick's arrival to its order being accepted",
        buckets=buckets,
        sum_value=histogram.get_mean_value() * total / 1_000_000,
    )
