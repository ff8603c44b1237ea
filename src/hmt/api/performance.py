"""The performance history: `GET /performance/history`, the page's last-24-hours view.

The rows the engine's sampler wrote (hmt.store.samples), oldest first: 10-s
rows for the last hour, one a minute before that. The live view adds the
stream's `engine` event (every second) to the end.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from hmt.api.auth import Caller
from hmt.api.runtime import Runtime
from hmt.store import samples

router = APIRouter(tags=["engine"])


@router.get(
    "/performance/history",
    summary="This engine's performance history (10-s rows for an hour, then one a minute)",
)
async def history(
    runtime: Runtime,
    _caller: Caller,
    hours: Annotated[float, Query(gt=0, le=24, description="how far back, at most 24")] = 24,
) -> dict[str, Any]:
    engine = runtime.settings.engine_instance()
    since = datetime.now(UTC) - timedelta(hours=hours)
    rows = await samples.read(runtime.db, engine, since)
    return {
        "engine": engine,
        "sample_s": runtime.settings.metrics_sample_s,
        "samples": [
            {"at": row.at.isoformat(), "seconds": row.seconds, **row.figures} for row in rows
        ],
    }
