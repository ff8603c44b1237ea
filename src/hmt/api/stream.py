"""The live stream (Server-Sent Events): one user's prices, trigger changes and engine status.

The caller authenticates with the same `Authorization: Bearer` header as every
other route (the UI reads the stream with fetch(), not EventSource, so the
token never goes into a URL or an access log). A stream lasts at most
`STREAM_MAX_S`; the client reconnects, which re-checks the token (a revoked
one is refused then) and lets the server shut down without waiting on
viewers.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from hmt.api.accounts import Listed, listed_accounts, with_sessions
from hmt.api.auth import Caller
from hmt.api.runtime import Runtime
from hmt.api.schemas import TriggerRecordOut
from hmt.api.schemas import watched as watched_by
from hmt.core.lifecycle import Status
from hmt.core.prices import to_decimal
from hmt.engine.events import PriceEvent, TriggerChanged
from hmt.engine.facade import Facade
from hmt.store.records import TriggerRecord
from hmt.store.triggers import TriggerNotFound

router = APIRouter(tags=["stream"])
STREAM_MAX_S = 30.0
ENGINE_EVERY_S = 1.0
RETRY_MS = 1000
LIVE = (Status.ACTIVE, Status.PAUSED, Status.TRIGGERED)  # the statuses whose prices matter
PAGE = 500


# Not in the OpenAPI schema: a stream never ends on its own, which schema-driven
# fuzzers cannot handle; docs/ui.md describes its events.
@router.get("/stream", include_in_schema=False, response_class=StreamingResponse)
async def stream(runtime: Runtime, caller: Caller) -> StreamingResponse:
    """`event: engine|price|trigger|bye` lines, each with one JSON object as data."""
    return StreamingResponse(
        _events(runtime, caller.user_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(runtime: Facade, user_id: str) -> AsyncIterator[str]:
    subscription = runtime.engine.events.subscribe()
    try:
        statuses: dict[str, Status] = {}
        # The instruments of this viewer's own triggers, each with the divisor its
        # triggers carry: a price is only ever shown for one of them, so the
        # stream formats it without knowing how a broker encodes its tokens.
        watched: dict[int, int] = {}
        for record in await _live_triggers(runtime, user_id):
            statuses[record.trigger.id] = record.trigger.status
            shown = watched_by(record)  # a v2 trigger's prices are the watched instrument's
            watched[shown.id] = shown.price_divisor
        # Read once per stream (it lasts STREAM_MAX_S): an account linked meanwhile is
        # listed from the viewer's next connection; the states are read every second.
        accounts = await listed_accounts(runtime, user_id)
        yield f"retry: {RETRY_MS}\n\n"
        ticks = runtime.engine.stats.ticks_processed
        yield _sse("engine", _engine(runtime, 0.0, accounts))
        for token in sorted(watched):
            last = runtime.engine.last_ltp.get(token)
            if last is not None:
                yield _sse("price", _price(token, last, watched[token]))
        started = time.monotonic()
        next_engine = started + ENGINE_EVERY_S
        while (now := time.monotonic()) < started + STREAM_MAX_S:
            event = await subscription.next(within=max(0.0, next_engine - now))
            if isinstance(event, PriceEvent) and event.instrument_token in watched:
                divisor = watched[event.instrument_token]
                yield _sse("price", _price(event.instrument_token, event.ltp, divisor))
            elif isinstance(event, TriggerChanged) and event.user_id == user_id:
                changed = await _own(runtime, user_id, event.trigger_id)
                if (
                    changed is not None
                    and statuses.get(changed.trigger.id) != changed.trigger.status
                ):
                    statuses[changed.trigger.id] = changed.trigger.status
                    shown = watched_by(changed)
                    watched[shown.id] = shown.price_divisor
                    yield _sse("trigger", TriggerRecordOut.of(changed).model_dump(mode="json"))
            if (now := time.monotonic()) >= next_engine:
                current = runtime.engine.stats.ticks_processed
                rate = (current - ticks) / (ENGINE_EVERY_S + now - next_engine)
                ticks, next_engine = current, now + ENGINE_EVERY_S
                yield _sse("engine", _engine(runtime, rate, accounts))
        yield _sse("bye", {"reason": "stream lifetime reached: reconnect"})
    finally:
        subscription.close()


async def _live_triggers(runtime: Facade, user_id: str) -> list[TriggerRecord]:
    found: list[TriggerRecord] = []
    for status in LIVE:
        offset = 0
        while True:
            page = await runtime.triggers.list(user_id, status=status, limit=PAGE, offset=offset)
            found.extend(page)
            if len(page) < PAGE:
                break
            offset += PAGE
    return found


async def _own(runtime: Facade, user_id: str, trigger_id: str) -> TriggerRecord | None:
    try:
        record: TriggerRecord = await runtime.triggers.get(user_id, trigger_id)
    except TriggerNotFound:
        return None
    return record


def _engine(runtime: Facade, ticks_per_s: float, accounts: list[Listed]) -> dict[str, Any]:
    health = runtime.health()
    return {
        **runtime.stats(),
        "ticks_per_s": round(ticks_per_s, 1),
        "health": {"status": health.verdict.value, "reasons": list(health.reasons)},
        # The viewer's accounts as GET /accounts lists them, each with its session now.
        "accounts": [a.model_dump() for a in with_sessions(runtime, accounts)],
    }


def _price(token: int, ltp: int, divisor: int) -> dict[str, Any]:
    return {"instrument_token": token, "ltp": str(to_decimal(ltp, divisor))}


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
