"""The users that API tokens and broker accounts belong to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.store.tables import USER_ID_MAX, users


def check_user_id(user_id: str) -> str:
    if not user_id or not user_id.strip():
        raise ValueError("user: must not be empty")
    if len(user_id) > USER_ID_MAX:
        raise ValueError(f"user: at most {USER_ID_MAX} characters")
    return user_id


async def ensure_user(conn: AsyncConnection, user_id: str, now: datetime) -> None:
    """Create the user inside the caller's transaction unless it exists."""
    check_user_id(user_id)
    if (await conn.execute(select(users.c.id).where(users.c.id == user_id))).first() is None:
        await conn.execute(users.insert().values(id=user_id, created_at=now))
