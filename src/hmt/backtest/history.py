"""History for a backtest from CSV: ticks or candles, checked row by row.

Two formats (docs/backtest.md "History"), each with a header row:

- ticks:   ``timestamp,instrument,price``
- candles: ``timestamp,instrument,open,high,low,close[,volume]``

`timestamp` is ISO 8601 with its offset (Kite's ``2017-12-15T09:15:00+0530``
too); `instrument` is the instrument token or ``EXCHANGE:TRADINGSYMBOL``;
prices are rupees. A malformed row is a `HistoryError` naming the file, the
line and the column; so is an unknown instrument, a row earlier than the one
before it, and a candle repeated for one instrument and time. Holes (a run of
missing candles, or no tick for longer than `max_gap`, inside one trading
day) are not errors: they are listed, and the report shows them.
"""

from __future__ import annotations

import csv
import heapq
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path

from hmt.core.calendar import IST
from hmt.core.candles import Candle
from hmt.core.errors import HmtError, InvalidTrigger
from hmt.core.instruments import Instrument
from hmt.core.prices import to_units

TICK_COLUMNS = ("timestamp", "instrument", "price")
CANDLE_COLUMNS = ("timestamp", "instrument", "open", "high", "low", "close")
INTERVALS = {
    "minute": timedelta(minutes=1),
    "3minute": timedelta(minutes=3),
    "5minute": timedelta(minutes=5),
    "10minute": timedelta(minutes=10),
    "15minute": timedelta(minutes=15),
    "30minute": timedelta(minutes=30),
    "60minute": timedelta(minutes=60),
    "day": timedelta(days=1),
}


class HistoryError(HmtError, ValueError):
    """A row the backtest cannot replay: where it is and what is wrong with it."""

    def __init__(self, source: str, line: int, column: str | None, problem: str) -> None:
        self.source, self.line, self.column, self.problem = source, line, column, problem
        where = f"{source}:{line}" + (f": column {column!r}" if column else "")
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class Hole:
    """A stretch of one trading day with no data for an instrument."""

    instrument: int
    after: datetime  # the last row before the hole
    before: datetime  # the first row after it
    missing: int  # candles missing (0 for ticks: how many is unknowable)


@dataclass(slots=True)
class History:
    """Prices in time order: ticks (token, time, price) or candles (token, candle)."""

    kind: str  # "ticks" or "candles"
    ticks: list[tuple[int, datetime, int]] = field(default_factory=list)
    candles: list[tuple[int, Candle]] = field(default_factory=list)
    interval: timedelta = timedelta(minutes=1)
    holes: list[Hole] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ticks) if self.kind == "ticks" else len(self.candles)

    def instruments(self) -> list[int]:
        if self.kind == "ticks":
            return sorted({token for token, _, _ in self.ticks})
        return sorted({token for token, _ in self.candles})


_ZONES: dict[timedelta, tzinfo] = {IST.utcoffset(None): IST}


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with its offset; ValueError for one without.

    Times of one offset share one zone object (IST for +05:30): the replay compares
    every price's time, and a comparison within one zone object is some 30 times
    cheaper than across two.
    """
    at = datetime.fromisoformat(text.strip())
    offset = at.utcoffset()
    if offset is None:
        raise ValueError(f"{text!r} has no offset (write it as 2026-12-01T09:15:00+05:30)")
    zone = _ZONES.get(offset)
    if zone is None:
        zone = _ZONES[offset] = timezone(offset)
    return at.replace(tzinfo=zone)


class _Reader:
    """Resolves instruments and prices for one file, naming the row on each error."""

    def __init__(self, source: str, master: Mapping[int, Instrument]) -> None:
        self.source = source
        self.master = master
        self.by_key = {f"{i.exchange}:{i.tradingsymbol}": i for i in master.values()}

    def fail(self, line: int, column: str | None, problem: str) -> HistoryError:
        return HistoryError(self.source, line, column, problem)

    def header(self, rows: Iterator[list[str]], wanted: tuple[str, ...]) -> None:
        head = next(rows, None)
        if head is None:
            raise self.fail(1, None, "the file is empty: a header row is needed")
        names = tuple(cell.strip().lower() for cell in head)
        if names[: len(wanted)] != wanted:
            raise self.fail(
                1, None, f"the header must start {','.join(wanted)}, not {','.join(names)}"
            )

    def time(self, line: int, cell: str) -> datetime:
        try:
            return parse_time(cell)
        except ValueError as error:
            raise self.fail(line, "timestamp", str(error)) from None

    def instrument(self, line: int, cell: str) -> Instrument:
        text = cell.strip()
        found = self.master.get(int(text)) if text.isdigit() else self.by_key.get(text)
        if found is None:
            raise self.fail(line, "instrument", f"{text!r} is not in the instrument list")
        return found

    def price(self, line: int, column: str, cell: str, instrument: Instrument) -> int:
        try:
            units = to_units(cell.strip(), instrument.price_divisor, field=column)
        except InvalidTrigger as error:
            raise self.fail(line, column, error.errors[0].message) from None
        if units <= 0:
            raise self.fail(line, column, f"{cell.strip()} is not a positive price")
        return units


def _rows(text: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text))


def read_ticks(
    text: str,
    source: str,
    master: Mapping[int, Instrument],
    *,
    max_gap: timedelta = timedelta(minutes=5),
) -> History:
    """Ticks from CSV text; `source` names it in errors."""
    reader = _Reader(source, master)
    rows = _rows(text)
    reader.header(rows, TICK_COLUMNS)
    history = History("ticks", sources=[source])
    previous: datetime | None = None
    seen: dict[int, datetime] = {}
    for line, cells in enumerate(rows, start=2):
        if not cells or all(not c.strip() for c in cells):
            raise reader.fail(line, None, "an empty row")
        if len(cells) < len(TICK_COLUMNS):
            missing = TICK_COLUMNS[len(cells)]
            raise reader.fail(
                line, missing, f"the row has {len(cells)} cells: {missing} is missing"
            )
        at = reader.time(line, cells[0])
        instrument = reader.instrument(line, cells[1])
        price = reader.price(line, "price", cells[2], instrument)
        if previous is not None and at < previous:
            raise reader.fail(line, "timestamp", _unsorted(at, previous))
        last = seen.get(instrument.id)
        if last is not None and at - last > max_gap and _same_day(last, at):
            history.holes.append(Hole(instrument.id, last, at, 0))
        seen[instrument.id] = previous = at
        history.ticks.append((instrument.id, at, price))
    return history


def read_candles(
    text: str, source: str, master: Mapping[int, Instrument], *, interval: timedelta
) -> History:
    """Candles of `interval` from CSV text; `source` names it in errors."""
    reader = _Reader(source, master)
    rows = _rows(text)
    reader.header(rows, CANDLE_COLUMNS)
    history = History("candles", interval=interval, sources=[source])
    previous: datetime | None = None
    seen: dict[int, datetime] = {}
    for line, cells in enumerate(rows, start=2):
        if not cells or all(not c.strip() for c in cells):
            raise reader.fail(line, None, "an empty row")
        if len(cells) < len(CANDLE_COLUMNS):
            missing = CANDLE_COLUMNS[len(cells)]
            raise reader.fail(
                line, missing, f"the row has {len(cells)} cells: {missing} is missing"
            )
        at = reader.time(line, cells[0])
        instrument = reader.instrument(line, cells[1])
        o, h, lo, c = (
            reader.price(line, name, cells[k], instrument)
            for k, name in enumerate(CANDLE_COLUMNS[2:], start=2)
        )
        candle = Candle(at, o, h, lo, c)
        problem = candle.problem()
        if problem is not None:
            raise reader.fail(line, None, f"not a candle: {problem}")
        if previous is not None and at < previous:
            raise reader.fail(line, "timestamp", _unsorted(at, previous))
        last = seen.get(instrument.id)
        if last is not None and at == last:
            raise reader.fail(
                line, "timestamp", f"a second candle of {cells[1].strip()} at {at.isoformat()}"
            )
        if last is not None and at - last > interval and _same_day(last, at):
            count = (at - last) // interval - 1
            history.holes.append(Hole(instrument.id, last, at, count))
        seen[instrument.id] = previous = at
        history.candles.append((instrument.id, candle))
    return history


def _unsorted(at: datetime, previous: datetime) -> str:
    return (
        f"{at.isoformat()} is before the row above ({previous.isoformat()}): "
        "the file must be in time order"
    )


def _same_day(a: datetime, b: datetime) -> bool:
    return a.astimezone(IST).date() == b.astimezone(IST).date()


def read_file(
    path: Path,
    master: Mapping[int, Instrument],
    *,
    interval: timedelta | None = None,
    label: str | None = None,
    max_gap: timedelta = timedelta(minutes=5),
) -> History:
    """A CSV file of ticks or candles, told apart by its header; `label` names it in
    errors and the report (default: the path as given); `max_gap`: ticks of one
    instrument further apart than this within a day are a hole."""
    text = path.read_text(encoding="utf-8")
    source = str(path) if label is None else label
    head = text.split("\n", 1)[0].lower()
    if "open" in head:
        return read_candles(text, source, master, interval=interval or INTERVALS["minute"])
    return read_ticks(text, source, master, max_gap=max_gap)


def merged(histories: Iterable[History]) -> History:
    """Several histories of one kind as one, in time order (each already is)."""
    parts = list(histories)
    if not parts:
        raise ValueError("no history to replay")
    kinds = {h.kind for h in parts}
    if len(kinds) > 1:
        raise ValueError("ticks and candles cannot be replayed together")
    out = History(parts[0].kind, interval=parts[0].interval)
    for part in parts:
        out.holes += part.holes
        out.sources += part.sources
    if out.kind == "ticks":
        out.ticks = list(heapq.merge(*(p.ticks for p in parts), key=lambda row: row[1]))
    else:
        out.candles = list(heapq.merge(*(p.candles for p in parts), key=lambda row: row[1].at))
    return out


def from_candles(series: Mapping[int, list[Candle]], interval: timedelta, source: str) -> History:
    """Candles fetched per instrument (Kite's historical API) as one history in time
    order; an out-of-order or repeated candle is an error naming its instrument and
    position, a run of missing ones within a day a hole."""
    history = History("candles", interval=interval, sources=[source])
    for token, candles in series.items():
        last: datetime | None = None
        for n, candle in enumerate(candles, start=1):
            if last is not None and candle.at <= last:
                problem = "repeats" if candle.at == last else "is before"
                raise HistoryError(
                    f"{source} instrument {token}", n, "timestamp",
                    f"{candle.at.isoformat()} {problem} the candle before it ({last.isoformat()})",
                )  # fmt: skip
            if last is not None and candle.at - last > interval and _same_day(last, candle.at):
                history.holes.append(
                    Hole(token, last, candle.at, (candle.at - last) // interval - 1)
                )
            last = candle.at
    tagged = [[(token, c) for c in candles] for token, candles in sorted(series.items())]
    history.candles = list(heapq.merge(*tagged, key=lambda row: row[1].at))
    return history
