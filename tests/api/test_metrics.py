"""Prometheus /metrics: operator-only by default, public by setting, figures from the engine."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.system import running_system

INFY = 408065


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_need_an_operator_and_count_ticks_orders_statuses_latency(
    sqlite_url: str,
) -> None:
    """No token 401, a user's 403; the operator sees a fired trigger in every figure."""
    async with running_system(sqlite_url) as system:
        assert (await system.client.get("/metrics")).status_code == 401
        assert (await system.client.get("/metrics", headers=system.auth())).status_code == 403
        system.push(INFY, "1600.00")
        trigger = await system.create(trigger_price_1="1610.00")
        await system.create(trigger_price_1="9999.00")
        system.push(INFY, "1610.00")
        await system.settled(trigger["id"])
        response = await system.client.get("/metrics", headers=system.auth(system.operator_token))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples = _samples(response.text)
        assert samples[("hmt_ticks_processed_total", ())] >= 2
        assert samples[("hmt_orders_placed_total", ())] == 1
        assert samples[("hmt_orders_failed_total", ())] == 0
        assert samples[("hmt_order_retries_total", ())] == 0
        assert samples[("hmt_ticker_reconnects_total", ())] >= 0
        assert samples[("hmt_triggers", (("status", "placed"),))] == 1
        assert samples[("hmt_triggers", (("status", "active"),))] == 1
        assert samples[("hmt_tick_to_order_seconds_count", ())] == 1
        assert samples[("hmt_tick_to_order_seconds_bucket", (("le", "+Inf"),))] == 1
        assert samples[("hmt_engine_state", (("state", "running"),))] == 1


async def test_metrics_can_be_made_public(sqlite_url: str) -> None:
    """HMT_METRICS_PUBLIC=true lets a scraper in without a token."""
    async with running_system(sqlite_url, metrics_public=True) as system:
        response = await system.client.get("/metrics")
        assert response.status_code == 200
        assert "hmt_ticks_processed_total" in response.text
