"""The backtest over HTTP (the UI's Backtest page) and the broker's candles for the charts.

    GET  /instruments/{token}/candles   the broker's historical candles (default: today)
    POST /backtests                     check the input, start a run: 202 {id, ...}
    GET  /backtests/{id}                its progress, then its report and chart series

A run is the CLI's (`hmt backtest`, docs/backtest.md): triggers in the API's
request format (or the caller's stored active and paused ones), history from a
CSV upload, the broker's candles or the engine's tick recording. Everything
that can be wrong with the input is found before the 202, as a 422 naming the
field (a CSV's row as `csv` with its line and column). The replay then runs
in a process of its own (hmt.backtest.worker), followed from a worker thread,
one at a time per user and two at most in all (more is a 429): never on the
engine's loop, nor in its interpreter. The last few runs are kept in
memory for their owner.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from hmt.api.auth import Caller
from hmt.api.offline import parse_triggers
from hmt.api.runtime import Runtime
from hmt.api.schemas import Problem
from hmt.backtest import worker
from hmt.backtest.history import INTERVALS, History, HistoryError, from_candles, read_ticks
from hmt.backtest.history import read_candles as read_candle_csv
from hmt.backtest.recording import read_recording
from hmt.config import ConfigError
from hmt.core.broker import BrokerError
from hmt.core.calendar import IST, sessions
from hmt.core.candles import Candle
from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.instruments import Instrument, Listing
from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.prices import to_decimal

router = APIRouter(tags=["backtest"])
Responses = dict[int | str, dict[str, Any]]
_P = {"model": Problem}
CANDLES: Responses = {
    404: {**_P, "description": "Not in today's instrument list"},
    422: {**_P, "description": "A parameter broke a rule"},
    501: {**_P, "description": "This broker serves no historical candles"},
    502: {**_P, "description": "The broker's historical API failed"},
}
STARTED: Responses = {
    404: {**_P, "description": "An instrument is not in today's list"},
    422: {**_P, "description": "A field broke a rule (a CSV row: its line and column)"},
    429: {**_P, "description": "Your backtest (or two others) is running"},
    501: CANDLES[501],
    502: CANDLES[502],
}
FOUND: Responses = {404: {**_P, "description": "No such backtest of yours"}}

KEPT = 20  # finished runs kept in memory
RUNNING = 2  # replays at once, in all: each holds a worker thread


def _invalid(field_name: str, rule: str, message: str) -> InvalidTrigger:
    return InvalidTrigger([FieldError(field_name, rule, message)])


# --- the broker's candles ------------------------------------------------------------------


def _listing(listings: Sequence[Listing], token: int) -> Listing:
    for item in listings:
        if int(item.instrument.id) == token:
            return item
    raise HTTPException(404, f"instrument {token} is not in today's instrument list")


def _candle_out(candle: Candle, divisor: int) -> dict[str, str]:
    return {
        "at": candle.at.isoformat(),
        "open": str(to_decimal(candle.open, divisor)),
        "high": str(to_decimal(candle.high, divisor)),
        "low": str(to_decimal(candle.low, divisor)),
        "close": str(to_decimal(candle.close, divisor)),
    }


async def _fetch(
    runtime: Runtime, instrument: Instrument, interval: str, start: datetime, end: datetime
) -> list[Candle]:
    try:
        return await runtime.candles(instrument, interval, start, end)
    except ConfigError as error:
        raise HTTPException(501, str(error)) from None
    except BrokerError as error:
        raise HTTPException(502, f"the broker's historical API: {error}") from None


def latest_session(exchange: str, now: datetime) -> tuple[datetime, datetime]:
    """The exchange's session going on at `now`, else the last one before it (its open, and
    `now` or its close): the chart's "today" before the open is the last trading day."""
    day = now.astimezone(IST).date()
    for back in range(15):
        hours = sessions(exchange, day - timedelta(days=back))
        if hours and hours[0][0] <= now:
            return hours[0][0], min(now, hours[-1][1])
    return now - timedelta(days=1), now  # no calendar this far back: the last day


@router.get(
    "/instruments/{token}/candles",
    summary="The broker's historical candles of an instrument (default: today's session so far)",
    responses=CANDLES,
)
async def candles(
    runtime: Runtime,
    _caller: Caller,
    token: Annotated[int, Path(ge=1)],
    interval: Annotated[str, Query(description="minute, 3minute, ... day")] = "minute",
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    if interval not in INTERVALS:
        raise _invalid("interval", "enum", f"one of {', '.join(INTERVALS)}")
    for name, value in (("from", start), ("to", end)):
        if value is not None and value.utcoffset() is None:
            raise _invalid(name, "timezone", "give the time with its offset (+05:30)")
    listing = _listing(await runtime.instruments.listings(), token)
    instrument = listing.instrument
    if start is None or end is None:
        opens, closes = latest_session(str(instrument.exchange), end or datetime.now(UTC))
        start, end = start or opens, end or closes
    if start > end:
        raise _invalid("from", "order", "must not be after `to`")
    found = await _fetch(runtime, instrument, interval, start, end)
    return {
        "instrument_token": token,
        "exchange": str(instrument.exchange),
        "tradingsymbol": instrument.tradingsymbol,
        "interval": interval,
        "candles": [_candle_out(c, instrument.price_divisor) for c in found],
    }


# --- the backtest --------------------------------------------------------------------------


class BacktestIn(BaseModel):
    """One run: which triggers, which history, and the fill model's slippage."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    triggers: list[dict[str, Any]] | None = Field(
        None, description="create bodies as POST /triggers takes them; null: your stored ones"
    )
    source: Literal["csv", "candles", "recording"]
    csv: str | None = Field(None, description="source csv: ticks or candles (docs/backtest.md)")
    instruments: list[str] | None = Field(
        None, description="source candles: EXCHANGE:TRADINGSYMBOL or tokens", max_length=20
    )
    interval: str = "minute"
    start: datetime | None = Field(None, alias="from")
    end: datetime | None = Field(None, alias="to")
    slippage_ticks: int = Field(0, ge=0, le=100)


@dataclass
class Job:
    id: str
    user_id: str
    total: int
    state: str = "running"  # running, done, failed
    done: int = 0
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    result: dict[str, Any] | None = None
    error: str | None = None

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "started_at": self.started.isoformat(),
        }
        if self.error is not None:
            out["error"] = self.error
        if self.result is not None:
            out.update(self.result)
        return out


class Jobs:
    """The runs this API holds: one replaying at a time, the last `KEPT` kept."""

    def __init__(self) -> None:
        self.by_id: OrderedDict[str, Job] = OrderedDict()
        self.lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[None]] = set()

    def busy(self, user_id: str) -> str | None:
        """Why another run cannot start now: one per user, `RUNNING` in all."""
        running = [job for job in self.by_id.values() if job.state == "running"]
        if any(job.user_id == user_id for job in running):
            return "your backtest is running: wait for it to finish"
        if len(running) >= RUNNING:
            return "backtests are running: try again when one has finished"
        return None

    def add(self, job: Job) -> None:
        self.by_id[job.id] = job
        while len(self.by_id) > KEPT:
            oldest = next(iter(self.by_id.values()))
            if oldest.state == "running":
                break
            self.by_id.popitem(last=False)


def _jobs(request: Request) -> Jobs:
    jobs: Jobs | None = getattr(request.app.state, "backtests", None)
    if jobs is None:
        jobs = request.app.state.backtests = Jobs()
    return jobs


def _time_of(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise _invalid(name, "timezone", "give the time with its offset (+05:30)")
    return value


async def _stored(runtime: Runtime, user_id: str) -> list[Trigger]:
    found: list[Trigger] = []
    for status in (Status.ACTIVE, Status.PAUSED):
        after = None
        while True:
            page = await runtime.triggers.list(user_id, status=status, limit=500, after=after)
            found += [record.trigger for record in page]
            if len(page) < 500:
                break
            after = (page[-1].created_at, page[-1].trigger.id)
    return found[::-1]


def _resolve(names: Sequence[str], master: Mapping[int, Instrument]) -> list[Instrument]:
    by_key = {f"{i.exchange}:{i.tradingsymbol}": i for i in master.values()}
    chosen = []
    for n, name in enumerate(names):
        text = name.strip()
        found = master.get(int(text)) if text.isdigit() else by_key.get(text)
        if found is None:
            raise _invalid(
                f"instruments[{n}]", "unknown", f"{text!r} is not in the instrument list"
            )
        chosen.append(found)
    return chosen


async def _history(runtime: Runtime, body: BacktestIn, master: Mapping[int, Instrument]) -> History:
    start, end = _time_of("from", body.start), _time_of("to", body.end)
    if start is not None and end is not None and start > end:
        raise _invalid("from", "order", "must not be after `to`")
    if body.interval not in INTERVALS:
        raise _invalid("interval", "enum", f"one of {', '.join(INTERVALS)}")
    try:
        if body.source == "csv":
            if not body.csv:
                raise _invalid("csv", "missing", "upload a CSV of ticks or of candles")
            text = body.csv
            head = text.split("\n", 1)[0].lower()
            if "open" in head:
                return await asyncio.to_thread(
                    read_candle_csv, text, "csv", master, interval=INTERVALS[body.interval]
                )
            return await asyncio.to_thread(read_ticks, text, "csv", master)
        if body.source == "recording":
            directory = runtime.settings.record_ticks
            if directory is None:
                raise _invalid(
                    "source", "not_recording", "this engine records no ticks (HMT_RECORD_TICKS)"
                )
            return await asyncio.to_thread(read_recording, directory, master, start=start, end=end)
    except HistoryError as error:
        raise _invalid("csv" if body.source == "csv" else "source", "history", str(error)) from None
    if not body.instruments:
        raise _invalid("instruments", "missing", "name the instruments whose candles to replay")
    if start is None or end is None:
        raise _invalid("from" if start is None else "to", "missing", "candles need a period")
    chosen = _resolve(body.instruments, master)
    series = {int(i.id): await _fetch(runtime, i, body.interval, start, end) for i in chosen}
    try:
        return from_candles(series, INTERVALS[body.interval], "broker candles")
    except HistoryError as error:
        raise _invalid("instruments", "history", str(error)) from None


@router.post(
    "/backtests",
    status_code=202,
    summary="Start a backtest; GET it for its progress and report",
    responses=STARTED,
)
async def start_backtest(
    runtime: Runtime, caller: Caller, body: BacktestIn, request: Request
) -> dict[str, Any]:
    jobs = _jobs(request)
    listings = await runtime.instruments.listings()
    master = {int(item.instrument.id): item.instrument for item in listings}
    kinds = {int(item.instrument.id): item.kind for item in listings}
    if body.triggers is None:
        chosen = await _stored(runtime, caller.user_id)
        if not chosen:
            raise _invalid("triggers", "empty", "you have no active or paused triggers")
    else:
        if not body.triggers:
            raise _invalid("triggers", "empty", "give at least one trigger")
        chosen = parse_triggers(json.dumps(body.triggers), master, user_id=caller.user_id)
    data = await _history(runtime, body, master)
    if not len(data):
        raise _invalid("source", "empty", "no prices in the chosen history and period")
    async with jobs.lock:
        busy = jobs.busy(caller.user_id)
        if busy is not None:
            raise HTTPException(429, busy)
        job = Job(uuid.uuid4().hex, caller.user_id, total=len(data))
        jobs.add(job)
    task = asyncio.get_running_loop().create_task(
        _replay(job, chosen, data, master, kinds, body.slippage_ticks)
    )
    jobs.tasks.add(task)
    task.add_done_callback(jobs.tasks.discard)
    return job.view()


async def _replay(
    job: Job,
    triggers: list[Trigger],
    data: History,
    master: Mapping[int, Instrument],
    kinds: Mapping[int, str],
    slippage: int,
) -> None:
    """Run the replay in a process of its own; follow it from a worker thread."""

    def follow() -> None:
        process, messages = worker.start(triggers, data, master, kinds, slippage)
        try:
            while True:
                try:
                    kind, value = messages.recv()
                except EOFError:
                    break
                if kind == "progress":
                    job.done += value  # read by GET on the API's loop: a plain int
                elif kind == "done":
                    job.result, job.state = value, "done"
                else:
                    job.state, job.error = "failed", value
        finally:
            messages.close()
            process.join(timeout=5)
        if job.state == "running":
            job.state, job.error = "failed", f"the replay's process ended ({process.exitcode})"

    try:
        await asyncio.to_thread(follow)
    except Exception as error:  # a replay that cannot start must not stay running
        job.state, job.error = "failed", f"{type(error).__name__}: {error}"


@router.get(
    "/backtests/{backtest_id}",
    summary="A backtest's progress, then its report",
    responses=FOUND,
)
async def get_backtest(caller: Caller, backtest_id: str, request: Request) -> dict[str, Any]:
    job = _jobs(request).by_id.get(backtest_id)
    if job is None or job.user_id != caller.user_id:
        raise HTTPException(404, "no such backtest of yours")
    return job.view()
