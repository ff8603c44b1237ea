"""The chaos campaign's broker: either simulator behind one set of verbs.

The schedules (`chaos_schedule`) speak of three instruments: the one most
triggers trade and watch (`traded`, INFY on Kite), the index `create_watch`
triggers watch (`watched`, NIFTY 50) and the derivatives baskets add (`options`,
`{"option": n}`). On Kite they are what they always were. The Upstox
simulator lists fewer instruments, so there they are RELIANCE (its 0.05 tick
takes the schedules' 0.10 grid as is), Nifty 50 (`NSE_INDEX|Nifty 50`) and the
NIFTY future; prices are pushed in rupees on both. The faults are the same
kinds on both: REST rules (the same `FaultPlan`, the same endpoint names), the
feed cut (`drop_feeds`) and stalled (`stall_feeds`), the engine killed, the
database cut or rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hmt.sim.faults import FaultPlan
from hmt.sim.simulator import Simulator
from hmt.sim.upstox import universe as upstox_universe
from hmt.sim.upstox.server import UpstoxSim
from hmt.upstox.instruments import build_master
from tests.support.factories import INFY

KITE_WATCHED = "NSE:NIFTY 50"
UPSTOX_TRADED = "NSE_EQ|INE002A01018"  # RELIANCE
UPSTOX_WATCHED = "NSE_INDEX|Nifty 50"
UPSTOX_DERIVATIVES = ("NSE_FO|43919",)  # NIFTY FUT: an NFO order of one lot (75)


@dataclass(frozen=True)
class Tradable:
    """An instrument as the API's bodies name it, with what an order of it needs."""

    token: int
    exchange: str
    tradingsymbol: str
    lot_size: int = 1
    close: int = 0  # a LIMIT order's price (paise): the previous close, or last price


class ChaosMarket:
    """A simulator as the chaos runner drives it."""

    broker: str
    sim: Any
    traded: Tradable
    watched: Tradable
    options: list[Tradable]

    @property
    def faults(self) -> FaultPlan:
        plan: FaultPlan = self.sim.faults
        return plan

    async def push(self, token: int, rupees: str) -> None:
        """Trade `token` at `rupees` now (the feed sends it; Kite's book matches)."""
        raise NotImplementedError

    def orders(self) -> list[dict[str, Any]]:
        """The order book as the broker's API answers it (`order_id`, `tag`,
        `filled_quantity`: what the oracle reads)."""
        raise NotImplementedError

    def drop_feeds(self) -> None:
        raise NotImplementedError

    def stall_feeds(self, seconds: float) -> None:
        raise NotImplementedError

    def resume_feeds(self) -> None:
        raise NotImplementedError


class KiteMarket(ChaosMarket):
    broker = "kite"

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        infy, nifty = sim.universe.get(INFY), sim.universe.by_key(KITE_WATCHED)
        assert infy is not None, "the simulator lists no INFY"
        assert nifty is not None, f"the simulator lists no {KITE_WATCHED}"
        self.traded, self.watched = _kite(infy), _kite(nifty)
        options = [i for i in sim.universe if i.name == "NIFTY" and i.kind in ("CE", "PE")]
        options.sort(key=lambda i: (i.expiry, float(i.strike), i.kind))  # a fixed order
        self.options = [_kite(i) for i in options]
        assert self.options, "the simulator lists no NIFTY options"

    async def push(self, token: int, rupees: str) -> None:
        self.sim.push_price(token, rupees)

    def orders(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.sim.orders()
        return rows

    def drop_feeds(self) -> None:
        self.sim.ticker.drop_all()

    def stall_feeds(self, seconds: float) -> None:
        self.sim.ticker.stall(seconds)

    def resume_feeds(self) -> None:
        self.sim.ticker.resume()


class UpstoxMarket(ChaosMarket):
    broker = "upstox"

    def __init__(self, sim: UpstoxSim) -> None:
        self.sim = sim
        master = build_master(upstox_universe.INSTRUMENTS)
        self._keys = dict(master.keys)  # instrument id -> Upstox key
        listed = {master.keys[int(i.instrument.id)]: i.instrument for i in master.listings}

        def tradable(key: str) -> Tradable:
            instrument = listed[key]
            return Tradable(
                int(instrument.id),
                instrument.exchange.value,
                instrument.tradingsymbol,
                instrument.lot_size,
                round(Decimal(str(sim.instruments[key]["last_price"])) * 100),
            )

        self.traded, self.watched = tradable(UPSTOX_TRADED), tradable(UPSTOX_WATCHED)
        self.options = [tradable(key) for key in UPSTOX_DERIVATIVES]

    async def push(self, token: int, rupees: str) -> None:
        await self.sim.push_price(self._keys[token], float(Decimal(rupees)))

    def orders(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.sim.order_rows()
        return rows

    def drop_feeds(self) -> None:
        self.sim.drop_feeds()

    def stall_feeds(self, seconds: float) -> None:
        self.sim.stall_feeds(seconds)

    def resume_feeds(self) -> None:
        self.sim.resume_feeds()


def _kite(instrument: Any) -> Tradable:
    return Tradable(
        instrument.token,
        instrument.exchange,
        instrument.tradingsymbol,
        instrument.lot_size,
        instrument.close,
    )


def market_for(sim: Simulator | UpstoxSim) -> ChaosMarket:
    return UpstoxMarket(sim) if isinstance(sim, UpstoxSim) else KiteMarket(sim)
