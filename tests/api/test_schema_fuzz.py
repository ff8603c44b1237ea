"""RELIABILITY test 10: schemathesis against the live API's OpenAPI schema.

uvicorn serves the real runtime (simulator as Kite, SQLite) on loopback in a
background thread; schemathesis generates valid and invalid requests for every
operation, with an operator token, and checks each response. Stateful checks
(OpenAPI links, `use_after_free`) are not run: the schema has no links.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks
from sqlalchemy import func, select

from hmt.store.tables import gtt_orders, trigger_events
from tests.support.live import Live
from tests.support.system import System

CHECKS = [
    checks.not_a_server_error,
    checks.response_schema_conformance,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.negative_data_rejection,
    checks.ignored_auth,
]
SEEN: Counter[str] = Counter()
EXAMPLES = 12  # per operation and mode: about 500 requests, well inside the time budget


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Live, System]]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "hmt.db"
    server = Live(f"sqlite:///{path}", rate_limit_writes_per_min=0)
    with server as system:
        yield server, system
        orphans = server.run(_orphans(system))
        print(
            f"\nschemathesis: operations {len(SEEN)}, cases {sum(SEEN.values())}, "
            f"statuses {dict(sorted(_statuses.items()))}, 5xx {_statuses_5xx()}, "
            f"orphan events {orphans}; stateful links: not run"
        )
        assert orphans == 0


_statuses: Counter[int] = Counter()


def _statuses_5xx() -> int:
    return sum(n for code, n in _statuses.items() if code >= 500)


async def _orphans(system: System) -> int:
    """Events whose trigger does not exist, and triggers without their `created` event."""

    async def work(conn: Any) -> int:
        ids = select(gtt_orders.c.id)
        lost = select(func.count()).select_from(trigger_events)
        lost = lost.where(trigger_events.c.trigger_id.not_in(ids))
        created = select(trigger_events.c.trigger_id).where(trigger_events.c.kind == "created")
        bare = select(func.count()).select_from(gtt_orders).where(gtt_orders.c.id.not_in(created))
        return int(
            (await conn.execute(lost)).scalar_one() + (await conn.execute(bare)).scalar_one()
        )

    result: int = await system.runtime.db.transaction(work, write=False)
    return result


def test_api_conforms_to_its_schema(live: tuple[Live, System]) -> None:
    """No 5xx, every response as documented, invalid input refused, auth never ignored."""
    _server, system = live
    schema = schemathesis.openapi.from_url(f"{system.api_url}/openapi.json")
    headers = system.auth(system.operator_token)
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def run(case: Any) -> None:
                SEEN[f"{case.method} {case.path}"] += 1
                response = case.call_and_validate(headers=headers, checks=CHECKS, timeout=10)
                _statuses[response.status_code] += 1

            try:
                run()
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise
                # No parameters and no body (e.g. /health): nothing can be made invalid.
    assert _statuses_5xx() == 0
