"""The node's NATS connection, with timings fitted to the lease TTL.

nats-py's defaults notice a silent server after two missed pings two minutes
apart; a node must notice within a lease, and keep trying to reconnect for as long
as it runs (a NATS restart or a network blip must not end the node).
"""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client

log = logging.getLogger(__name__)


async def connect(
    servers: str, ttl_s: float, *, name: str = "hmt", persistent: bool = True
) -> Client:
    """Connect to `servers` (comma-separated NATS URLs) for a node with lease TTL `ttl_s`.

    `persistent`: keep trying, at start and after any loss (a node waits for NATS);
    otherwise fail on the first refused connect (a one-shot command).
    """

    async def disconnected() -> None:
        log.warning("NATS disconnected")

    async def reconnected() -> None:
        log.info("NATS reconnected")

    async def error(problem: Exception) -> None:
        log.warning("NATS error: %s", type(problem).__name__)

    return await nats.connect(
        servers=servers.split(","),
        name=name,
        connect_timeout=max(1, int(ttl_s)),
        ping_interval=max(1, int(ttl_s / 3)),
        max_outstanding_pings=2,
        allow_reconnect=persistent,
        max_reconnect_attempts=-1 if persistent else 1,
        reconnect_time_wait=min(1.0, ttl_s / 6),
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )
