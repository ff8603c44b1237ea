"""A claim made from another process, for the cross-process race tests."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from typing import Any

from hmt.core.model import Fired, Trigger
from hmt.core.types import Leg
from hmt.kite.tags import broker_tag
from hmt.store.db import Database, create_engine
from hmt.store.triggers import TriggerStore

LEASE = timedelta(seconds=30)


def claim_in_process(url: str, trigger: Trigger, leg: int, ltp: int, start_at: float) -> bool:
    """Connect, wait for the shared start instant, claim once; True if this process won."""

    async def run() -> bool:
        db = Database(create_engine(url, application_name="hmt-claimer", pool_size=1))
        try:
            async with db.engine.connect() as conn:  # connect before the start line
                await conn.exec_driver_sql("SELECT 1")
            await asyncio.sleep(max(0.0, start_at - time.time()))
            tag = broker_tag(trigger.id, Leg(leg))
            fired = Fired(trigger, Leg(leg), ltp)
            return await TriggerStore(db).claim(
                fired, tag, owner=f"claimer-{os.getpid()}", lease=LEASE
            )
        finally:
            await db.dispose()

    return asyncio.run(run())


def warm(_: Any = None) -> int:
    """Make a worker import everything before the timed races start."""
    return 0


async def claim(
    store: TriggerStore,
    trigger: Trigger,
    leg: Leg = Leg.FIRST,
    ltp: int = 160_000,
    *,
    owner: str = "engine-a",
    sending: bool = True,
) -> bool:
    """One engine's claim as the executor makes it: Kite's tag, a lease, the first order_sent."""
    return await store.claim(
        Fired(trigger, leg, ltp),
        broker_tag(trigger.id, leg),
        owner=owner,
        lease=LEASE,
        sending=sending,
    )
