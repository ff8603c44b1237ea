"""A claim made from another process, for the cross-process race tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hmt.core.model import Fired, Trigger
from hmt.core.types import Leg
from hmt.store.db import Database, create_engine
from hmt.store.triggers import TriggerStore


def claim_in_process(url: str, trigger: Trigger, leg: int, ltp: int, start_at: float) -> bool:
    """Connect, wait for the shared start instant, claim once; True if this process won."""

    async def run() -> bool:
        db = Database(create_engine(url, application_name="hmt-claimer", pool_size=1))
        try:
            async with db.engine.connect() as conn:  # connect before the start line
                await conn.exec_driver_sql("SELECT 1")
            await asyncio.sleep(max(0.0, start_at - time.time()))
            return await TriggerStore(db).claim(Fired(trigger, Leg(leg), ltp))
        finally:
            await db.dispose()

    return asyncio.run(run())


def warm(_: Any = None) -> int:
    """Make a worker import everything before the timed races start."""
    return 0
