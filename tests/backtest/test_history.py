"""History from CSV: every bad row named by file, line and column; holes listed, never skipped."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hmt.backtest.history import (
    HistoryError,
    from_candles,
    merged,
    read_candles,
    read_ticks,
)
from hmt.core.candles import Candle
from hmt.core.instruments import Instrument
from hmt.core.types import Exchange, InstrumentToken

INFY, RELIANCE = InstrumentToken(408065), InstrumentToken(738561)
MASTER = {
    INFY: Instrument(INFY, Exchange.NSE, "INFY", 100, 5, 1),
    RELIANCE: Instrument(RELIANCE, Exchange.NSE, "RELIANCE", 100, 10, 1),
}
MINUTE = timedelta(minutes=1)
HEAD = "timestamp,instrument,open,high,low,close,volume\n"


def candles(*rows: str) -> str:
    return HEAD + "".join(row + "\n" for row in rows)


def refused(text: str, *, ticks: bool = False) -> HistoryError:
    def read() -> object:
        if ticks:
            return read_ticks(text, "day.csv", MASTER)
        return read_candles(text, "day.csv", MASTER, interval=MINUTE)

    with pytest.raises(HistoryError) as caught:
        read()
    return caught.value


def test_ticks_read_by_token_or_symbol_in_wire_units() -> None:
    got = read_ticks(
        "timestamp,instrument,price\n"
        "2026-11-27T09:15:00+05:30,408065,1550.05\n"
        "2026-11-27T09:15:00+05:30,NSE:RELIANCE,1390\n"
        "2026-11-27T09:15:01+0530,NSE:INFY,1550.10\n",
        "t.csv",
        MASTER,
    )
    assert [(token, price) for token, _, price in got.ticks] == [
        (INFY, 155005), (RELIANCE, 139000), (INFY, 155010),
    ]  # fmt: skip
    assert got.holes == []


@pytest.mark.parametrize(
    ("row", "line", "column", "problem"),
    [
        ("2026-11-27T09:16:00+05:30,NSE:INFY,1550,1551,x,1550,1", 3, "low", "not a number"),
        ("2026-11-27T09:16:00+05:30,NSE:INFY,1550,1551", 3, "low", "low is missing"),
        ("2026-11-27 09:16,NSE:INFY,1550,1551,1549,1550,1", 3, "timestamp", "no offset"),
        ("2026-11-27T09:16:00+05:30,NSE:TCS,1550,1551,1549,1550,1", 3, "instrument", "'NSE:TCS'"),
        ("2026-11-27T09:16:00+05:30,NSE:INFY,1550.001,1551,1549,1550,1", 3, "open", "decimals"),
        ("2026-11-27T09:16:00+05:30,NSE:INFY,1550,1549,1548,1550,1", 3, None, "not a candle"),
        ("2026-11-27T09:14:00+05:30,NSE:INFY,1550,1551,1549,1550,1", 3, "timestamp", "time order"),
        ("2026-11-27T09:15:00+05:30,NSE:INFY,1550,1551,1549,1550,1", 3, "timestamp", "a second"),
    ],
)
def test_a_bad_candle_row_names_file_line_and_column(
    row: str, line: int, column: str | None, problem: str
) -> None:
    error = refused(candles("2026-11-27T09:15:00+05:30,NSE:INFY,1550,1551,1549,1550,1", row))
    assert (error.source, error.line, error.column) == ("day.csv", line, column)
    assert problem in error.problem
    assert str(error).startswith(f"day.csv:{line}")


def test_a_wrong_header_and_an_empty_file_are_refused() -> None:
    assert refused("time,token,ltp\n", ticks=True).line == 1
    assert "header" in refused("", ticks=True).problem


def test_ticks_may_share_a_second_but_not_go_back() -> None:
    error = refused(
        "timestamp,instrument,price\n"
        "2026-11-27T09:15:01+05:30,NSE:INFY,1550\n"
        "2026-11-27T09:15:01+05:30,NSE:INFY,1550.05\n"
        "2026-11-27T09:15:00+05:30,NSE:INFY,1550.10\n",
        ticks=True,
    )
    assert (error.line, error.column) == (4, "timestamp")


def test_holes_inside_a_day_are_listed_overnight_is_not() -> None:
    got = read_candles(
        candles(
            "2026-11-26T15:29:00+05:30,NSE:INFY,1550,1551,1549,1550,1",
            "2026-11-27T09:15:00+05:30,NSE:INFY,1550,1551,1549,1550,1",
            "2026-11-27T09:19:00+05:30,NSE:INFY,1550,1551,1549,1550,1",
        ),
        "day.csv",
        MASTER,
        interval=MINUTE,
    )
    (hole,) = got.holes
    assert (hole.instrument, hole.missing) == (INFY, 3)
    assert (hole.after.minute, hole.before.minute) == (15, 19)
    ticks = read_ticks(
        "timestamp,instrument,price\n"
        "2026-11-27T09:15:00+05:30,NSE:INFY,1550\n"
        "2026-11-27T09:25:00+05:30,NSE:INFY,1551\n",
        "t.csv",
        MASTER,
    )
    assert len(ticks.holes) == 1


def test_fetched_candles_out_of_order_are_refused_and_merged_in_time_order() -> None:
    from datetime import datetime

    from hmt.core.calendar import IST

    t = datetime(2026, 11, 27, 9, 15, tzinfo=IST)
    a = [Candle(t, 100, 101, 99, 100), Candle(t + 2 * MINUTE, 100, 101, 99, 100)]
    b = [Candle(t + MINUTE, 200, 201, 199, 200)]
    got = from_candles({INFY: a, RELIANCE: b}, MINUTE, "kite")
    assert [(token, c.at) for token, c in got.candles] == [
        (INFY, t), (RELIANCE, t + MINUTE), (INFY, t + 2 * MINUTE),
    ]  # fmt: skip
    assert [(h.instrument, h.missing) for h in got.holes] == [(INFY, 1)]
    with pytest.raises(HistoryError, match="repeats"):
        from_candles({INFY: [a[0], a[0]]}, MINUTE, "kite")
    both = merged([got, from_candles({RELIANCE: [Candle(t, 5, 6, 4, 5)]}, MINUTE, "k2")])
    assert len(both) == 4
    assert both.sources == ["kite", "k2"]
