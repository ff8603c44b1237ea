"""The semantics table of DESIGN section 1, and the order each fired leg places."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from hmt.core.model import OrderIntent, Trigger
from hmt.core.types import Direction, Leg, Side, TriggerType

_UP, _DOWN = Direction.AT_OR_ABOVE, Direction.AT_OR_BELOW

DIRECTIONS: Mapping[tuple[TriggerType, Side, Leg], Direction] = MappingProxyType(
    {
        (TriggerType.SINGLE, Side.BUY, Leg.FIRST): _UP,
        (TriggerType.SINGLE, Side.SELL, Leg.FIRST): _DOWN,
        # A BUY oco protects a short: stop-loss above, target below.
        (TriggerType.OCO, Side.BUY, Leg.FIRST): _UP,
        (TriggerType.OCO, Side.BUY, Leg.SECOND): _DOWN,
        # A SELL oco protects a long: stop-loss below, target above.
        (TriggerType.OCO, Side.SELL, Leg.FIRST): _DOWN,
        (TriggerType.OCO, Side.SELL, Leg.SECOND): _UP,
    }
)


def direction(trigger: Trigger, leg: Leg) -> Direction:
    """The leg's own direction (a trail's, else v2's stated), else DESIGN's table."""
    spec = trigger.spec(leg)
    if spec is not None:
        if spec.trail is not None:
            return spec.trail.direction
        if spec.direction is not None:
            return spec.direction
    return DIRECTIONS[(trigger.trigger_type, trigger.side, leg)]


def holds(direction: Direction, threshold: int, ltp: int) -> bool:
    """Whether a leg with this direction and threshold fires at `ltp` (equal fires)."""
    return ltp >= threshold if direction is Direction.AT_OR_ABOVE else ltp <= threshold


def legs_holding(trigger: Trigger, ltp: int) -> tuple[Leg, ...]:
    """Every price leg of `trigger` whose condition holds at `ltp` (the watched
    instrument's), checked one by one; a time leg never holds on a price, and
    a trailing leg's stop is the book's state, not the trigger's (never here)."""
    return tuple(
        leg
        for leg in trigger.legs
        if trigger.fire_at(leg) is None
        and trigger.trail(leg) is None
        and holds(direction(trigger, leg), trigger.threshold(leg), ltp)
    )


def order_for(trigger: Trigger, leg: Leg, tag: str) -> OrderIntent:
    """The order that a leg of one order places when it fires, carrying `tag`.

    Both legs of a v1 oco trade the same side: they close the same position.
    The tag is the broker adapter's (its rules are the broker's): the executor
    asks the order port for it and the claim stores it on the row. A v1 leg's
    order comes from the trigger's own fields, a v2 leg's from its spec
    (`Trigger.orders`); a basket's leg has no single order (`orders_for`).
    """
    return orders_for(trigger, leg, (tag,))[0]


def orders_for(trigger: Trigger, leg: Leg, tags: Sequence[str]) -> tuple[OrderIntent, ...]:
    """Every order `leg` places, in listed order, the k-th carrying `tags[k]`.

    A leg of one order gives `order_for`'s intent. The tags are the
    broker adapter's (`OrderPort.tag(trigger_id, leg, position)`).
    """
    specs = trigger.orders(leg)
    if len(tags) != len(specs):
        raise ValueError(f"leg {int(leg)} of {trigger.id}: {len(specs)} orders, {len(tags)} tags")
    size = len(specs)
    return tuple(
        OrderIntent(
            trigger_id=trigger.id,
            leg=leg,
            tag=tag,
            instrument_token=spec.instrument_token,
            exchange=spec.exchange,
            tradingsymbol=spec.tradingsymbol,
            side=spec.side,
            quantity=spec.quantity,
            product=spec.product,
            order_type=spec.order_type,
            limit_price=spec.price,
            price_divisor=spec.price_divisor,
            position=position,
            basket=size,
            trigger_price=spec.trigger_price,
            validity=spec.validity,
            account=trigger.account,
        )
        for position, (spec, tag) in enumerate(zip(specs, tags, strict=True))
    )
