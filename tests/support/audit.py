"""The Jepsen-style check of a system test: the database's story against the broker's book.

Every trigger a test fired is read back through the API (with its events)
and matched by its broker tag against the simulator's order book, the judge
of what was really placed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hmt.core.types import Leg
from hmt.kite.tags import broker_tag
from tests.support.system import System


@dataclass
class Audit:
    """What happened to a set of triggers, from both sides."""

    fired: int = 0
    max_per_tag: int = 0  # broker orders carrying one trigger's tag, at most
    duplicates: int = 0  # broker orders beyond the first, over every tag
    lost: int = 0  # fired, not failed, and no order at the broker
    disagreements: int = 0  # the database's status or order id differs from the broker's book
    statuses: Counter[str] = field(default_factory=Counter)
    sends: Counter[int] = field(default_factory=Counter)  # order requests per trigger -> triggers
    records: list[dict[str, Any]] = field(default_factory=list)

    def figures(self) -> str:
        return (
            f"fires={self.fired} max_orders_per_tag={self.max_per_tag} "
            f"duplicates={self.duplicates} lost={self.lost} "
            f"db_vs_sim_disagreements={self.disagreements} "
            f"statuses={dict(sorted(self.statuses.items()))} "
            f"sends_histogram={dict(sorted(self.sends.items()))}"
        )

    def exactly_once(self) -> bool:
        return self.max_per_tag <= 1 and not (self.duplicates or self.lost or self.disagreements)


async def audit(system: System, trigger_ids: list[str]) -> Audit:
    """Read each trigger back and compare it with the simulator's orders for its tag."""
    result = Audit()
    for trigger_id in trigger_ids:
        record = await system.trigger(trigger_id)
        result.records.append(record)
        leg = Leg(record["triggered_leg"] or 1)
        orders = system.orders_tagged(broker_tag(trigger_id, leg))
        status = record["status"]
        result.statuses[status] += 1
        if record["triggered_leg"] is not None:
            result.fired += 1
        result.max_per_tag = max(result.max_per_tag, len(orders))
        result.duplicates += max(0, len(orders) - 1)
        if not orders and status not in ("failed", "active", "paused", "cancelled"):
            result.lost += 1
        placed_matches = len(orders) == 1 and record["order_id"] == orders[0]["order_id"]
        if (status == "placed") != placed_matches or (status != "placed" and orders):
            result.disagreements += 1
        result.sends[sum(e["kind"] == "order_sent" for e in record["events"] or ())] += 1
    return result


def backend(database_url: str) -> str:
    """`sqlite` or `postgresql`, for the figures a test prints."""
    return database_url.split(":", 1)[0].split("+", 1)[0]
