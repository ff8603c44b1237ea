"""The composition's Upstox ports against the Upstox simulator over loopback: ids and
orders wait for the master that names them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from hmt.compose.upstox import UpstoxParts, on_order_update, on_portfolio_state, upstox_parts
from hmt.config import Settings
from hmt.core.broker import BrokerError, ErrorKind, OrderReport
from hmt.core.model import OrderIntent
from hmt.core.types import (
    Exchange,
    InstrumentToken,
    Leg,
    OrderType,
    Product,
    Side,
    TriggerId,
)
from hmt.engine.instruments import InstrumentMaster
from hmt.engine.session import BrokerSession, SessionState
from hmt.sim.upstox.server import UpstoxSim
from hmt.upstox.instruments import instrument_id
from hmt.upstox.portfolio import StreamState
from hmt.upstox.tags import broker_tag
from tests.support.eventually import eventually

RELIANCE = "NSE_EQ|INE002A01018"
MASTER = "/market-quote/instruments/exchange/complete.json.gz"


@pytest.fixture
async def sim() -> AsyncIterator[UpstoxSim]:
    async with UpstoxSim(seed=5) as running:
        yield running


def _parts(
    sim: UpstoxSim,
    ticks: list[tuple[int, int]],
    master: str = MASTER,
    updates: list[OrderReport] | None = None,
) -> UpstoxParts:
    settings = Settings(
        broker="paper",
        paper_broker="upstox",
        upstox_api_url=sim.api_url,
        upstox_master_url=sim.api_url + master,
        upstox_client_id=sim.client_id,
        upstox_access_token=sim.access_token,
        reconnect_delay_ms=50,
    )
    # The engine's holder of the day's master, as the composition gives it.
    held: list[InstrumentMaster] = []
    parts = upstox_parts(
        settings,
        sim.access_token,
        on_ltp=lambda token, units: ticks.append((token, units)),
        on_order=(updates if updates is not None else []).append,
        on_portfolio_state=lambda state: None,
        read_master=lambda: held[0].copy(),
        awaiting_login=False,
    )
    held.append(InstrumentMaster(parts.master, clock=lambda: datetime.now(UTC)))
    return parts


def _intent(token: int, trigger_id: str = "t-1") -> OrderIntent:
    return OrderIntent(
        trigger_id=TriggerId(trigger_id),
        leg=Leg.FIRST,
        tag=broker_tag(trigger_id, Leg.FIRST),
        instrument_token=InstrumentToken(token),
        exchange=Exchange.NSE,
        tradingsymbol="RELIANCE",
        side=Side.BUY,
        quantity=1,
        product=Product.CNC,
        order_type=OrderType.MARKET,
        limit_price=None,
        price_divisor=100,
    )


async def test_an_order_before_any_master_reads_it_first_then_places(sim: UpstoxSim) -> None:
    """The first order of a fresh process reads the master, then goes out with the id's key."""
    parts = _parts(sim, [])
    try:
        order_id = await parts.orders.place(_intent(instrument_id(RELIANCE)))
        (row,) = sim.order_rows()
        assert (row["order_id"], row["instrument_token"]) == (order_id, RELIANCE)
        assert sim.counters[MASTER] == 1
    finally:
        await parts.rest.aclose()


async def test_no_readable_master_is_a_retry_and_an_unlisted_id_is_final(sim: UpstoxSim) -> None:
    """Without any master nothing can be named: RETRY, nothing sent. With today's master,
    an id it does not list is FINAL. Neither reaches the order endpoint."""
    missing = _parts(sim, [], master="/no/such/master.json.gz")
    listed = _parts(sim, [])
    try:
        with pytest.raises(BrokerError) as no_master:
            await missing.orders.place(_intent(instrument_id(RELIANCE)))
        assert no_master.value.kind is ErrorKind.RETRY
        with pytest.raises(BrokerError) as unlisted:
            await listed.orders.place(_intent(instrument_id("NSE_EQ|NOTLISTED")))
        assert unlisted.value.kind is ErrorKind.FINAL
        assert "not in today's Upstox master" in str(unlisted.value)
        assert sim.counters["/v3/order/place"] == 0
    finally:
        await missing.rest.aclose()
        await listed.rest.aclose()


async def test_ids_subscribed_before_the_master_wait_for_it(sim: UpstoxSim) -> None:
    """An id the feed is asked for before any master is held; the feed reads the master at
    start, subscribes it, and its price arrives in the instrument's units. Unsubscribing
    an id still waiting just forgets it."""
    ticks: list[tuple[int, int]] = []
    parts = _parts(sim, ticks)
    feed = parts.feed
    token = instrument_id(RELIANCE)
    try:
        feed.subscribe([token, instrument_id("NSE_EQ|NOTLISTED")])
        assert feed.pending == {token, instrument_id("NSE_EQ|NOTLISTED")}
        await feed.start()
        assert feed.pending == {instrument_id("NSE_EQ|NOTLISTED")}  # no master lists it
        await eventually(lambda: feed.connected, within=10)
        await eventually(lambda: (token, 250_000) in ticks, within=10)  # the snapshot
        await sim.push_price(RELIANCE, 2501.05)
        await eventually(lambda: (token, 250_105) in ticks, within=10)
        feed.unsubscribe([instrument_id("NSE_EQ|NOTLISTED")])
        assert feed.pending == set()
        status = feed.status()
        assert (status.state, status.subscribed_tokens, status.ticks) == ("connected", 1, 2)
    finally:
        await feed.stop()
        await parts.rest.aclose()
        await asyncio.sleep(0)


async def test_the_portfolio_stream_runs_on_the_session_token_and_hears_our_orders(
    sim: UpstoxSim,
) -> None:
    """The parts' portfolio stream: on the account's token, given each new one, its order
    updates handed on (the composition gives them to the fills)."""
    updates: list[OrderReport] = []
    parts = _parts(sim, [], updates=updates)
    portfolio = parts.portfolio
    await portfolio.start()
    try:
        await eventually(lambda: portfolio.connected)
        await parts.master.fetch()
        order_id = await parts.orders.place(_intent(int(instrument_id(RELIANCE))))
        await eventually(lambda: any(u.status == "COMPLETE" for u in updates))
        assert {u.order_id for u in updates} == {order_id}
        assert updates[-1].tag == broker_tag("t-1", Leg.FIRST)
        fresh = await sim.expire_session()
        await eventually(lambda: portfolio.stats.state is StreamState.TOKEN_INVALID)
        BrokerSession([parts.rest, parts.feed, portfolio]).renew(fresh)
        await eventually(lambda: portfolio.connected)
    finally:
        await portfolio.stop()
        await parts.rest.aclose()


class _Fills:
    def __init__(self) -> None:
        self.reports: list[OrderReport] = []
        self.pokes = 0

    def on_update(self, report: OrderReport) -> None:
        self.reports.append(report)

    def poke(self) -> None:
        self.pokes += 1


def test_only_our_orders_reach_the_fills_and_a_401_expires_the_session() -> None:
    fills = _Fills()
    ours = broker_tag("t-1", Leg.FIRST)
    for tag in (ours, "my-manual-order", None):
        report = OrderReport(order_id="1", status="COMPLETE", tag=tag, filled_quantity=1)
        on_order_update(fills, report)  # type: ignore[arg-type]
    assert [r.tags for r in fills.reports] == [(ours,)]
    session = BrokerSession([])
    on_portfolio_state(session, fills, StreamState.CONNECTED)  # type: ignore[arg-type]
    assert fills.pokes == 1  # updates sent while it was down are read from the book
    on_portfolio_state(session, fills, StreamState.RECONNECTING)  # type: ignore[arg-type]
    assert session.state is SessionState.VALID
    on_portfolio_state(session, fills, StreamState.TOKEN_INVALID)  # type: ignore[arg-type]
    assert session.state is SessionState.EXPIRED
    assert "portfolio stream" in session.reason
