"""The live tick recorder: buffered off the tick path, rotating and bounded on disk, and
read back as the backtest's tick history (errors by file, line and column)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hmt.backtest.history import HistoryError
from hmt.backtest.recording import HEADER, TickRecorder, read_recording, recording_files
from hmt.core.calendar import IST
from hmt.kite.instruments import parse_dump
from hmt.sim.universe import Universe

INFY, RELIANCE = 408065, 738561


@pytest.fixture(scope="module")
def master() -> dict[int, object]:
    return {int(i.instrument.id): i.instrument for i in parse_dump(Universe().instruments_csv())}


async def test_record_only_buffers_and_the_writer_writes_in_batches(tmp_path: Path) -> None:
    recorder = TickRecorder(tmp_path, max_bytes=1 << 20, flush_s=0.05)
    recorder.record(INFY, 160_000)
    recorder.record(RELIANCE, 139_250, 1_764_560_000)
    assert recording_files(tmp_path) == []  # nothing written on the tick path
    recorder.start()
    try:
        for _ in range(100):
            if recorder.recorded == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await recorder.stop()
    (path,) = recording_files(tmp_path)
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER
    rows = [line.split(",") for line in lines[1:]]
    assert [r[1:] for r in rows] == [["408065", "160000", ""], ["738561", "139250", "1764560000"]]
    assert int(rows[0][0]) <= int(rows[1][0])


async def test_stop_writes_what_is_buffered(tmp_path: Path) -> None:
    recorder = TickRecorder(tmp_path, max_bytes=1 << 20, flush_s=60)
    recorder.start()
    for price in range(100_000, 100_010):
        recorder.record(INFY, price)
    await recorder.stop()
    assert recorder.recorded == 10


async def test_files_rotate_and_the_oldest_are_deleted_within_the_bound(tmp_path: Path) -> None:
    """A 4 KiB budget over 1 KiB files: the most recent ticks are kept, the total bounded."""
    recorder = TickRecorder(tmp_path, max_bytes=4096, file_bytes=1024, flush_s=60)
    for n in range(2_000):
        recorder.record(INFY, 100_000 + n)
        if n % 100 == 99:
            await recorder.flush()
    await recorder.flush()
    files = recording_files(tmp_path)
    assert len(files) > 1
    assert recorder.deleted > 0
    total = sum(p.stat().st_size for p in files)
    # The bound, give or take the file being written (at most one file's budget and a row).
    assert total <= 4096 + 1024 + 64
    last = files[-1].read_text().splitlines()[-1].split(",")
    assert last[2] == str(100_000 + 1_999)


def test_a_full_buffer_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    recorder = TickRecorder(tmp_path, max_bytes=1 << 20, max_buffer=3)
    for price in range(5):
        recorder.record(INFY, 100_000 + price)
    assert recorder.dropped == 2


def test_the_bound_must_leave_room(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        TickRecorder(tmp_path, max_bytes=0)


def _write(path: Path, rows: list[str]) -> None:
    path.write_text("\n".join([HEADER, *rows]) + "\n")


def test_a_recording_reads_as_ticks_in_receive_order(tmp_path: Path, master: dict) -> None:
    at = datetime(2026, 12, 1, 4, 0, 0, 123456, tzinfo=UTC)
    ns = int(at.timestamp()) * 10**9 + 123_456_789
    _write(tmp_path / "ticks-20261201T040000-1-000001.csv", [f"{ns},{INFY},160005,"])
    _write(
        tmp_path / "ticks-20261201T040001-1-000002.csv",
        [f"{ns + 10**9},{RELIANCE},139250,1764561601", f"{ns + 2 * 10**9},{INFY},160010,"],
    )
    history = read_recording(tmp_path, master)
    assert history.kind == "ticks"
    assert [(t, p) for t, _, p in history.ticks] == [
        (INFY, 160005),
        (RELIANCE, 139250),
        (INFY, 160010),
    ]
    first = history.ticks[0][1]
    assert first.tzinfo is IST
    assert first == at  # nanoseconds truncated to the microsecond
    narrowed = read_recording(tmp_path, master, start=at.replace(second=1))
    assert [p for _, _, p in narrowed.ticks] == [139250, 160010]


def test_a_row_cut_short_by_a_crash_ends_the_file(tmp_path: Path, master: dict) -> None:
    path = tmp_path / "ticks-20261201T040000-1-000001.csv"
    path.write_text(f"{HEADER}\n1764561600000000000,{INFY},160005,\n1764561601000000000,4080")
    assert len(read_recording(tmp_path, master)) == 1
    path.write_text(f"{HEADER}\n1764561600000000000,{INFY},160005,\n1764561601000000000,{INFY},16,")
    assert [p for _, _, p in read_recording(tmp_path, master).ticks] == [160005]


@pytest.mark.parametrize(
    ("row", "column", "problem"),
    [
        ("x,408065,160005,", "received_ns", "not an integer"),
        ("1764561600000000000,999,160005,", "instrument", "not in the instrument list"),
        ("1764561600000000000,408065,1600.05,", "price", "not an integer"),
        ("1764561600000000000,408065,0,", "price", "not a positive price"),
        ("1764561600000000000,408065,160005,noon", "exchange_ts", "epoch seconds"),
        ("1764561500000000000,408065,160005,", "received_ns", "before the row above"),
    ],
)
def test_a_bad_row_names_file_line_and_column(
    tmp_path: Path, master: dict, row: str, column: str, problem: str
) -> None:
    path = tmp_path / "ticks-20261201T040000-1-000001.csv"
    _write(path, [f"1764561550000000000,{INFY},160000,", row])
    with pytest.raises(HistoryError) as error:
        read_recording(tmp_path, master)
    assert error.value.source == str(path)
    assert error.value.line == 3
    assert error.value.column == column
    assert problem in str(error.value)


def test_no_recording_is_an_error(tmp_path: Path, master: dict) -> None:
    with pytest.raises(HistoryError, match="no recording"):
        read_recording(tmp_path, master)
