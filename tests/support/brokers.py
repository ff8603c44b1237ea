"""Either broker's simulator, driven the same way: what a test parametrized over brokers uses.

`SimSide` wraps the Kite `Simulator` or the `UpstoxSim` (`hmt sim --broker upstox`)
with one set of verbs: push a price, read the order book, count placements,
expire and renew the session, cut the feeds, and the engine's settings for it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hmt.core.model import Trigger
from hmt.core.types import Exchange, Leg
from hmt.kite import tags as kite_tags
from hmt.sim.simulator import Simulator
from hmt.sim.upstox.server import UpstoxSim
from hmt.upstox import tags as upstox_tags
from hmt.upstox.instruments import instrument_id
from tests.support.factories import make_trigger

BROKERS = ("kite", "upstox")  # `pytest.mark.parametrize("broker", BROKERS)`


@dataclass(frozen=True)
class Listed:
    """The instrument a broker's tests trade by default (its id, as the API takes it)."""

    token: int
    exchange: str
    tradingsymbol: str


KITE_INFY = Listed(408065, "NSE", "INFY")
UPSTOX_KEY = "NSE_EQ|INE002A01018"  # RELIANCE in the Upstox simulator's master
UPSTOX_RELIANCE = Listed(int(instrument_id(UPSTOX_KEY)), "NSE", "RELIANCE")
_UPSTOX_KEYS = {UPSTOX_RELIANCE.token: UPSTOX_KEY}


def start_sim(broker: str, seed: int, **kite: Any) -> Simulator | UpstoxSim:
    """The broker's simulator, not yet entered (`async with`); `kite` are the Kite one's
    extra arguments."""
    if broker == "upstox":
        return UpstoxSim(seed=seed)
    if broker != "kite":
        raise ValueError(f"broker must be one of {BROKERS}, not {broker!r}")
    return Simulator(seed=seed, heartbeat_interval=0.2, **kite)


@dataclass
class SimSide:
    """One running simulator, as a broker-neutral test drives it."""

    sim: Any  # Simulator or UpstoxSim
    _pushes: asyncio.Future[None] | None = field(default=None, repr=False)

    @property
    def broker(self) -> str:
        return "upstox" if isinstance(self.sim, UpstoxSim) else "kite"

    @property
    def listed(self) -> Listed:
        return UPSTOX_RELIANCE if self.broker == "upstox" else KITE_INFY

    @property
    def token(self) -> int:
        return self.listed.token

    def trigger(self, **overrides: Any) -> Trigger:
        """`make_trigger` on this broker's default instrument."""
        listed = self.listed
        fields = {
            "instrument_token": listed.token,
            "exchange": Exchange(listed.exchange),
            "tradingsymbol": listed.tradingsymbol,
            **({"quantity": 1} if self.broker == "upstox" else {}),
        }
        return make_trigger(**{**fields, **overrides})

    def settings(self, api_url: str | None = None) -> dict[str, Any]:
        """The engine's settings for this simulator (paper mode); `api_url` replaces its
        REST address (a fault proxy in front of it)."""
        url = api_url or self.sim.api_url
        if self.broker == "upstox":
            return {
                "broker": "paper",
                "paper_broker": "upstox",
                "upstox_api_url": url,  # orders, feed and master: one port
                "upstox_client_id": self.sim.client_id,
                "upstox_access_token": self.sim.access_token,
            }
        return {
            "broker": "paper",
            "kite_api_url": url,
            "kite_ws_url": self.sim.ws_url,
            "kite_api_key": self.sim.api_key,
            "kite_access_token": self.sim.access_token,
        }

    def tag(self, trigger_id: str, leg: Leg) -> str:
        """The tag this broker's adapter gives the leg's order (the same on both, by design)."""
        tags = upstox_tags if self.broker == "upstox" else kite_tags
        return tags.broker_tag(trigger_id, leg)

    def orders(self) -> list[dict[str, Any]]:
        """The simulator's order book, rows as its broker's API answers them."""
        rows: list[dict[str, Any]] = (
            self.sim.order_rows() if self.broker == "upstox" else self.sim.orders()
        )
        return rows

    def orders_tagged(self, tag: str) -> list[dict[str, Any]]:
        return [o for o in self.orders() if o.get("tag") == tag]

    def place_requests(self) -> int:
        """Order placements the simulator has been asked for, refused ones too."""
        if self.broker == "upstox":
            return int(self.sim.counters["/v3/order/place"])
        return int(self.sim.counters["rest_place_order"])

    def accepted(self) -> list[float]:
        """When each order the simulator's rate limiter counted arrived (monotonic)."""
        if self.broker == "upstox":
            stamps: list[float] = self.sim.accepted()
            return stamps
        kite: list[float] = self.sim.broker.rate_limiter.accepted()
        return kite

    def refused(self) -> int:
        """429s the simulator's own rate limiter answered (injected faults not counted)."""
        if self.broker == "upstox":
            return int(self.sim.refused)
        return int(self.sim.broker.rate_limiter.refused)

    def book_reads(self) -> int:
        """Reads of the whole order book (start-up reconciliation, look-ups by tag)."""
        if self.broker == "upstox":
            return int(self.sim.counters["/v2/order/retrieve-all"])
        return int(self.sim.counters["rest_orders"])

    def push(self, token: int, price: str) -> None:
        """Trade `token` at `price` rupees now (Upstox: sent after every earlier push)."""
        if self.broker != "upstox":
            self.sim.push_price(token, Decimal(price))
            return
        key, earlier = _UPSTOX_KEYS[token], self._pushes

        async def push() -> None:
            if earlier is not None:
                await earlier
            await self.sim.push_price(key, float(Decimal(price)))

        self._pushes = asyncio.ensure_future(push())

    async def pushed(self) -> None:
        """Every push so far has been written to the feed's sockets."""
        if self._pushes is not None:
            await self._pushes

    def cancel_pushes(self) -> None:
        if self._pushes is not None and not self._pushes.done():
            self._pushes.cancel()

    async def expire_session(self, *, close_feeds: bool = True) -> None:
        """The broker stops accepting the access token (orders and new feed connections);
        open feed connections are cut unless `close_feeds` is False."""
        if self.broker == "upstox":
            await self.sim.expire_session(close_feeds=close_feeds)
        elif close_feeds:
            self.sim.expire_session()
        else:
            self.sim.sessions.expire_all()

    def renew_session(self) -> str:
        """A fresh valid access token, as a login after the expiry would give."""
        if self.broker == "upstox":
            token: str = self.sim.access_token  # the simulator's expiry made it already
            return token
        renewed: str = self.sim.renew_session()
        return renewed

    def drop_feeds(self) -> None:
        """Cut every open feed connection (the engine reconnects)."""
        if self.broker == "upstox":
            self.sim.drop_feeds()
        else:
            self.sim.ticker.drop_all()
