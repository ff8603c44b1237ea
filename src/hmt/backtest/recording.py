"""The live tick recorder and its files: what the engine saw, replayable by `hmt backtest`.

Opt-in (HMT_RECORD_TICKS=<directory>). `TickRecorder.record` is called on the
tick path for every tick the engine is handed and only extends a list by four
ints: no clock read beyond one `time.time_ns()`, no formatting, no I/O. A
background task (`run`) swaps the list out every `flush_s` and writes the
batch from a worker thread, so a slow disk delays the recording, never a tick.
If the writer falls `max_buffer` rows behind, further ticks are counted in
`dropped` and not kept (the engine goes on).

On disk (docs/backtest.md, "Recording live ticks"): files
``ticks-<UTC start>-<seq>.csv`` in the directory, each with the header
``received_ns,instrument,price,exchange_ts``: receive time in nanoseconds
since the epoch (the engine's wall clock), the instrument token, the price in
the instrument's wire units (paise for NSE equity) as the engine saw it, and
the exchange's timestamp in epoch seconds where the feed carries one (full
mode), else empty. A file is closed and a new one begun past `file_bytes`;
past `max_bytes` in all, the oldest files are deleted: the recording is
bounded on disk and keeps the most recent ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from hmt.backtest.history import History, HistoryError, Hole, _same_day
from hmt.core.calendar import IST
from hmt.core.instruments import Instrument

log = structlog.get_logger("hmt.backtest.recording")

HEADER = "received_ns,instrument,price,exchange_ts"
PATTERN = "ticks-*.csv"
FLUSH_S = 0.2
MAX_BUFFER = 1_000_000  # rows waiting for the writer (some 100 MB at worst)
FILES = 8  # a recording's budget is spread over about this many files

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_now = time.time_ns


class TickRecorder:
    """Buffers ticks on the tick path; `run` writes them to rotating files (see module)."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        file_bytes: int | None = None,
        flush_s: float = FLUSH_S,
        max_buffer: int = MAX_BUFFER,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("the recording needs room on disk: max_bytes must be positive")
        self.directory = directory
        self.max_bytes = max_bytes
        self.file_bytes = file_bytes or max(4096, max_bytes // FILES)
        self.flush_s = flush_s
        self.max_buffer = max_buffer
        self._cap = 4 * max_buffer
        self.recorded = 0  # rows written
        self.dropped = 0  # ticks not kept: the writer was too far behind
        self.deleted = 0  # old files removed to stay within max_bytes
        # Four ints per tick, flat: no tuple per tick for the garbage collector to track.
        self._rows: list[int] = []
        self._file: Path | None = None
        self._size = 0
        self._seq = 0
        self._task: asyncio.Task[None] | None = None

    # --- the tick path ----------------------------------------------------------------

    def record(self, token: int, price: int, exchange_ts: int = 0) -> None:
        """One tick as the engine is handed it; never blocks, never raises."""
        rows = self._rows
        if len(rows) < self._cap:
            rows.extend((_now(), token, price, exchange_ts))
        else:
            self.dropped += 1

    # --- the writer -------------------------------------------------------------------

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        """Stop the writer and write what is buffered."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                await self.flush()
            except OSError as error:
                # A full or vanished disk loses this batch, never the engine.
                log.warning("tick_recording_failed", error=str(error))

    async def flush(self) -> None:
        """Write the buffered rows now (from a worker thread)."""
        if not self._rows:
            return
        batch, self._rows = self._rows, []
        await asyncio.to_thread(self._write, batch)

    @property
    def buffered(self) -> int:
        """Ticks waiting for the writer."""
        return len(self._rows) // 4

    def _write(self, batch: list[int]) -> None:
        start = 0
        while start < len(batch):
            if self._file is None or self._size >= self.file_bytes:
                self._roll(batch[start])
            assert self._file is not None
            # Rows up to the file's budget, as one write.
            lines: list[str] = []
            room = self.file_bytes - self._size
            used = 0
            while start < len(batch) and (used < room or not lines):
                received, token, price, stamp = batch[start : start + 4]
                line = f"{received},{token},{price},{stamp or ''}\n"
                lines.append(line)
                used += len(line)
                start += 4
            with self._file.open("a", encoding="ascii") as out:
                out.write("".join(lines))
            self._size += used
            self.recorded += len(lines)

    def _roll(self, first_ns: int) -> None:
        self._seq += 1
        stamp = datetime.fromtimestamp(first_ns / 1e9, UTC).strftime("%Y%m%dT%H%M%S")
        self._file = self.directory / f"ticks-{stamp}-{os.getpid()}-{self._seq:06d}.csv"
        self._file.write_text(HEADER + "\n", encoding="ascii")
        self._size = len(HEADER) + 1
        self._prune()

    def _prune(self) -> None:
        """Delete the oldest files until the recording fits in `max_bytes`."""
        files = recording_files(self.directory)
        total = sum(path.stat().st_size for path in files)
        for path in files:
            if total <= self.max_bytes or path == self._file:
                break
            total -= path.stat().st_size
            path.unlink()
            self.deleted += 1


def recording_files(directory: Path) -> list[Path]:
    """A recording's files, oldest first (their names sort by start time)."""
    return sorted(directory.glob(PATTERN), key=lambda path: path.name)


def read_recording(
    directory: Path,
    master: Mapping[int, Instrument],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    max_gap: timedelta = timedelta(minutes=5),
) -> History:
    """A recording's ticks in receive order as a tick history (times in IST).

    The replay's clock is the receive time: the engine evaluated each tick
    when it arrived, and its time legs fire by the same clock. A malformed row
    or an unknown instrument is a `HistoryError` naming the file, line and
    column; a row received before the one above it (a clock stepped back) too.
    """
    files = recording_files(directory) if directory.is_dir() else []
    if not files:
        raise HistoryError(str(directory), 0, None, f"no recording here (no {PATTERN} files)")
    history = History("ticks", sources=[str(directory)])
    previous = 0
    seen: dict[int, datetime] = {}
    low = None if start is None else int(start.timestamp() * 1e9)
    high = None if end is None else int(end.timestamp() * 1e9)
    for path in files:
        rows, previous = _read_file(path, master, low, high, previous)
        history.ticks += rows
    for token, at, _ in history.ticks:
        last = seen.get(token)
        if last is not None and at - last > max_gap and _same_day(last, at):
            history.holes.append(Hole(token, last, at, 0))
        seen[token] = at
    return history


def _read_file(
    path: Path,
    master: Mapping[int, Instrument],
    low: int | None,
    high: int | None,
    previous: int,
) -> tuple[list[tuple[int, datetime, int]], int]:
    """The rows of one file in the window, and the last receive time read."""
    source = str(path)
    found: list[tuple[int, datetime, int]] = []
    with path.open(encoding="ascii", errors="replace") as lines:
        head = lines.readline().strip()
        if head != HEADER:
            raise HistoryError(source, 1, None, f"the header must be {HEADER}, not {head}")
        for number, line in enumerate(lines, start=2):
            if not line.endswith("\n"):
                break  # the last row of a file still being written, or cut by a crash
            cells = line.rstrip("\n").split(",")
            if len(cells) != 4:
                raise HistoryError(source, number, None, f"{len(cells)} cells, not 4")
            received, token, price = _row(source, number, cells, master)
            if received < previous:
                raise HistoryError(
                    source, number, "received_ns", "received before the row above it"
                )
            previous = received
            if (low is not None and received < low) or (high is not None and received > high):
                continue
            at = (_EPOCH + timedelta(microseconds=received // 1000)).astimezone(IST)
            found.append((token, at, price))
    return found, previous


def _integer(source: str, line: int, column: str, cell: str, problem: str) -> int:
    try:
        return int(cell)
    except ValueError:
        raise HistoryError(source, line, column, problem) from None


def _row(
    source: str, line: int, cells: list[str], master: Mapping[int, Instrument]
) -> tuple[int, int, int]:
    """One row's receive time, token and price, checked."""
    received = _integer(source, line, "received_ns", cells[0], "not an integer")
    token = _integer(source, line, "instrument", cells[1], "not a token")
    if token not in master:
        raise HistoryError(source, line, "instrument", f"{token} is not in the instrument list")
    price = _integer(source, line, "price", cells[2], "not an integer")
    if price <= 0:
        raise HistoryError(source, line, "price", f"{price} is not a positive price")
    if cells[3] and not cells[3].isdigit():
        raise HistoryError(source, line, "exchange_ts", "not epoch seconds")
    return received, token, price
