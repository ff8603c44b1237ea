"""The simulator's historical candles: Kite's shape (the fixture), deterministic for the seed,
read by the official client and by ours."""

from __future__ import annotations

import asyncio
import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kiteconnect import KiteConnect, exceptions

from hmt.core.calendar import IST
from hmt.kite.historical import fetch_candles, parse_candles, pieces
from hmt.kite.instruments import KiteInstruments
from hmt.kite.rest import KiteRest
from hmt.sim.simulator import Simulator

INFY = 408065
DAY = "2026-11-27"  # a Friday: NSE trades
KITE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0530$")


def fixture() -> dict[str, Any]:
    shared = Path(os.environ.get("HMT_SHARED_DIR", "/work/shared"))
    return json.loads((shared / "kite/fixtures/historical_minute.json").read_text())  # type: ignore[no-any-return]


def client(sim: Simulator) -> KiteConnect:
    return KiteConnect(sim.api_key, access_token=sim.access_token, root=sim.api_url)


async def raw(sim: Simulator, path: str, **params: str) -> Any:
    rest = KiteRest(api_url=sim.api_url, api_key=sim.api_key, access_token=sim.access_token)
    try:
        return await rest.request("GET", path, params=params)
    finally:
        await rest.aclose()


async def test_the_answer_has_the_fixtures_shape(sim: Simulator) -> None:
    """`{"candles": [[ts, o, h, l, c, v], ...]}` with Kite's timestamp format and
    numbers where the fixture has numbers."""
    want = fixture()["data"]["candles"][0]
    data = await raw(
        sim,
        f"/instruments/historical/{INFY}/minute",
        **{"from": f"{DAY} 09:15:00", "to": f"{DAY} 09:20:00"},
    )
    assert set(data) == set(fixture()["data"])
    candles = data["candles"]
    assert len(candles) == 6  # 09:15 to 09:20, both included, as in the fixture
    for row in candles:
        assert len(row) == len(want)
        assert KITE_TIME.match(row[0])
        assert all(isinstance(v, int | float) for v in row[1:])
        assert row[2] >= max(row[1], row[4])
        assert row[3] <= min(row[1], row[4])
    assert [row[0][11:16] for row in candles] == [
        "09:15",
        "09:16",
        "09:17",
        "09:18",
        "09:19",
        "09:20",
    ]


async def test_the_same_seed_answers_the_same_candles() -> None:
    params = {"from": f"{DAY} 09:15:00", "to": f"{DAY} 15:29:00"}
    path = f"/instruments/historical/{INFY}/5minute"
    async with Simulator(seed=7) as a, Simulator(seed=7) as b, Simulator(seed=8) as c:
        first, again, other = [await raw(s, path, **params) for s in (a, b, c)]
    assert first == again
    assert first != other
    assert len(first["candles"]) == 75  # 375 minutes in 5-minute candles


async def test_bad_requests_are_kites_input_exceptions(sim: Simulator) -> None:
    kite = client(sim)
    with pytest.raises(exceptions.InputException, match="invalid interval"):
        await asyncio.to_thread(
            kite.historical_data, INFY, f"{DAY} 09:15:00", f"{DAY} 10:00:00", "2minute"
        )
    with pytest.raises(exceptions.InputException, match="invalid token"):
        await asyncio.to_thread(
            kite.historical_data, 1, f"{DAY} 09:15:00", f"{DAY} 10:00:00", "minute"
        )
    with pytest.raises(exceptions.InputException, match="max limit"):
        await asyncio.to_thread(
            kite.historical_data, INFY, "2026-01-01 09:15:00", f"{DAY} 10:00:00", "minute"
        )


async def test_the_official_client_reads_them(sim: Simulator) -> None:
    """kiteconnect's historical_data parses our answer: datetimes and floats, OI when asked."""
    kite = client(sim)
    rows = await asyncio.to_thread(
        kite.historical_data, INFY, f"{DAY} 09:15:00", f"{DAY} 09:44:00", "minute", oi=True
    )
    assert len(rows) == 30
    assert set(rows[0]) == {"date", "open", "high", "low", "close", "volume", "oi"}
    assert rows[0]["date"] == datetime(2026, 11, 27, 9, 15, tzinfo=rows[0]["date"].tzinfo)
    assert rows[0]["date"].utcoffset().total_seconds() == 19800


async def test_our_client_fetches_in_pieces_as_core_candles(sim: Simulator) -> None:
    rest = KiteRest(api_url=sim.api_url, api_key=sim.api_key, access_token=sim.access_token)
    try:
        listings = await KiteInstruments(rest).fetch()
        infy = next(i.instrument for i in listings if i.instrument.id == INFY)
        start = datetime(2026, 11, 26, 9, 15, tzinfo=IST)
        end = datetime(2026, 11, 27, 15, 29, tzinfo=IST)
        got = await fetch_candles(rest, infy, "minute", start, end, pause=0)
    finally:
        await rest.aclose()
    assert len(got) == 2 * 375
    assert got == sorted(got, key=lambda c: c.at)
    assert all(c.problem() is None for c in got)
    assert got[0].at == start


def test_the_fixture_parses_into_wire_units() -> None:
    from hmt.core.instruments import Instrument
    from hmt.core.types import Exchange, InstrumentToken

    instrument = Instrument(InstrumentToken(INFY), Exchange.NSE, "INFY", 100, 5, 1)
    candles = parse_candles(fixture()["data"], instrument)
    assert (candles[0].open, candles[0].high, candles[0].low, candles[0].close) == (
        170450, 170500, 169925, 170280,
    )  # fmt: skip
    assert candles[0].at.isoformat() == "2017-12-15T09:15:00+05:30"


def test_a_long_range_is_cut_into_pieces_one_request_may_ask() -> None:
    start = datetime(2026, 1, 1, tzinfo=IST)
    cuts = pieces("minute", start, datetime(2026, 6, 1, tzinfo=IST))
    assert len(cuts) == 3
    assert all((b - a).days <= 60 for a, b in cuts)
    assert cuts[0][0] == start
