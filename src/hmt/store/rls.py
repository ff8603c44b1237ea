"""Row-level security on PostgreSQL: a non-owner role sees only `hmt.user_id`'s rows.

The policies are created by migration 0001 on `hmt_gtt_orders` and
`hmt_trigger_events`, and by 0003 on `hmt_trigger_orders`: `USING` and
`WITH CHECK` both `user_id = current_setting('hmt.user_id', true)`.

RLS is ENABLEd but not FORCEd: the table owner (the role that ran the
migrations, which the engine uses to load every user's triggers) is not bound
by it, while the role an API or a hosted UI connects with is. With no
`hmt.user_id` set, `current_setting(..., true)` is NULL and no row matches.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SETTING = "hmt.user_id"


async def scope(conn: AsyncConnection, user_id: str) -> None:
    """Set whose rows this transaction may touch (transaction-local); no-op on SQLite."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT set_config(:name, :user, true)"), {"name": SETTING, "user": user_id}
        )
