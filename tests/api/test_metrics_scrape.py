"""/metrics scraped over a real socket after ticks and fires, parsed with prometheus_client's
parser: every figure of the performance page is there with a sane value; and the history
endpoint serves the sampler's rows."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.eventually import eventually
from tests.support.system import System, running_system

INFY = 408065

# The names the performance page, docs/operations.md and deploy/grafana/hmt.json rely on.
EXPECTED = {
    "hmt_ticks_processed_total",
    "hmt_ticker_ticks_total",
    "hmt_ticker_connections",
    "hmt_ticker_connected",
    "hmt_ticker_reconnects_total",
    "hmt_orders_placed_total",
    "hmt_orders_failed_total",
    "hmt_order_retries_total",
    "hmt_orders_queued",
    "hmt_rate_limit_headroom",
    "hmt_rate_limit",
    "hmt_tick_to_order_seconds_bucket",
    "hmt_tick_to_order_seconds_count",
    "hmt_evaluate_seconds_bucket",
    "hmt_claim_seconds_bucket",
    "hmt_claim_seconds_count",
    "hmt_latency_percentile_seconds",
    "hmt_change_feed_lag_seconds",
    "hmt_change_feed_changes_total",
    "hmt_health",
    "hmt_engine_state",
}


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples


async def scrape(system: System) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    # A client of its own over a real TCP connection to the served API.
    async with httpx.AsyncClient(base_url=system.api_url, timeout=10) as client:
        response = await client.get("/metrics", headers=system.auth(system.operator_token))
    assert response.status_code == 200
    return parse(response.text)


async def fire_some(system: System) -> list[dict[str, Any]]:
    system.push(INFY, "1600.00")
    fired = [await system.create(trigger_price_1=f"{1601 + k}.00") for k in range(3)]
    waiting = await system.create(trigger_price_1="9999.00")
    for price in ("1601.00", "1602.00", "1603.00"):
        system.push(INFY, price)
    for trigger in fired:
        await system.settled(trigger["id"])
    return [*fired, waiting]


async def test_metrics_carry_every_figure_of_the_performance_page(database_url: str) -> None:
    async with running_system(database_url) as system:
        triggers = await fire_some(system)
        if system.runtime.db.dialect == "postgresql":
            # An edit reaches the book through the change feed: its lag is measured.
            waiting = triggers[-1]
            edited = await system.client.patch(
                f"/triggers/{waiting['id']}",
                json={"trigger_price_1": "9990.00"},
                headers=system.auth(),
            )
            assert edited.status_code == 200, edited.text
            await eventually(lambda: system.runtime.engine.stats.changes_applied > 0)
        m = await scrape(system)

        assert set(m) >= EXPECTED, EXPECTED - set(m)
        assert m["hmt_orders_placed_total"][()] == 3
        assert m["hmt_orders_failed_total"][()] == 0
        assert m["hmt_order_retries_total"][()] == 0
        assert m["hmt_orders_queued"][()] == 0
        ticks = m["hmt_ticker_ticks_total"]
        assert (("connection", "0"),) in ticks
        assert sum(ticks.values()) >= 4
        assert m["hmt_ticks_processed_total"][()] >= 4
        assert m["hmt_ticker_connections"][()] == 1
        headroom, limit = m["hmt_rate_limit_headroom"], m["hmt_rate_limit"]
        assert limit == {
            (("window", "per_second"),): 10,
            (("window", "per_minute"),): 200,
            (("window", "per_day"),): 3000,
        }
        # Three orders answered within the last minute and day (maybe the last second too).
        assert headroom[(("window", "per_day"),)] == 2997
        assert headroom[(("window", "per_minute"),)] == 197
        assert 7 <= headroom[(("window", "per_second"),)] <= 10
        assert m["hmt_claim_seconds_count"][()] == 3
        assert m["hmt_tick_to_order_seconds_count"][()] == 3
        assert m["hmt_evaluate_seconds_count"][()] == 3
        p = m["hmt_latency_percentile_seconds"]
        for path in ("tick_to_order", "evaluate", "claim"):
            p50, p99 = (
                p[(("path", path), ("quantile", "0.5"))],
                p[(("path", path), ("quantile", "0.99"))],
            )
            assert 0 < p50 <= p99 < 10, (path, p50, p99)
        # A claim is part of tick-to-order: its worst cannot exceed tick-to-order's.
        assert (
            p[(("path", "claim"), ("quantile", "0.5"))]
            <= p[(("path", "tick_to_order"), ("quantile", "0.999"))]
        )
        lag = m["hmt_change_feed_lag_seconds"][()]
        if system.runtime.db.dialect == "postgresql":
            assert m["hmt_change_feed_changes_total"][()] >= 1
            assert 0 < lag < 10
        else:
            assert (lag, m["hmt_change_feed_changes_total"][()]) == (0, 0)
        assert m["hmt_health"][(("verdict", "ok"),)] == 1
        assert sum(m["hmt_health"].values()) == 1
        assert m["hmt_engine_state"][(("state", "running"),)] == 1


async def test_history_serves_the_sampler_rows(sqlite_url: str) -> None:
    """With a row a second, the history soon holds the fires and the ticks."""
    async with running_system(sqlite_url, metrics_sample_s=1) as system:
        assert (await system.client.get("/performance/history")).status_code == 401
        await fire_some(system)

        async def placed_in_history() -> list[dict[str, Any]] | None:
            response = await system.client.get("/performance/history", headers=system.auth())
            assert response.status_code == 200
            rows = response.json()["samples"]
            return rows if sum(row["orders_placed"] for row in rows) == 3 else None

        await eventually(placed_in_history, within=10, interval=0.2)
        body = (
            await system.client.get("/performance/history?hours=1", headers=system.auth())
        ).json()
        assert body["sample_s"] == 1
        rows = body["samples"]
        assert all(row["seconds"] == 1 for row in rows)
        assert sum(row["ticks"] for row in rows) >= 4
        assert any(row["tick_to_order_p99_us"] for row in rows)
        assert {row["health"] for row in rows} <= {"ok", "degraded", "down"}
        assert rows == sorted(rows, key=lambda row: row["at"])
        bad = await system.client.get("/performance/history?hours=48", headers=system.auth())
        assert bad.status_code == 422
        assert "hours" in bad.text
