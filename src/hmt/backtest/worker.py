"""A backtest run in a process of its own: the replay never shares the engine's interpreter.

`start` spawns a fresh interpreter (the `spawn` start method: nothing of the
engine's state, threads or sockets is inherited), hands it the triggers, the
history and the instrument list, and returns the parent's end of a pipe. The
child replays (`hmt.backtest.run`), sends ``("progress", rows)`` every
`run.STEP` rows and finally ``("done", {"report", "series"})`` or
``("failed", message)``. The child is a daemon: it dies with its parent.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Mapping
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from hmt.backtest.history import History
from hmt.backtest.report import build
from hmt.backtest.run import run
from hmt.core.instruments import Instrument
from hmt.core.model import Trigger
from hmt.core.prices import to_decimal

SERIES_POINTS = 2_000  # a chart's points per instrument at most


def series_of(history: History, master: Mapping[int, Instrument]) -> dict[str, Any]:
    """Each instrument's prices for a chart (ticks, or candle closes), at most
    `SERIES_POINTS` each: every k-th, and the last."""
    rows: dict[int, list[tuple[datetime, int]]] = {}
    if history.kind == "ticks":
        for token, at, price in history.ticks:
            rows.setdefault(token, []).append((at, price))
    else:
        for token, candle in history.candles:
            rows.setdefault(token, []).append((candle.at, candle.close))
    out: dict[str, Any] = {}
    for token, points in rows.items():
        instrument = master[token]
        step = max(1, -(-len(points) // SERIES_POINTS))
        kept = points[::step]
        if kept[-1] is not points[-1]:
            kept.append(points[-1])
        out[f"{instrument.exchange}:{instrument.tradingsymbol}"] = [
            [at.isoformat(), float(to_decimal(price, instrument.price_divisor))]
            for at, price in kept
        ]
    return out


def replay(
    triggers: list[Trigger],
    data: History,
    master: Mapping[int, Instrument],
    kinds: Mapping[int, str],
    slippage: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The report and the chart series of one run."""
    result = run(triggers, data, master, kinds=kinds, slippage_ticks=slippage, progress=progress)
    return {
        "report": build(result, data, master, slippage_ticks=slippage),
        "series": series_of(data, master),
    }


def _child(
    out: Connection,
    triggers: list[Trigger],
    data: History,
    master: Mapping[int, Instrument],
    kinds: Mapping[int, str],
    slippage: int,
) -> None:
    try:
        done = replay(triggers, data, master, kinds, slippage, lambda n: out.send(("progress", n)))
        out.send(("done", done))
    except Exception as error:  # reported to the parent, which shows it
        out.send(("failed", f"{type(error).__name__}: {error}"))
    finally:
        out.close()


def start(
    triggers: list[Trigger],
    data: History,
    master: Mapping[int, Instrument],
    kinds: Mapping[int, str],
    slippage: int,
) -> tuple[multiprocessing.process.BaseProcess, Connection]:
    """Spawn the child for one run; read its messages from the returned connection."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(
        target=_child,
        args=(child, triggers, data, dict(master), dict(kinds), slippage),
        name="hmt-backtest",
        daemon=True,
    )
    process.start()
    child.close()  # the parent's copy: EOF reaches the parent when the child is gone
    return process, parent
