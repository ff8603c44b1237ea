"""The backtest over HTTP and the broker's candles, against the running hmt on loopback:
GET /instruments/{token}/candles, POST /backtests and GET /backtests/{id} (issue 17, 18)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hmt.api.backtests import latest_session
from hmt.core.calendar import IST
from hmt.sim.history import candles as sim_candles
from hmt.sim.universe import Universe
from hmt.sim.wire import Mode
from tests.support.eventually import eventually
from tests.support.system import System, running_system

INFY = 408065
DAY = "2026-11-27"
TRIGGER = {
    "instrument_token": INFY, "exchange": "NSE", "tradingsymbol": "INFY",
    "trigger_type": "single", "transaction_type": "BUY", "quantity": 1, "product": "MIS",
    "trigger_price_1": "1602.00",
}  # fmt: skip
TICKS = "timestamp,instrument,price\n" + "\n".join(
    f"{DAY}T09:{15 + n}:00+05:30,NSE:INFY,{price}"
    for n, price in enumerate(["1600.00", "1601.90", "1602.00", "1605.00", "1599.00"])
)


async def _finished(system: System, view: dict[str, Any]) -> dict[str, Any]:
    final: dict[str, Any] = {}

    async def done() -> bool:
        response = await system.client.get(f"/backtests/{view['id']}", headers=system.auth())
        assert response.status_code == 200, response.text
        final.update(response.json())
        return final["state"] != "running"

    await eventually(done, within=30, interval=0.05)
    return final


async def _start(system: System, body: dict[str, Any]) -> dict[str, Any]:
    response = await system.client.post("/backtests", json=body, headers=system.auth())
    assert response.status_code == 202, response.text
    return await _finished(system, response.json())


async def test_candles_are_the_brokers_for_the_period(sqlite_url: str) -> None:
    async with running_system(sqlite_url) as system:
        response = await system.client.get(
            f"/instruments/{INFY}/candles",
            params={"interval": "5minute", "from": f"{DAY}T09:15:00+05:30",
                    "to": f"{DAY}T10:15:00+05:30"},
            headers=system.auth(),
        )  # fmt: skip
        assert response.status_code == 200, response.text
        got = response.json()
        instrument = Universe().get(INFY)
        assert instrument is not None
        start = datetime.fromisoformat(f"{DAY}T09:15:00+05:30")
        want = sim_candles(instrument, 11, "5minute", start, start + timedelta(hours=1))
        assert len(got["candles"]) == len(want) == 13
        assert [Decimal(c["close"]) * 100 for c in got["candles"]] == [b.close for b in want]
        assert got["candles"][0]["at"] == "2026-11-27T09:15:00+05:30"
        # Without a period: the latest session so far (the last trading day before the open).
        today = await system.client.get(f"/instruments/{INFY}/candles", headers=system.auth())
        assert today.status_code == 200
        opens, closes = latest_session("NSE", datetime.now(UTC))
        assert today.json()["candles"][0]["at"] == opens.isoformat()
        assert len(today.json()["candles"]) == (closes - opens) // timedelta(minutes=1) + (
            0 if closes >= opens.replace(hour=15, minute=30) else 1
        )
        bad = await system.client.get(
            f"/instruments/{INFY}/candles", params={"interval": "2minute"}, headers=system.auth()
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "interval"
        unknown = await system.client.get("/instruments/42/candles", headers=system.auth())
        assert unknown.status_code == 404
        assert (await system.client.get(f"/instruments/{INFY}/candles")).status_code == 401


def test_latest_session_before_the_open_is_the_last_trading_day() -> None:
    monday_early = datetime(2026, 11, 30, 8, 0, tzinfo=IST)
    opens, closes = latest_session("NSE", monday_early)
    assert (opens, closes) == (
        datetime(2026, 11, 27, 9, 15, tzinfo=IST),
        datetime(2026, 11, 27, 15, 30, tzinfo=IST),
    )
    noon = datetime(2026, 11, 30, 12, 0, tzinfo=IST)
    assert latest_session("NSE", noon) == (datetime(2026, 11, 30, 9, 15, tzinfo=IST), noon)


async def test_a_csv_backtest_reports_fires_fills_and_chart_series(sqlite_url: str) -> None:
    async with running_system(sqlite_url) as system:
        done = await _start(
            system, {"triggers": [TRIGGER], "source": "csv", "csv": TICKS, "slippage_ticks": 0}
        )
        assert done["state"] == "done", done
        assert done["done"] == done["total"] == 5
        report = done["report"]
        (only,) = report["triggers"]
        assert only["fired"]["at"] == f"{DAY}T09:17:00+05:30"
        assert only["fired"]["price"] == 1602.0
        assert only["orders"][0]["fill_price"] == 1602.0
        assert report["summary"]["fired"] == 1
        assert done["series"]["NSE:INFY"][2] == [f"{DAY}T09:17:00+05:30", 1602.0]
        assert report["equity"]
        # Another user cannot read it.
        other = await system.runtime.tokens.issue("bob")
        response = await system.client.get(
            f"/backtests/{done['id']}", headers=system.auth(other.token)
        )
        assert response.status_code == 404


async def test_stored_triggers_over_the_brokers_candles(sqlite_url: str) -> None:
    """The caller's own active triggers, replayed over the simulator's minute candles."""
    async with running_system(sqlite_url) as system:
        await system.create(trigger_price_1="1.00", transaction_type="SELL")  # never
        await system.create(trigger_price_1="99999.00")  # never
        done = await _start(
            system,
            {"source": "candles", "instruments": ["NSE:INFY"], "interval": "minute",
             "from": f"{DAY}T09:15:00+05:30", "to": f"{DAY}T15:29:00+05:30"},
        )  # fmt: skip
        assert done["state"] == "done", done
        assert done["total"] == 375
        assert [t["status"] for t in done["report"]["triggers"]] == ["active", "active"]
        assert len(done["series"]["NSE:INFY"]) == 375


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"triggers": [TRIGGER], "source": "csv"}, "csv"),
        ({"triggers": [TRIGGER], "source": "csv", "csv": TICKS.replace("1605.00", "16o5")}, "csv"),
        ({"triggers": [{**TRIGGER, "quantity": 0}], "source": "csv", "csv": TICKS},
         "triggers[0].quantity"),
        ({"triggers": [TRIGGER], "source": "recording"}, "source"),
        ({"triggers": [TRIGGER], "source": "candles", "instruments": ["NSE:NOPE"],
          "from": f"{DAY}T09:15:00+05:30", "to": f"{DAY}T10:00:00+05:30"}, "instruments[0]"),
        ({"triggers": [TRIGGER], "source": "candles", "instruments": ["NSE:INFY"]}, "from"),
        ({"triggers": [TRIGGER], "source": "tape"}, "source"),
        ({"triggers": [TRIGGER], "source": "csv", "csv": TICKS, "slippage_ticks": -1},
         "slippage_ticks"),
        ({"source": "csv", "csv": TICKS}, "triggers"),
    ],
)  # fmt: skip
async def test_bad_input_is_a_422_naming_the_field(
    sqlite_url: str, body: dict[str, Any], field: str
) -> None:
    async with running_system(sqlite_url) as system:
        response = await system.client.post("/backtests", json=body, headers=system.auth())
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field
    if "16o5" in str(body.get("csv")):
        assert "csv:5: column 'price'" in response.json()["errors"][0]["message"]


async def test_the_engines_recording_replays_over_http(sqlite_url: str, tmp_path: Path) -> None:
    """Source `recording`: the engine's own HMT_RECORD_TICKS directory, narrowed by the
    period; the trigger fires where the recorded ticks crossed it."""
    async with running_system(
        sqlite_url, record_ticks=tmp_path / "ticks", tick_mode="ltp"
    ) as system:
        system.push(INFY, "1600.00")
        await system.create(trigger_price_1="9999.00")  # subscribes INFY
        # The simulator answers the subscribe and then the mode with a snapshot each; once
        # it holds the engine's mode, both are queued ahead of a marker tick, so the period
        # begun after the marker arrives leaves them out (else: 5 ticks, not 3).
        await eventually(
            lambda: any(c.modes.get(INFY) == Mode.LTP for c in system.sim.ticker.clients)
        )
        system.push(INFY, "1600.50")
        await eventually(lambda: system.runtime.engine.last_ltp.get(INFY) == 160050)
        begun = datetime.now(UTC)
        for price in ("1601.00", "1602.50", "1599.00"):
            system.push(INFY, price)
            units = int(Decimal(price) * 100)
            await eventually(lambda u=units: system.runtime.engine.last_ltp.get(INFY) == u)
        recorder = system.runtime.recorder
        assert recorder is not None
        await recorder.flush()
        done = await _start(
            system,
            {"triggers": [TRIGGER], "source": "recording", "from": begun.isoformat()},
        )
        assert done["state"] == "done", done
        assert done["total"] == 3  # the period leaves out the ticks before it
        (only,) = done["report"]["triggers"]
        assert only["fired"]["price"] == 1602.5
        assert [p for _, p in done["series"]["NSE:INFY"]] == [1601.0, 1602.5, 1599.0]


async def test_one_run_at_a_time_per_user(sqlite_url: str) -> None:
    """A second start while yours replays (in its own process) is a 429; another user's is
    not refused; yours finishes and the next is accepted."""
    async with running_system(sqlite_url) as system:
        body = {"triggers": [TRIGGER], "source": "csv", "csv": TICKS}
        first = await system.client.post("/backtests", json=body, headers=system.auth())
        assert first.status_code == 202
        again = await system.client.post("/backtests", json=body, headers=system.auth())
        assert again.status_code == 429
        assert "your backtest is running" in again.json()["detail"]
        bob = await system.runtime.tokens.issue("bob")
        theirs = await system.client.post("/backtests", json=body, headers=system.auth(bob.token))
        assert theirs.status_code == 202
        assert (await _finished(system, first.json()))["state"] == "done"
        assert (await _start(system, body))["state"] == "done"
