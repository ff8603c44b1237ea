"""`hmt status`: the running engine's health and the day's counts, for a terminal or a script.

The health is asked of the running API (GET /health, public) where `hmt run`
listens (HMT_HOST, HMT_PORT, or HMT_PUBLIC_URL, or --url). The day's counts
are read from the database (HMT_DATABASE_URL), so they are there even when the
engine is not: that is when they are wanted most. The day is IST's.
Exit status: 0 when the verdict is ok, 1 otherwise (degraded, down, disabled,
or the API not answering), so a script or cron job can act on it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import typer

from hmt.cli import app
from hmt.cli.run import settings_or_exit

USES = ("database_url", "host", "port", "public_url")
# The events counted for the day, in the order shown.
SHOWN = ("fired", "placed", "failed", "retry", "missed_touch", "expired", "cancelled")


@app.command()
def status(
    url: str | None = typer.Option(
        None, help="The API's address [default: HMT_PUBLIC_URL, else http://HMT_HOST:HMT_PORT]."
    ),
) -> None:
    """Print the engine's health and today's counts (fired, placed, failed, ...)."""
    import httpx

    from hmt.core.calendar import IST
    from hmt.store.counts import events_since, triggers_by_status
    from hmt.store.db import Database, create_engine

    settings = settings_or_exit(USES)
    base = (url or settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    healthy = False
    try:
        answer = httpx.get(f"{base}/health", timeout=5)
        body: dict[str, Any] = answer.json()
        verdict = str(body.get("status", "unknown"))
        healthy = verdict == "ok"
        typer.echo(f"engine: {verdict} ({base})")
        for reason in body.get("reasons", []):
            typer.echo(f"  - {reason}")
    except (httpx.HTTPError, ValueError) as error:
        typer.echo(f"engine: not answering at {base} ({type(error).__name__}): is `hmt run` up?")

    today = datetime.now(UTC).astimezone(IST)
    midnight = today.replace(hour=0, minute=0, second=0, microsecond=0)

    async def counts() -> tuple[dict[str, int], dict[str, int]]:
        engine = create_engine(settings.database_url, application_name="hmt-status")
        try:
            db = Database(engine)
            return await events_since(db, midnight), await triggers_by_status(db)
        finally:
            await engine.dispose()

    try:
        events, statuses = asyncio.run(counts())
    except Exception as error:  # the database may be down too: say so, do not trace back
        typer.echo(f"database: unreadable ({type(error).__name__}: {error})")
        raise typer.Exit(code=1) from None
    shown = ", ".join(f"{kind.replace('_', ' ')} {events.get(kind, 0)}" for kind in SHOWN)
    typer.echo(f"today ({midnight:%Y-%m-%d} IST): {shown}")
    live = ", ".join(f"{name} {n}" for name, n in sorted(statuses.items())) or "none"
    typer.echo(f"triggers: {live}")
    raise typer.Exit(code=0 if healthy else 1)
