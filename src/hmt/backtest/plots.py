"""The backtest's PNG plots: each watched instrument's price with its trigger lines and
fills, and the equity curve. Drawn headless (matplotlib's Agg backend)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from hmt.backtest.history import History
from hmt.core.instruments import Instrument
from hmt.core.prices import to_decimal
from hmt.core.replay import Result
from hmt.core.types import Leg, Side

_LEG_COLOURS = {"single": "tab:blue", "stop-loss": "tab:red", "target": "tab:green"}


def _series(history: History, token: int) -> tuple[list[datetime], list[float]]:
    if history.kind == "ticks":
        rows = [(at, price) for t, at, price in history.ticks if t == token]
    else:
        rows = [(c.at, c.close) for t, c in history.candles if t == token]
    return [at for at, _ in rows], [float(p) for _, p in rows]


def _days(at: datetime | None) -> float:
    """matplotlib's date number: days since 1970-01-01 UTC (its default epoch)."""
    assert at is not None
    return at.timestamp() / 86400


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def draw(
    result: Result, history: History, master: Mapping[int, Instrument], out: Path
) -> list[Path]:
    """Write the plots under `out` (created if need be); the files written."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["timezone"] = "Asia/Kolkata"  # the axis in the market's time
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    watched = sorted({o.trigger.watched for o in result.outcomes})
    for token in watched:
        instrument = master.get(token)
        times, units = _series(history, token)
        if instrument is None or not times:
            continue
        divisor = instrument.price_divisor
        fig, ax = plt.subplots(figsize=(11, 5))
        ax.plot(
            [_days(at) for at in times],
            [u / divisor for u in units],
            color="black",
            linewidth=0.8,
            label="price",
        )
        for outcome in result.outcomes:
            trigger = outcome.trigger
            if trigger.watched != token:
                continue
            for leg in trigger.legs:
                if trigger.fire_at(leg) is not None or trigger.trail(leg) is not None:
                    continue
                role = (
                    "single"
                    if len(trigger.legs) == 1
                    else ("stop-loss" if leg is Leg.FIRST else "target")
                )
                ax.axhline(
                    float(to_decimal(trigger.threshold(leg), divisor)),
                    color=_LEG_COLOURS[role],
                    linestyle="--",
                    linewidth=0.7,
                )
        for outcome in result.outcomes:
            for order in outcome.orders:
                if order.fill_price is None or order.intent.instrument_token != token:
                    continue
                buy = order.intent.side is Side.BUY
                ax.scatter(
                    [_days(order.filled_at)],
                    [float(to_decimal(order.fill_price, order.intent.price_divisor))],
                    marker="^" if buy else "v",
                    color="tab:green" if buy else "tab:red",
                    s=60,
                    zorder=3,
                )
        name = f"{instrument.exchange}:{instrument.tradingsymbol}"
        ax.set_title(f"{name}: trigger levels (dashed) and fills (▲ buy, ▼ sell)")
        ax.set_ylabel("price (₹)")
        ax.set_xlabel("IST")
        ax.xaxis_date()
        fig.autofmt_xdate()
        path = out / f"price-{_file_name(name)}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    fig, ax = plt.subplots(figsize=(11, 4))
    if result.equity:
        ax.step(
            [_days(at) for at, _ in result.equity],
            [float(v) for _, v in result.equity],
            where="post",
            color="tab:blue",
        )
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_title("equity: net P&L after charges (₹)")
    ax.xaxis_date()
    fig.autofmt_xdate()
    path = out / "equity.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written
