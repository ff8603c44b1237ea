"""The live tick recorder (HMT_RECORD_TICKS): what it adds to a tick on the engine's path,
beside the same path without it, and how fast its writer empties the buffer to disk."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.report import table
from hmt.backtest.recording import TickRecorder
from hmt.compose import _recorded
from hmt.config import TickMode

TOKEN = 408065


def _per_tick(call: Callable[[int, int], object], n: int) -> float:
    """ns per call of call(token, price) over n ticks, best of 3."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter_ns()
        for i in range(n):
            call(TOKEN, 150_000 + (i & 63))
        best = min(best, (time.perf_counter_ns() - started) / n)
    return best


def run(*, quick: bool = False) -> str:
    n = 20_000 if quick else 2_000_000
    seen = [0]

    def engine_on_ltp(token: int, ltp: int) -> None:  # the engine's entry, as cheap as can be
        seen[0] += 1

    with tempfile.TemporaryDirectory() as where:
        recorder = TickRecorder(Path(where), max_bytes=1 << 30, max_buffer=10 * n)
        wrapped, _ = _recorded(recorder, engine_on_ltp, TickMode.LTP, None)
        bare = _per_tick(engine_on_ltp, n)
        recorded = _per_tick(wrapped, n)
        rows = recorder.buffered
        started = time.perf_counter()
        asyncio.run(recorder.flush())
        written = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(where).glob("ticks-*.csv"))
    added = recorded - bare
    rows_out = [
        ("on_ltp without the recorder", f"{bare:.0f} ns", ""),
        ("on_ltp with the recorder (record + call)", f"{recorded:.0f} ns", f"+{added:.0f} ns"),
        (
            "writer: buffered rows to disk (worker thread)",
            f"{rows / written / 1e6:.2f} M rows/s",
            f"{size / rows:.0f} bytes/row",
        ),
    ]
    return "\n".join(
        [
            "## Tick recorder",
            "",
            f"{n:,} ticks through a handler that only counts (the engine's on_ltp's entry), "
            "bare and behind the recorder as `hmt.compose` wires it (LTP mode); then the "
            "buffer written to a temporary directory in one flush. What the recorder adds to "
            "a tick is the difference; the engine's own evaluation cost is bench_book's.",
            "",
            table(["path", "per tick / rate", "note"], rows_out),
        ]
    )
