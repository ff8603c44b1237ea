"""Prometheus `/metrics`: every figure of the performance page, under stable names.

Ticks per connection, the latency paths (histograms and the engine's exact
percentiles), orders placed, failed, retried and queued, headroom under the
broker's rate limits, claim latency, change-feed lag, reconnects and the
health verdict; docs/operations.md lists them, deploy/grafana/hmt.json charts them.

Read at scrape time from the running engine and the database (a snapshot in a
fresh registry per scrape), so nothing on the tick path changes for metrics.
Needs an operator token unless HMT_METRICS_PUBLIC=true.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

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
from hmt.engine.health import Verdict
from hmt.engine.sampler import WINDOW_NAMES
from hmt.engine.service import EngineState
from hmt.engine.stats import PERCENTILES
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
    health = runtime.health()
    verdict = GaugeMetricFamily(
        "hmt_health", "1 for the health verdict (ok, degraded, down, disabled)", labels=["verdict"]
    )
    for each_verdict in Verdict:
        verdict.add_metric([each_verdict.value], 1 if health.verdict is each_verdict else 0)
    ticks = CounterMetricFamily(
        "hmt_ticker_ticks", "Prices received, by ticker connection", labels=["connection"]
    )
    for link, count in sorted(ticker.ticks_by_connection.items()):
        ticks.add_metric([str(link)], count)
    headroom = GaugeMetricFamily(
        "hmt_rate_limit_headroom",
        "Orders the broker's rate window would still take now (0: the next one queues)",
        labels=["window"],
    )
    limit = GaugeMetricFamily(
        "hmt_rate_limit", "The broker's order limit of each rate window", labels=["window"]
    )
    for window, left in stats.headroom():
        name = WINDOW_NAMES.get(window.seconds, f"{window.seconds:g}s")
        headroom.add_metric([name], left)
        limit.add_metric([name], window.count)
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
        GaugeMetricFamily(
            "hmt_ticker_connections", "Ticker sockets open", value=ticker.connections
        ),
        ticks,
        GaugeMetricFamily(
            "hmt_orders_queued",
            "Orders waiting for a slot of the rate limits",
            value=stats.orders_queued,
        ),
        headroom,
        limit,
        GaugeMetricFamily(
            "hmt_change_feed_lag_seconds",
            "From the last change notification's arrival to the book in step (PostgreSQL)",
            value=stats.change_feed_lag_s,
        ),
        counter(
            "hmt_change_feed_changes",
            "Change notifications applied to the book",
            stats.changes_applied,
        ),
        state,
        verdict,
        triggers,
        _histogram(
            "hmt_tick_to_order_seconds",
            "From a tick's arrival to its order being accepted",
            stats.tick_to_order,
        ),
        _histogram("hmt_evaluate_seconds", "A firing tick's in-process path", stats.evaluate),
        _histogram("hmt_claim_seconds", "A claim's transaction, start to commit", stats.claim),
        _percentiles(runtime),
        *_notices(runtime),
    ]


def _notices(runtime: Facade) -> list[Metric]:
    """The notifier's figures (docs/notifications.md); none without notifications."""
    figures = runtime.stats().get("notifications")
    if not figures:
        return []
    out: list[Metric] = [
        CounterMetricFamily(f"hmt_notify_{name}", doc, value=figures[name])
        for name, doc in (
            ("sent", "Notices delivered to a channel"),
            ("failed", "Deliveries given up (attempts spent, or refused)"),
            ("refused", "Deliveries the outbound-address rule refused (RELIABILITY 23)"),
            ("retried", "Delivery attempts after a failure"),
            ("dropped", "Queued notices dropped, the oldest first, because the queue was full"),
        )
    ]
    waiting = figures["queued"]
    out.append(GaugeMetricFamily("hmt_notify_queued", "Notices waiting to be sent", value=waiting))
    return out


def _percentiles(runtime: Facade) -> Metric:
    """The engine's exact (HDR) percentiles since start, as /stats and the page show them."""
    family = GaugeMetricFamily(
        "hmt_latency_percentile_seconds",
        "Latency percentiles since start (tick_to_order, evaluate, claim); absent before a sample",
        labels=["path", "quantile"],
    )
    latency = runtime.engine.stats.latency()
    for path in ("tick_to_order", "evaluate", "claim"):
        summary = latency[f"{path}_us"]
        for point in PERCENTILES:
            value = summary[f"p{point:g}".replace(".", "_")]
            if value is not None:
                family.add_metric([path, f"{point / 100:g}"], value / 1_000_000)
    return family


def _histogram(name: str, doc: str, histogram: Any) -> Metric:
    """An HdrHistogram (microseconds) as cumulative Prometheus buckets."""
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
        name,
        doc,
        buckets=buckets,
        sum_value=histogram.get_mean_value() * total / 1_000_000,
    )
