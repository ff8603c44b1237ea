"""A cluster node: the engine holding only the partitions its leases give it.

`hmt.compose.build` makes one when HMT_CLUSTER_URL is set (docs/cluster.md): the
NATS connection and the lease bucket are opened there (a bucket of another TTL is
refused before anything starts), and the claim's fencing asks `token` here. `start`
runs after the engine has started (its book is empty: it holds no partition yet),
writes the right partition into any live row that lacks it, then starts the lease
keeper, whose callbacks load and drop partitions in the engine. `stop` gives every
lease back at once (a clean leave: the others take them within a round).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog
from nats.aio.client import Client
from nats.errors import Error as NatsError

from hmt.cluster.leases import LeaseKeeper
from hmt.engine.service import Engine

log = structlog.get_logger("hmt.engine.cluster")


class NodeService(Protocol):
    """Something a node runs beside its partitions (an account's order slots): started
    after the lease keeper (it reads the live nodes), stopped before it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ClusterNode:
    """One node's leases, wired to its engine."""

    def __init__(
        self,
        nc: Client,
        keeper: LeaseKeeper,
        engine: Engine,
        *,
        repartition: Callable[[], Awaitable[int]],
        services: Sequence[NodeService] = (),
    ) -> None:
        self.nc = nc
        self.keeper = keeper
        self.engine = engine
        self._repartition = repartition
        self._started = False
        self.services = list(services)
        # Run first on stop, while NATS is still open (the feed lease is given back).
        self.stopping: list[Callable[[], Awaitable[None]]] = []
        keeper.on_gained = engine.partition_gained
        keeper.on_lost = engine.partition_lost

    @property
    def node_id(self) -> str:
        return self.keeper.node_id

    def token(self, partition: int) -> int | None:
        """The lease token to claim with in `partition`; None unless validly held now."""
        return self.keeper.token(partition) if self._started else None

    async def start(self) -> None:
        fixed = await self._repartition()
        if fixed:
            log.info("triggers_repartitioned", rows=fixed)
        await self.keeper.start()
        self._started = True
        for service in self.services:
            await service.start()
        log.info(
            "cluster_node_started",
            node=self.node_id,
            partitions=self.keeper.partitions,
            lease_ttl_s=self.keeper.ttl_s,
        )

    async def add_service(self, service: NodeService) -> None:
        """Run `service` beside the partitions too: with them when the node starts, or at
        once if it has started (an account linked while running)."""
        self.services.append(service)
        if self._started:
            await service.start()

    async def stop(self) -> None:
        """Give the leases back (the engine drops their partitions), then disconnect."""
        for hook in self.stopping:
            try:
                await hook()
            except Exception:
                log.exception("cluster_stop_hook_failed")
        if self._started:
            self._started = False
            for service in reversed(self.services):
                await service.stop()
            await self.keeper.stop(release=True)
        with contextlib.suppress(NatsError, TimeoutError, OSError):
            await self.nc.close()

    def status(self) -> dict[str, object]:
        """For /stats: this node, the live nodes it sees and the partitions it holds."""
        held = self.keeper.held()
        return {
            "node": self.node_id,
            "live_nodes": sorted(self.keeper.live_nodes),
            "partitions": self.keeper.partitions,
            "held": sorted(held),
        }
