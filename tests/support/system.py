"""The whole of hmt on loopback: a simulator as the broker, the real runtime, uvicorn, a client.

Everything is real but the broker's servers (a simulator speaks their protocol:
Kite's by default, Upstox's with `broker="upstox"`): the engine is built from
settings exactly as `hmt run` builds it, the API is served as `hmt run` serves
it (`hmt.cli.serving`) on an ephemeral port and reached over TCP with httpx.

A test parametrized over brokers reads `system.side` (tests.support.brokers.SimSide:
push, orders, place_requests, expire_session...) and `system.token`, and `create`
defaults to the broker's instrument.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from hmt.cli.serving import serving
from hmt.compose import build
from hmt.config import Settings
from hmt.engine.runtime import Runtime
from hmt.sim.simulator import Simulator
from hmt.sim.universe import Universe
from tests.support.brokers import BROKERS, SimSide, start_sim
from tests.support.eventually import eventually
from tests.support.fault_proxy import FaultProxy

__all__ = ["BROKERS", "System", "running_system"]


@dataclass
class System:
    sim: Any  # the Kite `Simulator`, or the `UpstoxSim` with broker="upstox"
    runtime: Runtime
    api_url: str
    user_token: str
    operator_token: str
    client: httpx.AsyncClient
    proxy: FaultProxy | None = None  # between the engine and the simulator's REST, if asked
    side: SimSide = field(init=False)  # the simulator, driven the same way for either broker

    def __post_init__(self) -> None:
        self.side = SimSide(self.sim)

    @property
    def token(self) -> int:
        """The broker's default instrument (Kite: INFY, Upstox: RELIANCE)."""
        return self.side.token

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.user_token}"}

    async def create(self, **body: Any) -> dict[str, Any]:
        """POST a trigger (INFY single BUY MARKET by default); the created record."""
        listed = self.side.listed
        payload = {
            "instrument_token": listed.token,
            "exchange": listed.exchange,
            "tradingsymbol": listed.tradingsymbol,
            "trigger_type": "single",
            "transaction_type": "BUY",
            "quantity": 1,
            "product": "CNC",
            **body,
        }
        response = await self.client.post("/triggers", json=payload, headers=self.auth())
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def trigger(self, trigger_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/triggers/{trigger_id}", headers=self.auth())
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def settled(self, trigger_id: str, within: float = 10.0) -> dict[str, Any]:
        """The trigger once it has left `triggered` for placed or failed."""
        final: dict[str, Any] = {}

        async def done() -> bool:
            final.update(await self.trigger(trigger_id))
            return final["status"] in ("placed", "failed")

        await eventually(done, within=within, interval=0.02)
        return final

    def orders(self) -> list[dict[str, Any]]:
        return self.side.orders()

    def orders_tagged(self, tag: str) -> list[dict[str, Any]]:
        return self.side.orders_tagged(tag)

    def push(self, token: int, price: str) -> None:
        self.side.push(token, price)

    def feed_state(self) -> str:
        """The engine's feed, in its own word ("connected", "token_invalid"...)."""
        return self.runtime.feed.status().state


@contextlib.asynccontextmanager
async def running_system(
    database_url: str,
    *,
    broker: str = "kite",
    seed: int = 11,
    rest_proxy: bool = False,
    sim_overrides: Callable[[Simulator], dict[str, Any]] | None = None,
    universe: Universe | None = None,
    **overrides: Any,
) -> AsyncIterator[System]:
    """Start the simulator, build the runtime on `database_url`, serve the API; stop it all.

    `overrides` replace settings; `sim_overrides(sim)` adds those that need the
    running simulator (its secret, its login URL); `universe` replaces the
    simulator's instruments (and so the instrument master). `rest_proxy`: the engine
    reaches the simulator's REST through a `FaultProxy` (`system.proxy`), so a
    test can refuse or cut its connections. `broker="upstox"`: the Upstox simulator
    (`hmt sim --broker upstox`), the engine in paper mode speaking Upstox to it.
    """
    if universe is not None and broker != "kite":
        raise ValueError("`universe` is the Kite simulator's")
    async with contextlib.AsyncExitStack() as stack:
        made = start_sim(broker, seed, **({} if universe is None else {"universe": universe}))
        sim = await stack.enter_async_context(made)
        side = SimSide(sim)
        stack.callback(side.cancel_pushes)
        api_url = sim.api_url
        proxy = None
        if rest_proxy:
            port = int(sim.api_url.rsplit(":", 1)[1])
            proxy = await stack.enter_async_context(FaultProxy(port))
            api_url = f"http://127.0.0.1:{proxy.port}"
        values: dict[str, Any] = {
            "database_url": database_url,
            **side.settings(api_url),
            "reconnect_delay_ms": 50,
            "retry_backoff_ms": 20,
            "health_check_interval_ms": 200,
            # Tests create triggers in bursts; the write limit's own tests turn it on.
            "rate_limit_writes_per_min": 0,
            **overrides,
            **(sim_overrides(sim) if sim_overrides else {}),
        }
        runtime = await build(Settings(**values))
        user = await runtime.tokens.issue("alice")
        operator = await runtime.tokens.issue("ops", operator=True)
        # As `hmt run` serves it: HMT_API_LOOP (default: the API on its own thread).
        served = await stack.enter_async_context(serving(runtime, host="127.0.0.1", port=0))
        api_url = f"http://127.0.0.1:{served.port}"
        async with httpx.AsyncClient(base_url=api_url, timeout=10) as client:
            system = System(sim, runtime, api_url, user.token, operator.token, client, proxy)
            system.side = side
            if not runtime.awaiting_login:  # else the broker refuses the feed until a login
                await eventually(lambda: runtime.feed.connected, within=10)
            yield system
