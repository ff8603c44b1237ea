"""A Kite engine beside the Upstox simulator, with a linked Upstox account: both brokers'
instruments in one master (docs/accounts.md, "Two brokers in one process"). For the
tests of what the API and the UI show of the two; tests/system/test_two_brokers.py
trades through them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from hmt.sim.upstox.server import UpstoxSim
from tests.support.brokers import SimSide, start_sim
from tests.support.system import System, running_system

SEALING_KEY = "a-test-sealing-key-0123456789"  # linked accounts are stored sealed


@contextlib.asynccontextmanager
async def kite_beside_upstox(
    database_url: str, seed: int = 13
) -> AsyncIterator[tuple[System, SimSide]]:
    """The Kite simulator as the default account's broker, the Upstox simulator beside it."""
    async with start_sim("upstox", seed) as upstox:
        assert isinstance(upstox, UpstoxSim)
        side = SimSide(upstox)
        try:
            async with running_system(
                database_url, secret_key=SEALING_KEY, seed=seed, upstox_api_url=upstox.api_url
            ) as system:
                yield system, side
        finally:
            side.cancel_pushes()


async def link_upstox(system: System, side: SimSide, account_id: str = "up-1") -> dict[str, Any]:
    """Link the Upstox simulator's account (`POST /accounts`): 201, the account."""
    linked = await system.client.post(
        "/accounts",
        json={
            "id": account_id,
            "broker": "upstox",
            "label": "Upstox, mine",
            "api_key": side.sim.client_id,
            "access_token": side.sim.access_token,
        },
        headers=system.auth(),
    )
    assert linked.status_code == 201, linked.text
    body: dict[str, Any] = linked.json()
    return body
