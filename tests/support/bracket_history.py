"""Judging brackets after a chaos schedule (issue 14, RELIABILITY 20 under chaos).

The entry and the exits are triggers: the trigger oracle judges each (duplicated,
lost, oco-double: at most one exit placed). This adds what only the bracket can
say, against the broker's book: the exits cover exactly what the entry's order
filled (`bracket-over` above it, `bracket-unarmed` below it once settled) and one
fill arms one exit (`bracket-armed-twice`; the simulator fills in one slice here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hmt.core.types import Leg
from hmt.kite.tags import broker_tag
from hmt.store.brackets import BracketRecord


def filled_at_broker(record: BracketRecord, orders: Iterable[Mapping[str, Any]]) -> int:
    """What the entry's order filled, as the broker's book says (0: no order)."""
    tag = broker_tag(record.id, Leg.FIRST, 0)
    return sum(int(o.get("filled_quantity") or 0) for o in orders if o.get("tag") == tag)


def judge_bracket(record: BracketRecord, orders: Iterable[Mapping[str, Any]]) -> list[str]:
    """The bracket's fault classes (none: it holds)."""
    orders = list(orders)
    quantities = [e.trigger.quantity for e in record.exit_records]
    broker = filled_at_broker(record, orders)
    classes = []
    if len(quantities) > 1 or record.generation > 1:
        classes.append("bracket-armed-twice")
    if sum(quantities) > max(record.filled, broker) or record.armed > record.filled:
        classes.append("bracket-over")
    if sum(quantities) < broker or record.armed < record.filled:
        classes.append("bracket-unarmed")
    return classes
