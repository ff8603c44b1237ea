"""A cluster node's order slots for every account it trades (docs/cluster.md, "Orders").

Each account's broker rate limit holds across the cluster: the node holding the
account's lease grants every node's order slots (`hmt.cluster.order_slots`). The
default account and each linked account get theirs, keyed by the limiter's account
id (`account_id(broker, api_key)`): the broker counts per app login, so two hmt
accounts with the same broker and API key share one key and one limit (the safe
side); one node never runs two leases on one key.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from hmt.cluster.account_lease import account_id
from hmt.cluster.order_slots import AccountSlots, SlottedOrders
from hmt.config import Settings
from hmt.core.throttle import Limit
from hmt.engine.cluster import ClusterNode
from hmt.engine.ports import OrderPort

log = structlog.get_logger("hmt.compose")

# Kite counts orders when they arrive (as `hmt.compose.THROTTLE_MARGIN_S`): a linked
# account's throttle and every account's cluster slots keep this slack.
THROTTLE_MARGIN_S = 0.05


def slot_wait_s(settings: Settings) -> float:
    """How long a cluster node's order may wait for a slot from the account's holder (0 on
    a single node): up to 5 s, less if the claim lease is short, so the slot's wait and
    the request still end within the lease (LeasePolicy: sent only while the lease has
    request timeout + 1 s left; renewals leave at least 2/3 of it)."""
    if settings.cluster_url is None:
        return 0.0
    room = settings.claim_lease_s * 2 / 3 - settings.broker_timeout_ms / 1000 - 1.5
    return max(0.5, min(5.0, room))


class ClusterSlots:
    """One node's `AccountSlots` by limiter key, each run beside the node's partitions."""

    def __init__(self, settings: Settings, node: ClusterNode) -> None:
        self.settings = settings
        self.node = node
        self.wait_s = slot_wait_s(settings)
        self.by_key: dict[str, AccountSlots] = {}

    async def slots(self, broker: str, api_key: str, limits: Sequence[Limit]) -> AccountSlots:
        """The slots of the account at `broker` with `api_key`: made and started (with the
        node, or now if it runs) the first time the key is asked for, then shared."""
        key = account_id(broker, api_key)
        slots = self.by_key.get(key)
        if slots is not None:
            return slots
        node, settings = self.node, self.settings
        slots = AccountSlots(
            node.nc,
            node.node_id,
            key,
            limits=limits,
            margin=THROTTLE_MARGIN_S,
            request_timeout=settings.broker_timeout_ms / 1000,
            ttl_s=settings.cluster_lease_ttl_s,
            wait_s=self.wait_s,
            live_nodes=lambda: node.keeper.live_nodes,
        )
        self.by_key[key] = slots
        await node.add_service(slots)
        log.info("cluster_order_slots", account=key, slot_wait_s=self.wait_s)
        return slots

    async def slotted(
        self, orders: OrderPort, broker: str, api_key: str, limits: Sequence[Limit]
    ) -> SlottedOrders:
        """`orders` with each `place` holding a slot of its account's cluster-wide limit."""
        slots = await self.slots(broker, api_key, limits)
        return SlottedOrders(orders, slots.client)
