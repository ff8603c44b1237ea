"""`hmt backtest`: triggers replayed over history by the engine's own book (docs/backtest.md)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hmt.cli import app

if TYPE_CHECKING:
    from hmt.backtest.history import History
    from hmt.config import Settings
    from hmt.core.instruments import Instrument, Listing
    from hmt.core.model import Trigger

DEMO_DAY = "2026-11-27"


def demo_file(name: str) -> Path:
    """A file of the sample data shipped in the package (hmt/backtest/demo/)."""
    return Path(str(resources.files("hmt.backtest") / "demo" / name))


def _fail(message: str) -> typer.Exit:
    typer.echo(f"hmt backtest: {message}", err=True)
    return typer.Exit(code=2)


def _listings(path: Path | None) -> list[Listing]:
    from hmt.kite.instruments import parse_dump
    from hmt.sim.universe import Universe

    text = Universe().instruments_csv() if path is None else path.read_text(encoding="utf-8")
    return parse_dump(text)


def _kite_history(
    settings: Settings,
    names: list[str],
    master: dict[int, Instrument],
    interval: str,
    start: datetime,
    end: datetime,
) -> History:
    from hmt.backtest.history import INTERVALS, from_candles
    from hmt.kite.historical import fetch_candles
    from hmt.kite.rest import KiteRest

    by_key = {f"{i.exchange}:{i.tradingsymbol}": i for i in master.values()}
    chosen = []
    for name in names:
        found = master.get(int(name)) if name.isdigit() else by_key.get(name)
        if found is None:
            raise _fail(f"--kite {name}: not in the instrument list")
        chosen.append(found)
    access = settings.kite_access_token
    if settings.kite_api_key is None or access is None:
        raise _fail("--kite needs HMT_KITE_API_KEY and HMT_KITE_ACCESS_TOKEN")

    async def fetch() -> dict[int, Any]:
        rest = KiteRest(
            api_url=settings.kite_api_url,
            api_key=settings.kite_api_key or "",
            access_token=access.get_secret_value(),
            timeout=settings.kite_timeout_ms / 1000,
            client=settings.kite_http,
        )
        try:
            return {int(i.id): await fetch_candles(rest, i, interval, start, end) for i in chosen}
        finally:
            await rest.aclose()

    series = asyncio.run(fetch())
    return from_candles(series, INTERVALS[interval], f"kite:{settings.kite_api_url}")


def _stored(settings: Settings, user: str) -> list[Trigger]:
    """`user`'s live triggers (active and paused) as the store holds them, oldest first."""
    from hmt.core.lifecycle import Status
    from hmt.kite.segments import divisor_for
    from hmt.store import migrate
    from hmt.store.db import Database, create_engine
    from hmt.store.triggers import TriggerStore

    async def read() -> list[Trigger]:
        engine = create_engine(settings.database_url, application_name="hmt-backtest")
        try:
            await migrate.upgrade_at_start(engine, enabled=settings.db_auto_upgrade)
            store = TriggerStore(Database(engine), divisor_of=divisor_for)
            found: list[Trigger] = []
            for status in (Status.ACTIVE, Status.PAUSED):
                after = None
                while True:
                    page = await store.list(user, status=status, limit=500, after=after)
                    found += [record.trigger for record in page]
                    if len(page) < 500:
                        break
                    after = (page[-1].created_at, page[-1].trigger.id)
            return found[::-1]
        finally:
            await engine.dispose()

    return asyncio.run(read())


@app.command()
def backtest(  # noqa: C901 - one flat sequence of input checks, each a clear exit
    triggers: Annotated[
        Path | None, typer.Option(help="JSON file of triggers in the API's request format.")
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(help="Replay this user's live triggers from the store (HMT_DATABASE_URL)."),
    ] = None,
    history: Annotated[
        list[Path] | None,
        typer.Option(help="CSV of ticks or of candles (repeatable; see docs/backtest.md)."),
    ] = None,
    recording: Annotated[
        list[Path] | None,
        typer.Option(
            help="A directory of ticks the engine recorded live (HMT_RECORD_TICKS); "
            "--from/--to narrow it."
        ),
    ] = None,
    kite: Annotated[
        list[str] | None,
        typer.Option(help="Fetch Kite's historical candles of EXCHANGE:SYMBOL or a token."),
    ] = None,
    interval: Annotated[str, typer.Option(help="Candle interval: minute, 5minute, day...")] = (
        "minute"
    ),
    start: Annotated[
        str | None, typer.Option("--from", help="With --kite: first time, ISO 8601.")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="With --kite: last time, ISO 8601.")] = (
        None
    ),
    instruments: Annotated[
        Path | None,
        typer.Option(help="Kite's instrument dump (CSV); default: the simulator's list."),
    ] = None,
    slippage: Annotated[int, typer.Option(help="MARKET and SL-M slippage in ticks.", min=0)] = 0,
    max_gap: Annotated[
        int, typer.Option(help="Ticks: seconds without one within a day that are a hole.", min=1)
    ] = 300,
    out: Annotated[Path, typer.Option(help="Directory for report.json and the plots.")] = Path(
        "backtest"
    ),
    plots: Annotated[bool, typer.Option(help="Draw the PNG plots.")] = True,
    demo: Annotated[bool, typer.Option(help="Run on the sample data that ships with hmt.")] = False,
) -> None:
    """Replay triggers over history with the engine's own book; write a report and plots."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from hmt.api.offline import parse_triggers
    from hmt.backtest.history import INTERVALS, HistoryError, merged, parse_time, read_file
    from hmt.backtest.plots import draw
    from hmt.backtest.report import build
    from hmt.backtest.run import run
    from hmt.core.errors import InvalidTrigger

    labels: dict[Path, str] = {}
    if demo:
        if triggers is None and user is None:
            triggers = demo_file("triggers.json")
        if not history and not kite:
            history = [demo_file("candles.csv")]
            labels[history[0]] = "hmt demo: candles.csv"
    if (triggers is None) == (user is None):
        raise _fail("name the triggers: --triggers FILE or --user ID (one of them), or --demo")
    if not history and not kite and not recording:
        raise _fail(
            "name the history: --history FILE (ticks or candles), --recording DIR "
            "or --kite INSTRUMENT"
        )
    if interval not in INTERVALS:
        raise _fail(f"--interval {interval!r}: one of {', '.join(INTERVALS)}")
    listings = _listings(instruments)
    master = {int(item.instrument.id): item.instrument for item in listings}
    kinds = {int(item.instrument.id): item.kind for item in listings}
    if user is not None:
        from hmt.cli.run import settings_or_exit

        chosen = _stored(settings_or_exit(("database_url", "db_auto_upgrade")), user)
        if not chosen:
            raise _fail(f"--user {user}: no active or paused triggers in the store")
    else:
        assert triggers is not None
        try:
            chosen = parse_triggers(triggers.read_text(encoding="utf-8"), master)
        except OSError as error:
            raise _fail(f"{triggers}: {error.strerror}") from None
        except InvalidTrigger as error:
            raise _fail(f"{triggers}: {error}") from None
    step = INTERVALS[interval]
    try:
        parts = [
            read_file(
                path,
                master,
                interval=step,
                label=labels.get(path),
                max_gap=timedelta(seconds=max_gap),
            )
            for path in history or []
        ]
    except OSError as error:
        raise _fail(f"{error.filename}: {error.strerror}") from None
    except HistoryError as error:
        raise _fail(str(error)) from None
    if recording:
        from hmt.backtest.recording import read_recording

        try:
            since = None if start is None else parse_time(start)
            until = None if end is None else parse_time(end)
        except ValueError as error:
            raise _fail(f"--from/--to: {error}") from None
        try:
            parts += [read_recording(path, master, start=since, end=until) for path in recording]
        except HistoryError as error:
            raise _fail(str(error)) from None
    if kite:
        from hmt.cli.run import settings_or_exit

        if start is None or end is None:
            raise _fail("--kite needs --from and --to")
        try:
            first, last = parse_time(start), parse_time(end)
        except ValueError as error:
            raise _fail(f"--from/--to: {error}") from None
        settings = settings_or_exit(
            uses=(
                "kite_api_url",
                "kite_api_key",
                "kite_access_token",
                "kite_timeout_ms",
                "kite_http",
            )
        )
        try:
            parts.append(_kite_history(settings, kite, master, interval, first, last))
        except HistoryError as error:
            raise _fail(str(error)) from None
    try:
        data = merged(parts)
    except ValueError as error:
        raise _fail(str(error)) from None
    console = Console(stderr=True)
    for hole in data.holes:
        console.print(
            f"[yellow]hole[/]: no data for {hole.instrument} from {hole.after.isoformat()} "
            f"to {hole.before.isoformat()}"
        )
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} rows"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=len(data) < 50_000,  # a short run needs no bar
    ) as bar:
        task = bar.add_task("replay", total=len(data))
        result = run(
            chosen,
            data,
            master,
            kinds=kinds,
            slippage_ticks=slippage,
            progress=lambda n: bar.advance(task, n),
        )
    report = build(result, data, master, slippage_ticks=slippage)
    for name in report["data"]["without_data"]:
        console.print(f"[yellow]no data[/]: {name} is named by a trigger but not in the history")
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    written = draw(result, data, master, out) if plots else []
    _summary(report, out, written)


def _summary(report: dict[str, Any], out: Path, written: list[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="backtest")
    for column in ("trigger", "status", "fired at", "leg", "price", "fills", "net P&L", "note"):
        table.add_column(column)
    for item in report["triggers"]:
        fired = item["fired"] or {}
        fills = ", ".join(
            f"{o['transaction_type']} {o['quantity']} @ {o['fill_price']}"
            for o in item["orders"]
            if o["fill_price"] is not None
        )
        table.add_row(
            item["id"],
            item["status"],
            fired.get("at") or "",
            fired.get("role") or "",
            "" if fired.get("price") is None else str(fired["price"]),
            fills,
            f"{item['net_pnl']:.2f}",
            "ambiguous: stop taken first" if fired.get("ambiguous") else "",
        )
    console = Console()
    console.print(table)
    s = report["summary"]
    console.print(
        f"{s['fired']} of {s['triggers']} fired ({s['ambiguous']} ambiguous), "
        f"{s['filled']}/{s['orders']} orders filled; P&L {s['pnl']:.2f}, "
        f"charges {s['charges']:.2f}, net {s['net_pnl']:.2f}"
    )
    console.print(f"report: {out / 'report.json'}")
    for path in written:
        console.print(f"plot: {path}")
