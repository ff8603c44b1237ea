"""`hmt backtest --demo`: the golden report, the plots, the sample data's provenance,
and bad input refused with where it is."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hmt.cli import app
from hmt.cli.backtest import demo_file

GOLDEN = Path(__file__).parent / "golden" / "demo_report.json"


def test_the_demo_report_is_the_golden_one(tmp_path: Path) -> None:
    """Exactly: every fire, fill, charge and equity point of the sample day. When the
    model changes on purpose, regenerate it with `hmt backtest --demo --no-plots --out
    DIR` and read the diff."""
    result = CliRunner().invoke(app, ["backtest", "--demo", "--no-plots", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    got = json.loads((tmp_path / "report.json").read_text())
    assert got == json.loads(GOLDEN.read_text())
    assert "5 of 6 fired (1 ambiguous)" in result.output


def test_the_golden_report_says_what_the_demo_shows() -> None:
    """Independent of the golden bytes: the ambiguous oco took its stop, the expired
    trigger never fired, the time leg fired at its time."""
    report = json.loads(GOLDEN.read_text())
    by_id = {t["id"]: t for t in report["triggers"]}
    assert by_id["t4"]["fired"]["ambiguous"] is True
    assert by_id["t4"]["fired"]["role"] == "stop-loss"
    assert by_id["t6"]["status"] == "expired"
    assert by_id["t5"]["fired"]["cause"] == "time"
    assert by_id["t5"]["fired"]["at"] == "2026-11-27T15:00:00+05:30"
    net = sum(t["net_pnl"] for t in report["triggers"])
    assert round(net, 2) == report["summary"]["net_pnl"]


def test_plots_are_pngs(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["backtest", "--demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["equity.png", "price-NSE_INFY.png", "price-NSE_RELIANCE.png"]
    for name in names:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_sample_data_is_the_simulators_history_for_seed_1() -> None:
    """The shipped CSV is what the simulator serves for NSE:INFY and NSE:RELIANCE on
    2026-11-27 with seed 1 (hmt.sim.history), so it can be made again."""
    from hmt.core.calendar import IST
    from hmt.core.prices import to_decimal
    from hmt.sim.history import candles
    from hmt.sim.universe import Universe

    universe = Universe()
    rows = []
    for key in ("NSE:INFY", "NSE:RELIANCE"):
        instrument = universe.by_key(key)
        assert instrument is not None
        start = datetime(2026, 11, 27, 9, 15, tzinfo=IST)
        end = datetime(2026, 11, 27, 15, 29, tzinfo=IST)
        for bar in candles(instrument, 1, "minute", start, end):
            prices = (f"{to_decimal(p, 100):.2f}" for p in bar[1:5])
            rows.append(
                (bar.at, key, f"{bar.at.isoformat()},{key},{','.join(prices)},{bar.volume}")
            )
    rows.sort(key=lambda row: (row[0], row[1]))
    made = "timestamp,instrument,open,high,low,close,volume\n" + "".join(r[2] + "\n" for r in rows)
    assert demo_file("candles.csv").read_text() == made


def test_a_malformed_row_stops_the_run_naming_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    lines = demo_file("candles.csv").read_text().splitlines()
    lines[7] = lines[7].replace(",NSE:INFY,", ",NSE:NOSUCH,")
    bad.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(
        app, ["backtest", "--demo", "--history", str(bad), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert f"{bad}:8: column 'instrument': 'NSE:NOSUCH' is not in the instrument list" in (
        result.output
    )
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_bad_triggers_are_refused_with_the_apis_field_names(tmp_path: Path) -> None:
    bad = tmp_path / "triggers.json"
    bad.write_text(json.dumps([{"trigger_type": "single", "legs": []}]))
    result = CliRunner().invoke(app, ["backtest", "--demo", "--triggers", str(bad)])
    assert result.exit_code == 2
    assert "triggers[0].legs" in result.output


def test_ticks_replay_too(tmp_path: Path) -> None:
    """A tick stream (token, price, exchange time), as a recorder would write it."""
    ticks = tmp_path / "ticks.csv"
    ticks.write_text(
        "timestamp,instrument,price\n"
        "2026-11-27T09:15:00+05:30,408065,1550.00\n"
        "2026-11-27T09:15:01+05:30,408065,1544.90\n"
        "2026-11-27T09:15:05+05:30,408065,1546.00\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["backtest", "--demo", "--history", str(ticks), "--out", str(out), "--slippage", "1"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    t1 = report["triggers"][0]
    assert t1["fired"]["price"] == 1544.9
    assert t1["orders"][0]["fill_price"] == 1544.8  # one 10-paise tick of slippage
    assert report["data"]["kind"] == "ticks"
    assert report["data"]["holes"] == []
    tight = tmp_path / "tight"
    result = CliRunner().invoke(
        app,
        ["backtest", "--demo", "--history", str(ticks), "--out", str(tight), "--max-gap", "1"],
    )
    assert result.exit_code == 0, result.output
    assert "hole" in result.output
    (hole,) = json.loads((tight / "report.json").read_text())["data"]["holes"]
    assert (hole["after"], hole["before"]) == (
        "2026-11-27T09:15:01+05:30", "2026-11-27T09:15:05+05:30",
    )  # fmt: skip


def test_a_users_stored_triggers_are_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--user reads the user's live triggers from the store (HMT_DATABASE_URL), not
    another user's, and replays them over the same history."""
    import asyncio

    from hmt.api.offline import parse_triggers
    from hmt.cli.backtest import _listings
    from hmt.store import migrate
    from hmt.store.db import Database, create_engine
    from hmt.store.triggers import TriggerStore

    url = f"sqlite:///{tmp_path / 'hmt.db'}"
    master = {int(i.instrument.id): i.instrument for i in _listings(None)}
    text = demo_file("triggers.json").read_text()
    mine = parse_triggers(text, master, user_id="alice")[:2]
    theirs = parse_triggers(text, master, user_id="bob")[:1]

    async def seed() -> None:
        engine = create_engine(url)
        try:
            await migrate.upgrade(engine)
            store = TriggerStore(Database(engine))
            for n, trigger in enumerate((*mine, *theirs), start=1):
                stored = dataclasses.replace(trigger, id=str(uuid.UUID(int=n)))
                await store.create(stored, instrument=master[trigger.instrument_token])
        finally:
            await engine.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("HMT_DATABASE_URL", url)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["backtest", "--user", "alice", "--demo", "--no-plots", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    by_id = {t["id"]: t for t in report["triggers"]}
    assert sorted(by_id) == [str(uuid.UUID(int=1)), str(uuid.UUID(int=2))]  # not bob's
    golden = {t["id"]: t for t in json.loads(GOLDEN.read_text())["triggers"]}
    for n, name in ((1, "t1"), (2, "t2")):
        assert by_id[str(uuid.UUID(int=n))]["fired"] == golden[name]["fired"]


def test_an_instrument_without_data_is_reported(tmp_path: Path) -> None:
    """A trigger on an instrument the history has no price of cannot fire: the report
    and the console say so, rather than showing it quietly `active`."""
    triggers = tmp_path / "t.json"
    triggers.write_text(
        json.dumps(
            {
                "instrument_token": 2953217,
                "exchange": "NSE",
                "tradingsymbol": "TCS",
                "trigger_type": "single",
                "transaction_type": "BUY",
                "trigger_price_1": "3200",
                "quantity": 1,
                "product": "CNC",
            }
        )
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["backtest", "--demo", "--triggers", str(triggers), "--no-plots", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "NSE:TCS is named by a trigger but not in the history" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["without_data"] == ["NSE:TCS"]
    assert report["triggers"][0]["status"] == "active"


def test_kites_historical_candles_replay_as_the_csv_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--kite against the simulator (seed 1): the candles it serves are the demo CSV's,
    so every trigger fires as in the golden report."""
    import asyncio
    import threading

    from hmt.sim.simulator import Simulator

    ready: dict[str, str] = {}
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def serve() -> None:
        async def main() -> None:
            async with Simulator(seed=1, walk=False) as sim:
                ready.update(url=sim.api_url, key=sim.api_key, token=sim.access_token)
                started.set()
                await stop.wait()

        loop.run_until_complete(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert started.wait(10)
        monkeypatch.setenv("HMT_KITE_API_URL", ready["url"])
        monkeypatch.setenv("HMT_KITE_API_KEY", ready["key"])
        monkeypatch.setenv("HMT_KITE_ACCESS_TOKEN", ready["token"])
        out = tmp_path / "out"
        result = CliRunner().invoke(
            app,
            [
                "backtest", "--demo", "--no-plots", "--out", str(out),
                "--kite", "NSE:INFY", "--kite", "NSE:RELIANCE",
                "--from", "2026-11-27T09:15:00+05:30", "--to", "2026-11-27T15:29:00+05:30",
            ],
        )  # fmt: skip
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    golden = json.loads(GOLDEN.read_text())
    assert report["data"]["sources"] == [f"kite:{ready['url']}"]
    assert report["data"]["rows"] == golden["data"]["rows"]
    assert report["triggers"] == golden["triggers"]
