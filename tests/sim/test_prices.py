"""Price models: the seeded random walk, CSV replay, and manual pushes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hmt.sim.prices import Market, PriceError, RandomWalk, Replay, ReplayError, parse_replay
from hmt.sim.universe import Universe
from hmt.waits import within
from tests.sim.support import INFY, NIFTY, TATASTEEL


def walk_path(seed: int, seconds: float = 20.0) -> list[tuple[int, int]]:
    market = Market(Universe(), clock=lambda: 0.0)
    seen: list[tuple[int, int]] = []
    market.listeners.append(lambda q: seen.append((q.token, q.last)))
    walk = RandomWalk(market, seed)
    for _ in range(int(seconds * 10)):
        walk.step(0.1)
    return seen


def test_walk_is_reproducible_for_a_seed() -> None:
    """The same seed gives the same trades; another seed gives others."""
    print("seeds 11 and 12")
    first = walk_path(11)
    assert first == walk_path(11)
    assert first != walk_path(12)


def test_walk_stays_positive_on_the_tick_grid_at_each_rate() -> None:
    """Every walked price is a positive multiple of the tick; each instrument trades at its rate."""
    universe = Universe()
    path = walk_path(3)
    for token, price in path:
        instrument = universe.get(token)
        assert instrument is not None
        assert price > 0
        assert price % instrument.tick == 0
    for instrument in universe:
        count = sum(1 for token, _ in path if token == instrument.token)
        assert count == pytest.approx(instrument.tick_rate * 20, abs=1)


def test_walk_moves_prices() -> None:
    """A walk of many trades leaves prices where they did not start."""
    market = Market(Universe())
    walk = RandomWalk(market, 4, tokens=[INFY])
    assert walk.burst(500) == 500
    assert market.quotes[INFY].last != market.universe.get(INFY).close  # type: ignore[union-attr]
    assert market.quotes[INFY].seq == 500


def test_push_price_trades_now_and_updates_the_day() -> None:
    """A manual push sets LTP, OHLC and volume, and tells listeners."""
    market = Market(Universe(), clock=lambda: 1_700_000_000.5)
    heard: list[int] = []
    market.listeners.append(lambda q: heard.append(q.last))
    market.push_price(TATASTEEL, "161.37")
    market.push_price(TATASTEEL, Decimal("158.01"))
    q = market.quotes[TATASTEEL]
    assert heard == [16137, 15801]
    assert (q.open, q.high, q.low, q.last) == (16137, 16137, 15801, 15801)
    assert q.volume > 0
    assert q.trade_time == 1_700_000_000


@pytest.mark.parametrize(
    ("token", "price", "needle"),
    [
        (INFY, "1600.05", "tick size 0.1"),
        (INFY, "1600.001", "more decimals"),
        (INFY, "-5", "positive"),
        (INFY, "abc", "not a number"),
        (123, "10", "not in the simulator's universe"),
        # Found by fuzz/replay_csv.py: beyond uint32 the ticker cannot carry it.
        (INFY, "1e999999999", "beyond the largest price"),
        (INFY, "42949672.96", "beyond the largest price"),
    ],
)
def test_push_price_refuses_bad_prices_clearly(token: int, price: str, needle: str) -> None:
    """A price off the grid, negative, not a number, or for an unknown token is refused."""
    with pytest.raises(PriceError, match=needle):
        Market(Universe()).push_price(token, price)


def test_replay_parses_epoch_and_iso_times_with_optional_volume() -> None:
    """Header skipped; ISO times without a zone are IST; volume is optional."""
    rows = parse_replay(
        "timestamp,token,ltp,volume\n"
        "1767000000,408065,1500.5\n"
        "2026-01-01T09:15:00,256265,25000.05,10\n"
        "\n# a comment\n"
        "2026-01-01T09:15:00+05:30,408065,1501,12\n",
        Universe(),
    )
    assert [(r.token, r.price, r.volume) for r in rows] == [
        (INFY, 150050, None),
        (NIFTY, 2500005, 10),
        (INFY, 150100, 12),
    ]
    assert rows[1].at == rows[2].at == 1767239100.0


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("x,408065,1500\n", 1, "timestamp"),
        ("1,408065,1500\n2,abc,1500\n", 2, "token"),
        ("1,999,1500\n", 1, "token"),
        ("1,408065,\n", 1, "ltp"),
        ("1,408065,15.001\n", 1, "ltp"),
        ("1,408065,-3\n", 1, "ltp"),
        ("1,408065,1500,many\n", 1, "volume"),
        ("1,408065,1500,-1\n", 1, "volume"),
        ("1,408065\n", 1, "row"),
        ("5,408065,1500\n4,408065,1500\n", 2, "timestamp"),
        # Found by fuzz/replay_csv.py: unbounded prices, volumes and times.
        ("1,408065,1e999999999\n", 1, "ltp"),
        ("1,408065,1500,4294967296\n", 1, "volume"),
        ("nan,408065,1500\n", 1, "timestamp"),
        ("1,408065,1500\ninf,408065,1500\n", 2, "timestamp"),
    ],
)
def test_replay_errors_name_the_line_and_field(text: str, line: int, field: str) -> None:
    """A bad row stops loading with an error that says where and what."""
    with pytest.raises(ReplayError) as caught:
        parse_replay(text, Universe())
    assert (caught.value.line, caught.value.field) == (line, field)
    assert f"line {line}, field {field}" in str(caught.value)


async def test_replay_plays_rows_in_order_into_the_market() -> None:
    """Replaying pushes each row as a trade, with replayed cumulative volume."""
    market = Market(Universe())
    seen: list[tuple[int, int, int]] = []
    market.listeners.append(lambda q: seen.append((q.token, q.last, q.volume)))
    rows = parse_replay("0,408065,1500,100\n0.01,408065,1501,150\n0.02,256265,25000\n", Universe())
    replay = Replay(market, rows, speed=100.0)
    await within(replay.run(), 10)
    assert replay.played == 3
    assert seen[:2] == [(INFY, 150000, 100), (INFY, 150100, 150)]
    assert seen[2][:2] == (NIFTY, 2500000)
