"""One backtest: history fed to the core's `Replay` in time order, with progress."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from hmt.backtest.history import History
from hmt.core.instruments import Instrument
from hmt.core.model import Trigger
from hmt.core.replay import Replay, Result

Progress = Callable[[int], None]  # told how many rows were replayed since it was last told
STEP = 10_000  # rows between progress reports


def run(
    triggers: Iterable[Trigger],
    history: History,
    master: Mapping[int, Instrument],
    *,
    kinds: Mapping[int, str] | None = None,
    slippage_ticks: int = 0,
    progress: Progress | None = None,
) -> Result:
    """Replay `triggers` over `history` and return where everything ended."""
    replay = Replay(triggers, master, kinds=kinds, slippage_ticks=slippage_ticks)
    done = 0
    if history.kind == "ticks":
        tick = replay.tick
        for token, at, price in history.ticks:
            tick(token, at, price)
            done += 1
            if progress is not None and done % STEP == 0:
                progress(STEP)
    else:
        candle, interval = replay.candle, history.interval
        for token, bar in history.candles:
            candle(token, bar, interval)
            done += 1
            if progress is not None and done % STEP == 0:
                progress(STEP)
    if progress is not None and done % STEP:
        progress(done % STEP)
    return replay.result()
