"""Live/replay parity (issue 17): a session run live against the simulator with the tick
recorder on, then replayed by `hmt backtest --recording`: the same triggers fire, at the
same prices, in the same order.

Live is everything real but Kite (the simulator over loopback, the runtime as `hmt
run` builds it, the API over TCP, SQLite). The triggers are the very JSON bodies
posted to the API, written to a file for the backtest. Prices move only when the
test pushes them, each push awaited until the engine has seen it, so each fire
has a tick of its own and "the order" is well defined. The script puts prices at
each level exactly and one tick short of it, so a replay with another rule (at or
past, strictly past, the wrong side) fires something else, or elsewhere.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from hmt.cli import app
from tests.support.eventually import eventually
from tests.support.system import System, running_system

INFY, RELIANCE, NIFTY = 408065, 738561, 256265

_INFY = {"instrument_token": INFY, "exchange": "NSE", "tradingsymbol": "INFY"}
_RELIANCE = {"instrument_token": RELIANCE, "exchange": "NSE", "tradingsymbol": "RELIANCE"}
_NIFTY = {"instrument_token": NIFTY, "exchange": "NSE", "tradingsymbol": "NIFTY 50"}


def _order(instrument: dict[str, Any], side: str, quantity: int = 1) -> dict[str, Any]:
    return {**instrument, "transaction_type": side, "quantity": quantity, "product": "MIS"}


def bodies(at: datetime) -> list[dict[str, Any]]:
    """One of each kind the API takes: single both ways, oco, a watched instrument, a
    time leg, a basket, a trailing stop; plus one the script never reaches. `at`: the
    time leg's time."""
    return [
        # 1: single BUY at or above 1610 (v1)
        {**_INFY, "trigger_type": "single", "transaction_type": "BUY", "quantity": 1,
         "product": "MIS", "trigger_price_1": "1610.00"},
        # 2: oco SELL, stop 1580 / target 1650 (v1): the target is reached first
        {**_INFY, "trigger_type": "oco", "transaction_type": "SELL", "quantity": 1,
         "product": "MIS", "trigger_price_1": "1580.00", "trigger_price_2": "1650.00"},
        # 3: INFY bought on NIFTY 50 falling to 24,900 (v2, a watched instrument)
        {"trigger_type": "single", "watch": _NIFTY,
         "legs": [{"condition": {"price": "24900.00", "direction": "at_or_below"},
                   "orders": [_order(_INFY, "BUY")]}]},
        # 4: at a time, buy RELIANCE (v2 time leg)
        {"trigger_type": "single",
         "legs": [{"condition": {"at": at.isoformat()},
                   "orders": [_order(_RELIANCE, "BUY")]}]},
        # 5: a basket on RELIANCE at or above 1420: two orders, two instruments
        {"trigger_type": "single",
         "legs": [{"condition": {"price": "1420.00", "direction": "at_or_above"},
                   "orders": [_order(_RELIANCE, "SELL", 2), _order(_INFY, "BUY", 1)]}]},
        # 6: single SELL at or below 1500: never reached
        {**_INFY, "trigger_type": "single", "transaction_type": "SELL", "quantity": 1,
         "product": "MIS", "trigger_price_1": "1500.00"},
        # 7: oco on RELIANCE, its stop reached (v2, stated directions)
        {"trigger_type": "oco",
         "legs": [{"condition": {"price": "1390.00", "direction": "at_or_below"},
                   "orders": [_order(_RELIANCE, "SELL")]},
                  {"condition": {"price": "1450.00", "direction": "at_or_above"},
                   "orders": [_order(_RELIANCE, "SELL")]}]},
        # 8: a trailing stop on RELIANCE, 5.00 under the highs once they reach 1415
        {"trigger_type": "single",
         "legs": [{"condition": {"trail": {"kind": "price", "offset": "5.00",
                                           "activation": "1415.00"}},
                   "orders": [_order(_RELIANCE, "SELL")]}]},
    ]  # fmt: skip


# Before the time leg: each level touched one tick short first, then exactly.
BEFORE = [
    (INFY, "1609.90"),  # one tick short of 1
    (NIFTY, "24900.05"),  # one tick short of 3
    (INFY, "1610.00"),  # 1 fires, exactly at its price
    (RELIANCE, "1419.90"),  # one tick short of 5
    (INFY, "1649.90"),  # one tick short of 2's target
    (NIFTY, "24900.00"),  # 3 fires
    (INFY, "1650.00"),  # 2 fires: its target
]
# After it: the basket, the second oco's stop past its level, and noise.
AFTER = [
    (RELIANCE, "1420.00"),  # 5 fires; 8's stop trails up to 1415.00
    (RELIANCE, "1415.10"),  # one tick above 8's stop
    (RELIANCE, "1415.00"),  # 8 fires, exactly at its trailed stop
    (INFY, "1580.00"),  # 2 already fired: nothing
    (RELIANCE, "1390.10"),  # one tick short of 7's stop
    (RELIANCE, "1388.50"),  # 7 fires on its stop, past its level
    (INFY, "1500.10"),  # one tick short of 6
]
START = [(INFY, "1600.00"), (RELIANCE, "1400.00"), (NIFTY, "25000.00")]


async def _push(system: System, token: int, price: str) -> None:
    system.push(token, price)
    units = int(Decimal(price) * 100)
    await eventually(lambda: system.runtime.engine.last_ltp.get(token) == units, within=10)


def _decimal(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


async def _fired_in_order(system: System, ids: list[str]) -> list[tuple[int, int, Decimal | None]]:
    """(1-based index in the file, leg, price) of each trigger that fired, by fire time."""
    fired = []
    for index, trigger_id in enumerate(ids, start=1):
        record = await system.trigger(trigger_id)
        if record["triggered_at"] is not None:
            at = datetime.fromisoformat(record["triggered_at"])
            price = record["triggered_price"]  # a time leg fires at no price
            fired.append((at, index, record["triggered_leg"], _decimal(price)))
    return [(index, leg, price) for _, index, leg, price in sorted(fired)]


async def test_a_recorded_session_replays_fire_for_fire(tmp_path: Path, sqlite_url: str) -> None:
    recording = tmp_path / "ticks"
    async with running_system(sqlite_url, record_ticks=recording) as system:
        for token, price in START:
            system.push(token, price)
        # The time leg: late enough for the script before it on a loaded machine.
        at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
        sent = bodies(at)
        ids = []
        for body in sent:
            response = await system.client.post("/triggers", json=body, headers=system.auth())
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        for token, price in BEFORE:
            await _push(system, token, price)
        assert datetime.now(UTC) < at, "the script ran past the time leg: the test is too slow"
        assert (await system.settled(ids[3], within=15))["status"] == "placed"
        for token, price in AFTER:
            await _push(system, token, price)
        for index in (0, 1, 2, 4, 7, 6):
            assert (await system.settled(ids[index]))["status"] == "placed"
        live = await _fired_in_order(system, ids)
        assert system.runtime.recorder is not None
        stats = (await system.client.get("/stats", headers=system.auth())).json()
        assert stats["recording"]["dropped"] == 0
        assert stats["recording"]["recorded"] + stats["recording"]["buffered"] >= len(
            START + BEFORE + AFTER
        )
    assert system.runtime.recorder.dropped == 0
    # The session as lived: these six, in this order, at these prices.
    assert [(i, leg) for i, leg, _ in live] == [
        (1, 1), (3, 1), (2, 2), (4, 1), (5, 1), (8, 1), (7, 1)
    ]  # fmt: skip

    triggers = tmp_path / "triggers.json"
    triggers.write_text(json.dumps(sent))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["backtest", "--triggers", str(triggers), "--recording", str(recording),
         "--out", str(out), "--no-plots"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    replayed = sorted(
        (
            (datetime.fromisoformat(t["fired"]["at"]), int(t["id"][1:]), t["fired"]["leg"],
             _decimal(t["fired"]["price"]))
            for t in report["triggers"]
            if t["fired"] is not None
        ),
    )  # fmt: skip
    assert [(i, leg, price) for _, i, leg, price in replayed] == live
    # The replay fired on the same ticks: a fire's time is its tick's receive time.
    assert report["summary"]["fired"] == len(live)


async def test_full_mode_records_the_exchange_timestamp(tmp_path: Path, sqlite_url: str) -> None:
    """In full mode each tick is recorded from the typed ticks, with the exchange's time;
    the recording off (no HMT_RECORD_TICKS) builds no recorder at all."""
    recording = tmp_path / "ticks"
    async with running_system(sqlite_url, record_ticks=recording, tick_mode="full") as system:
        system.push(INFY, "1600.00")
        await system.create(trigger_price_1="9999.00")  # subscribes INFY
        await _push(system, INFY, "1601.00")
    rows = [
        line.split(",")
        for path in sorted(recording.glob("ticks-*.csv"))
        for line in path.read_text().splitlines()[1:]
    ]
    assert [r[2] for r in rows if r[1] == str(INFY)][-1:] == ["160100"]
    # The tick sent on subscribing, before the mode is set to full, carries no time.
    assert all(r[3] == "" or r[3].isdigit() for r in rows)
    stamp = int(rows[-1][3])
    assert abs(stamp - int(rows[-1][0]) // 10**9) <= 2
    async with running_system(sqlite_url) as system:
        assert system.runtime.recorder is None


def test_a_bad_recording_is_refused_naming_the_row(tmp_path: Path) -> None:
    (tmp_path / "ticks").mkdir()
    bad = tmp_path / "ticks" / "ticks-20261201T040000-1-000001.csv"
    bad.write_text("received_ns,instrument,price,exchange_ts\n1764561600000000000,42,100,\n")
    triggers = tmp_path / "triggers.json"
    triggers.write_text(json.dumps(bodies(datetime.now(UTC))[:1]))
    result = CliRunner().invoke(
        app,
        ["backtest", "--triggers", str(triggers), "--recording", str(tmp_path / "ticks"),
         "--out", str(tmp_path / "out"), "--no-plots"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"{bad}:2: column 'instrument': 42 is not in the instrument list" in result.output
