"""deploy/grafana/hmt.json: every metric its panels and variables name is on a live /metrics,
and every label it groups by is one those metrics carry."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_metrics_scrape import fire_some
from tests.support.system import running_system

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "hmt.json"
METRIC = re.compile(r"\bhmt_[a-z0-9_]+\b")
GROUPING = re.compile(r"\bby \(([^)]*)\)")
# Added by Prometheus (job, instance) or by the histogram functions (le).
SCRAPE_LABELS = {"job", "instance", "le"}


def expressions(dashboard: dict[str, Any]) -> list[str]:
    found = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    found += [
        variable["query"]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    return found


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "hmt-engine"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
    assert all(METRIC.search(expr) for expr in expressions(dashboard))


async def test_every_metric_the_dashboard_names_is_on_metrics(sqlite_url: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    async with running_system(sqlite_url) as system:
        await fire_some(system)  # the latency percentiles exist once something fired
        response = await system.client.get("/metrics", headers=system.auth(system.operator_token))
    assert response.status_code == 200
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    missing, bad_groups = set(), []
    for expr in expressions(dashboard):
        names = set(METRIC.findall(expr))
        missing |= names - set(labels)
        carried = set().union(*(labels.get(name, set()) for name in names)) | SCRAPE_LABELS
        grouped = {part.strip() for group in GROUPING.findall(expr) for part in group.split(",")}
        bad_groups.extend((label, expr) for label in sorted(grouped - carried))
    assert missing == set(), f"the dashboard names metrics /metrics lacks: {sorted(missing)}"
    assert bad_groups == []
