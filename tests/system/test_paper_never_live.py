"""RELIABILITY test 22: paper mode never reaches a live broker, for Kite and for Upstox.

Two halves. Start-up: paper mode given any of a broker's live addresses (its REST
API, Kite's ticker, Upstox's order host and instrument master) refuses to build,
naming the setting, before it opens the database or a socket. A run: paper mode
against each simulator, with a live-looking account configured (the app's secret,
a sealing key, a public redirect URI), fires a trigger while a Python audit hook
records every address the process resolves or connects to; none may be off
loopback, and none of the live hosts may even be looked up.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hmt.compose import build
from hmt.config import ConfigError, Settings
from hmt.sim.simulator import Simulator
from hmt.sim.upstox.server import UpstoxSim
from tests.support.brokers import BROKERS, SimSide
from tests.support.eventually import eventually
from tests.support.system import running_system

LIVE_HOSTS = {
    "api.kite.trade",
    "ws.kite.trade",
    "kite.zerodha.com",
    "api.upstox.com",
    "api-hft.upstox.com",
    "assets.upstox.com",
}
MASTER = "/market-quote/instruments/exchange/complete.json.gz"


class Seen:
    """Every host this process resolved and every address it connected to, while on."""

    def __init__(self) -> None:
        self.on = False
        self.resolved: list[str] = []
        self.connected: list[object] = []

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.on:
            return
        if event == "socket.getaddrinfo":
            host = args[0]
            self.resolved.append(host.decode() if isinstance(host, bytes) else str(host))
        elif event == "socket.connect":
            self.connected.append(args[1])


SEEN = Seen()
sys.addaudithook(SEEN.hook)  # audit hooks cannot be removed: it records only while on


@contextmanager
def watching() -> Iterator[Seen]:
    SEEN.resolved.clear()
    SEEN.connected.clear()
    SEEN.on = True
    try:
        yield SEEN
    finally:
        SEEN.on = False


def _off_loopback(address: object) -> bool:
    if isinstance(address, str | bytes):
        return False  # a Unix socket (PostgreSQL's, if ever)
    host = str(address[0]) if isinstance(address, tuple) else str(address)
    try:
        return not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return True  # a name where an address should be: not provably loopback


def _kite(sim_url: str, ws_url: str) -> dict[str, Any]:
    return {"kite_api_url": sim_url, "kite_ws_url": ws_url, "kite_api_key": "k"}


def _upstox(sim_url: str) -> dict[str, Any]:
    return {"paper_broker": "upstox", "upstox_api_url": sim_url, "upstox_client_id": "c"}


# (broker settings aimed at loopback, the one setting set to a live address, its value)
REFUSALS = [
    ("kite", "HMT_KITE_API_URL", {"kite_api_url": "https://api.kite.trade"}),
    ("kite", "HMT_KITE_WS_URL", {"kite_ws_url": "wss://ws.kite.trade"}),
    ("upstox", "HMT_UPSTOX_API_URL", {"upstox_api_url": "https://api.upstox.com"}),
    ("upstox", "HMT_UPSTOX_ORDER_URL", {"upstox_order_url": "https://api-hft.upstox.com"}),
    (
        "upstox",
        "HMT_UPSTOX_MASTER_URL",
        {"upstox_master_url": "https://assets.upstox.com" + MASTER},
    ),
]


@pytest.mark.parametrize(
    ("broker", "name", "live"), REFUSALS, ids=[name for _, name, _ in REFUSALS]
)
async def test_paper_mode_refuses_a_live_address_by_name_before_any_connection(
    tmp_path: Path, broker: str, name: str, live: dict[str, Any]
) -> None:
    """Each live address of each broker stops start-up with a message naming its setting;
    the database is never opened and no socket is connected."""
    database = tmp_path / "hmt.db"
    loopback = (
        _kite("http://127.0.0.1:9", "ws://127.0.0.1:9")
        if broker == "kite"
        else _upstox("http://127.0.0.1:9")
    )
    settings = Settings(
        database_url=f"sqlite:///{database}",
        broker="paper",
        secret_key="a-live-looking-sealing-key-0123456789",
        **{**loopback, **live},
    )
    with watching() as seen, pytest.raises(ConfigError) as refused:
        await build(settings)
    message = str(refused.value)
    print(f"\nRELIABILITY-22 start-up broker={broker} setting={name}: {message}")
    assert f"HMT_BROKER=paper needs the simulator, but {name} is" in message
    assert not database.exists()
    assert (seen.resolved, seen.connected) == ([], [])


async def test_paper_upstox_with_nothing_set_is_refused_not_pointed_at_upstox(
    tmp_path: Path,
) -> None:
    """HMT_PAPER_BROKER=upstox alone leaves Upstox's own hosts as the defaults: refused."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'hmt.db'}",
        broker="paper",
        paper_broker="upstox",
        upstox_client_id="c",
    )
    with pytest.raises(ConfigError, match=r"HMT_UPSTOX_API_URL is https://api\.upstox\.com"):
        await build(settings)


@pytest.mark.parametrize("broker", BROKERS)
async def test_a_paper_run_reaches_only_loopback(database_url: str, broker: str) -> None:
    """Against the simulator with a live-looking account configured, a trigger fires and
    every address resolved or connected to is loopback; no live host is looked up."""

    def account(sim: Simulator | UpstoxSim) -> dict[str, Any]:
        if isinstance(sim, UpstoxSim):
            return {
                "upstox_client_secret": "live-looking-upstox-secret",
                "upstox_redirect_uri": "https://hmt.example.com/upstox/callback",
            }
        return {"kite_api_secret": "live-looking-kite-secret"}

    with watching() as seen:
        async with running_system(
            database_url,
            broker=broker,
            secret_key="a-live-looking-sealing-key-0123456789",
            sim_overrides=account,
        ) as system:
            side: SimSide = system.side
            system.push(system.token, "1600.00")
            trigger = await system.create(trigger_price_1="1601.00")
            await eventually(lambda: system.runtime.engine.last_ltp.get(system.token) == 160_000)
            system.push(system.token, "1601.00")
            placed = await system.settled(trigger["id"])
            assert placed["status"] == "placed"
            assert len(side.orders()) == 1
    off = [address for address in seen.connected if _off_loopback(address)]
    live = sorted(set(seen.resolved) & LIVE_HOSTS)
    print(
        f"\nRELIABILITY-22 run broker={broker}: connections={len(seen.connected)} "
        f"off_loopback={off} hosts_resolved={sorted(set(seen.resolved))} live_hosts={live}"
    )
    assert seen.connected  # the hook saw the run's own connections
    assert off == []
    assert live == []
    assert all(host in ("127.0.0.1", "localhost", "::1") for host in seen.resolved), seen.resolved


def test_the_audit_hook_sees_a_connection_off_loopback() -> None:
    """The recorder is not blind: a connect to a non-loopback address (refused at once on
    this machine's TEST-NET address, or not) is recorded as off loopback."""
    with watching() as seen, socket.socket() as sock:
        sock.settimeout(0.01)
        with contextlib.suppress(OSError):
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed
    assert [address for address in seen.connected if _off_loopback(address)] == [("192.0.2.1", 9)]


async def test_a_kite_paper_run_never_trades_or_logs_in_a_linked_upstox_account_live(
    database_url: str,
) -> None:
    """Paper Kite with Upstox's addresses left at their live defaults: a linked Upstox
    account is stored but not traded (a trigger on it is refused naming
    HMT_UPSTOX_API_URL) and its login is refused before any exchange; nothing but
    loopback is resolved or connected to."""
    upstox = {
        "id": "up-1",
        "broker": "upstox",
        "label": "live-looking",
        "api_key": "live-looking-client-id",
        "api_secret": "live-looking-upstox-secret",
        "access_token": "live-looking-upstox-token",
    }
    with watching() as seen:
        async with running_system(
            database_url,
            secret_key="a-live-looking-sealing-key-0123456789",
            upstox_redirect_uri="https://hmt.example.com/upstox/callback",
        ) as system:
            linked = await system.client.post("/accounts", json=upstox, headers=system.auth())
            assert linked.status_code == 201, linked.text
            refused = await system.client.post(
                "/triggers",
                json={
                    "instrument_token": (1 << 52) + 1,  # an Upstox id
                    "exchange": "NSE",
                    "tradingsymbol": "RELIANCE",
                    "trigger_type": "single",
                    "transaction_type": "BUY",
                    "quantity": 1,
                    "product": "CNC",
                    "trigger_price_1": "2500.00",
                    "account": "up-1",
                },
                headers=system.auth(),
            )
            assert refused.status_code == 422, refused.text
            assert refused.json()["errors"][0]["rule"] == "other_broker", refused.text
            assert "HMT_UPSTOX_API_URL" in refused.text
            started = await system.client.get(
                "/accounts/up-1/login",
                headers={**system.auth(), "Accept": "application/json"},
            )
            assert started.status_code == 200, started.text
            state = started.json()["login_url"].split("state=", 1)[1].split("&", 1)[0]
            back = await system.client.get(
                "/upstox/callback", params={"code": "a-code", "state": state}
            )
            assert back.status_code == 409, back.text
            assert "HMT_UPSTOX_API_URL" in back.text
    live = sorted(set(seen.resolved) & LIVE_HOSTS)
    off = [address for address in seen.connected if _off_loopback(address)]
    print(f"\nRELIABILITY-22 kite paper, linked upstox: off_loopback={off} live_hosts={live}")
    assert (off, live) == ([], [])
