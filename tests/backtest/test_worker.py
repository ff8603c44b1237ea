"""The backtest's own process: progress that adds up to every row, then the report; a
replay that fails says why; the chart series bounded."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hmt.api.offline import parse_triggers
from hmt.backtest import worker
from hmt.backtest.history import History
from hmt.core.calendar import IST
from hmt.kite.instruments import parse_dump
from hmt.sim.universe import Universe

INFY = 408065
MASTER = {int(i.instrument.id): i.instrument for i in parse_dump(Universe().instruments_csv())}
BODY = (
    '{"instrument_token": 408065, "exchange": "NSE", "tradingsymbol": "INFY",'
    ' "trigger_type": "single", "transaction_type": "BUY", "quantity": 1, "product": "MIS",'
    ' "trigger_price_1": "1700.00"}'
)


def _history(n: int) -> History:
    start = datetime(2026, 11, 27, 9, 15, tzinfo=IST)
    ticks = [(INFY, start + timedelta(milliseconds=k), 160_000 + k % 500 * 10) for k in range(n)]
    return History("ticks", ticks=ticks, sources=["test"])


def _messages(*args: Any) -> tuple[list[tuple[str, Any]], int | None]:
    process, messages = worker.start(*args)
    seen = []
    while True:
        try:
            seen.append(messages.recv())
        except EOFError:
            break
    process.join(timeout=10)
    return seen, process.exitcode


def test_a_run_in_its_own_process_reports_progress_then_the_report() -> None:
    triggers = parse_triggers(BODY, MASTER)
    seen, code = _messages(triggers, _history(25_000), MASTER, {}, 0)
    assert code == 0
    progress = [value for kind, value in seen if kind == "progress"]
    assert progress == [10_000, 10_000, 5_000]
    kind, done = seen[-1]
    assert kind == "done"
    assert done["report"]["summary"]["triggers"] == 1
    assert done["report"]["data"]["rows"] == 25_000
    assert len(done["series"]["NSE:INFY"]) <= worker.SERIES_POINTS + 1


def test_a_replay_that_fails_says_why() -> None:
    triggers = parse_triggers(BODY, MASTER)
    seen, _ = _messages(triggers, _history(10), MASTER, {}, -1)  # a negative slippage
    assert seen[-1][0] == "failed"
    assert "slippage" in seen[-1][1]


def test_the_series_keeps_the_last_point_and_at_most_its_bound() -> None:
    series = worker.series_of(_history(4_001), MASTER)["NSE:INFY"]
    assert len(series) <= worker.SERIES_POINTS + 1
    assert series[0][0] == "2026-11-27T09:15:00+05:30"
    assert series[-1][0] == "2026-11-27T09:15:04+05:30"
