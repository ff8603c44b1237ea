"""RELIABILITY test 12's order throttle: a storm of fired triggers meets the broker's 10/s.

Each simulator enforces its broker's limits with 429s (Kite: 10/s, 200/min;
Upstox: 10/s, 500/min, 2000/30 min) and keeps the arrival time of every order
it counted, so the 1-second windows are checked at the broker's side, not the
engine's. Both brokers, both stores.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.audit import audit, backend
from tests.support.system import BROKERS, System, running_system

SEED = 11
PER_SECOND = 10  # Kite's (FACTS 2.4) and Upstox's (docs/upstox/FACTS.md 2.8), as enforced


def busiest_second(arrivals: list[float]) -> int:
    """The most arrivals in any window (t - 1 s, t], the simulator's own window."""
    most, start = 0, 0
    for end, at in enumerate(arrivals):
        while arrivals[start] <= at - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_busiest_second_counts_the_sliding_window() -> None:
    """The window helper counts arrivals less than a second apart, not calendar seconds."""
    assert busiest_second([]) == 0
    assert busiest_second([0.0, 0.5, 0.99, 1.0, 1.98]) == 3
    assert busiest_second([0.0, 1.0, 2.0]) == 1


async def _fire_storm(system: System, count: int, price: str) -> list[str]:
    """`count` BUY triggers at `price`, then one tick that fires them all; their ids."""
    system.push(system.token, "1600.00")
    # One at a time: fifty creates at once are over HMT_API_MAX_IN_FLIGHT and would be shed.
    triggers = [(await system.create(trigger_price_1=price))["id"] for _ in range(count)]
    system.push(system.token, price)
    for trigger_id in triggers:
        await system.settled(trigger_id, within=30)
    return triggers


@pytest.mark.parametrize("broker", BROKERS)
async def test_fifty_orders_on_one_tick_stay_within_the_rate_limit(
    database_url: str, broker: str
) -> None:
    """RELIABILITY 12: 50 fire on one tick; <= 10 arrive in any second, no 429, all placed."""
    async with running_system(database_url, broker=broker, seed=SEED) as system:
        side = system.side
        triggers = await _fire_storm(system, 50, "1610.00")
        result = await audit(system, triggers)
        arrivals = side.accepted()
        busiest = busiest_second(arrivals)
        retries = sum(r["attempts"] - 1 for r in result.records)
        all_placed = result.statuses == Counter(placed=50)
        print(
            f"\nRELIABILITY-12 storm backend={backend(database_url)} broker={broker} "
            f"seed={SEED} fired=50 "
            f"accepted={len(arrivals)} max_orders_in_any_1s={busiest} "
            f"sim_429s={side.refused()} engine_retries={retries} all_placed={all_placed} "
            f"spread_s={arrivals[-1] - arrivals[0]:.2f} {result.figures()}"
        )
        assert side.refused() == 0
        assert retries == 0
        assert busiest <= PER_SECOND
        assert len(arrivals) == 50
        assert all_placed
        assert result.exactly_once(), result.figures()


@pytest.mark.parametrize("broker", BROKERS)
async def test_injected_429s_still_place_every_order_exactly_once(
    database_url: str, broker: str
) -> None:
    """Orders refused with 429 by the broker are sent again after a wait, and each lands once."""
    # Enough retries that a trigger meeting several 429s in a row still gets through.
    async with running_system(database_url, broker=broker, seed=SEED, max_retries=8) as system:
        side = system.side
        assert side.book_reads() == 1  # the start-up read of the order book
        system.sim.faults.add(kind="error", endpoint="place_order", status=429, rate=0.3, times=12)
        triggers = await _fire_storm(system, 20, "1620.00")
        result = await audit(system, triggers)
        arrivals = side.accepted()
        injected = system.sim.faults.fired["error"]
        print(
            f"\nRELIABILITY-12 injected-429 backend={backend(database_url)} broker={broker} "
            f"seed={SEED} fired=20 injected_429s={injected} accepted={len(arrivals)} "
            f"max_orders_in_any_1s={busiest_second(arrivals)} sim_limit_429s={side.refused()} "
            f"lookups={side.book_reads() - 1} {result.figures()}"
        )
        assert injected > 0
        assert result.statuses == Counter(placed=20)
        assert result.exactly_once(), result.figures()
        # A 429 is certain: nothing was placed, nothing looked up after the start-up read.
        assert side.book_reads() == 1
        assert sum(result.sends.elements()) == 20 + injected
        assert side.refused() == 0
