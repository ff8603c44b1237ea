"""`run`: history of either kind fed to the core's replay, progress told as it goes."""

from __future__ import annotations

from datetime import datetime, timedelta

from hmt.backtest.history import History
from hmt.backtest.run import STEP, run
from hmt.core.calendar import IST
from hmt.core.instruments import Instrument
from hmt.core.types import Exchange, InstrumentToken, Side
from tests.support.factories import make_trigger

INFY = InstrumentToken(408065)
MASTER = {INFY: Instrument(INFY, Exchange.NSE, "INFY", 100, 5, 1)}
T0 = datetime(2026, 11, 27, 9, 15, tzinfo=IST)


def test_progress_adds_up_to_every_row_in_steps() -> None:
    rows = 2 * STEP + 123
    ticks = [(INFY, T0 + timedelta(milliseconds=n), 150_000 + 5 * (n % 7)) for n in range(rows)]
    told: list[int] = []
    stop = make_trigger(side=Side.SELL, trigger_price_1=150_000)
    result = run([stop], History("ticks", ticks=ticks), MASTER, progress=told.append)
    assert told == [STEP, STEP, 123]
    assert result.prices == rows
    assert result.outcomes[0].fired_at == T0
