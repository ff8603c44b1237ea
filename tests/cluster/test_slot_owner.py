"""The account holder's slot book (hmt.cluster.order_slots.SlotOwner), without NATS."""

from __future__ import annotations

import asyncio

from hmt.cluster.order_slots import STALE_S, SlotOwner
from hmt.core.throttle import Limit


def owner(limit: Limit, *, request_timeout: float = 5.0) -> tuple[SlotOwner, list[int | None]]:
    token: list[int | None] = [None]
    slots = SlotOwner(
        "node-1",
        (limit,),
        margin=0.0,
        request_timeout=request_timeout,
        valid=lambda: token[0],
        ttl_s=30.0,  # a dead holder's orders left the window long before a gain
    )
    return slots, token


async def test_nothing_is_granted_by_a_node_not_holding_the_account() -> None:
    slots, token = owner(Limit(10, 1.0))
    loop = asyncio.get_running_loop()
    assert await slots.grant(loop.time() + 5) is None
    token[0] = 7
    slots.gained(7)
    assert await slots.grant(loop.time() + 5) == "node-1.7.1"
    token[0] = None  # the lease's local deadline passed before the keeper noticed
    assert await slots.grant(loop.time() + 5) is None


async def test_a_done_for_another_holders_slot_frees_nothing() -> None:
    # A short window: a slot wrongly ended would leave it within the wait below.
    slots, token = owner(Limit(2, 0.1))
    loop = asyncio.get_running_loop()
    token[0] = 7
    slots.gained(7)
    old = await slots.grant(loop.time() + 1)
    assert old is not None
    slots.lost()
    token[0] = 8
    slots.gained(8)
    assert await slots.grant(loop.time() + 1) is not None
    assert await slots.grant(loop.time() + 1) is not None
    slots.done(old)  # the earlier lease's grant: not one of these two, both in flight
    assert await slots.grant(loop.time() + 0.3) is None


async def test_a_slot_never_reported_done_counts_until_its_request_must_have_ended() -> None:
    slots, token = owner(Limit(1, 1.0), request_timeout=0.1)
    loop = asyncio.get_running_loop()
    token[0] = 7
    slots.gained(7)
    granted_at = loop.time()
    assert await slots.grant(granted_at + 1) is not None  # its asker dies: no done
    assert await slots.grant(loop.time() + 0.3) is None
    assert await slots.grant(loop.time() + 5) is not None
    # Counted in flight until STALE_S + the timeout, then as sent then, for the window.
    assert loop.time() - granted_at >= STALE_S + 0.1 + 1.0


async def test_a_handed_off_holder_waits_out_its_last_grant() -> None:
    slots, token = owner(Limit(10, 1.0))
    loop = asyncio.get_running_loop()
    assert slots.quiet_s() == 0.0  # never granted: nothing to wait for
    token[0] = 7
    slots.gained(7)
    await slots.grant(loop.time() + 1)
    assert STALE_S + 1.0 - 0.1 < slots.quiet_s() <= STALE_S + 1.0
