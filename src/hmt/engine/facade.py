"""What the HTTP API may use of a running hmt, and nothing more.

The API is typed against this protocol, not against the runtime the
composition assembles, so a route cannot reach into the supervisor or a broker
adapter, and a test can serve the API over anything that has these members.
"""

from __future__ import annotations

from typing import Any, Protocol

from hmt.config import Settings
from hmt.engine.health import Health
from hmt.engine.instruments import InstrumentMaster
from hmt.engine.ports import Feed
from hmt.engine.service import Engine
from hmt.store.db import Database
from hmt.store.tokens import TokenStore
from hmt.store.triggers import TriggerStore


class Facade(Protocol):
    """A running hmt as the API sees it."""

    settings: Settings
    db: Database  # the counts behind limits and /metrics
    tokens: TokenStore
    triggers: TriggerStore
    engine: Engine  # refresh after a write, last prices, live events, start and stop
    feed: Feed  # its status, for /metrics
    instruments: InstrumentMaster  # checks at create and edit, and the search

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def health(self) -> Health: ...
    def stats(self) -> dict[str, Any]: ...

    async def use_access_token(self, access_token: str) -> bool:
        """PUT /broker/session: store it (sealed, if configured) and trade with it; stored?"""
        ...

    async def kite_login(self, request_token: str) -> bool:
        """/kite/callback: exchange the request token, then as `use_access_token`."""
        ...
