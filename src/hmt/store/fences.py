"""Fencing tokens in `hmt_partition_fences`: the database side of the cluster's leases.

A cluster node may claim in a partition only with the token of its lease there
(`hmt.core.partitions.admits`). `admit` runs inside the claim's own transaction: a
conditional upsert that raises the partition's fence to the token, or refuses if a
greater token was recorded. The upsert locks the fence row until the transaction
ends, so a claim and a new holder's `fence` on the same partition serialize: either
the claim commits first (and the new holder finds it when it reconciles the
partition's claims by tag), or the fence does and the claim is refused.

Single-node engines (and SQLite) never call this: their claim is unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from sqlalchemy import CTE, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.store.db import Database
from hmt.store.tables import partition_fences as f


class Fenced(Exception):
    """A claim carried a lease token older than its partition's fence."""

    def __init__(self, partition: int, token: int) -> None:
        super().__init__(f"partition {partition}: lease token {token} is fenced off")
        self.partition = partition
        self.token = token


class Fence(NamedTuple):
    """What a cluster node's claim carries: its partition, lease token and node id."""

    partition: int
    token: int
    node: str


def fence_cte() -> CTE:
    """`admit`'s upsert as a CTE named `fence` of a PostgreSQL statement (the claim's
    one-statement path), with parameters `f_partition`, `f_token` and `f_node`: it
    returns a row only if the token is admitted."""
    statement = postgresql.insert(f).values(
        partition=bindparam("f_partition", type_=f.c.partition.type),
        token=bindparam("f_token", type_=f.c.token.type),
        node=bindparam("f_node", type_=f.c.node.type),
    )
    return (
        statement.on_conflict_do_update(
            index_elements=[f.c.partition],
            set_={"token": statement.excluded.token, "node": statement.excluded.node},
            where=f.c.token <= statement.excluded.token,
        )
        .returning(f.c.token)
        .cte("fence")
    )


async def admit(conn: AsyncConnection, partition: int, token: int, node: str) -> bool:
    """Raise `partition`'s fence to `token` in this transaction; False if it is fenced off."""
    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(f).values(partition=partition, token=token, node=node)
    statement = statement.on_conflict_do_update(
        index_elements=[f.c.partition],
        set_={"token": statement.excluded.token, "node": statement.excluded.node},
        where=f.c.token <= statement.excluded.token,
    ).returning(f.c.token)
    return (await conn.execute(statement)).first() is not None


async def fenced(db: Database, partition: int) -> int | None:
    """The partition's fence (the greatest admitted token); None if never fenced."""

    async def work(conn: AsyncConnection) -> int | None:
        value = (await conn.execute(select(f.c.token).where(f.c.partition == partition))).scalar()
        return None if value is None else int(value)

    return await db.transaction(work, write=False)


async def fence(db: Database, partition: int, token: int, node: str) -> bool:
    """A new holder's first write: fence the old holder off. False if `token` is stale."""

    async def work(conn: AsyncConnection) -> bool:
        return await admit(conn, partition, token, node)

    return await db.transaction(work)


async def claim_fenced(
    db: Database,
    partition: int,
    token: int,
    node: str,
    claim: Callable[[AsyncConnection], Awaitable[bool]],
) -> bool:
    """Run `claim` in one transaction behind the fence; `Fenced` (nothing written) if stale."""

    async def work(conn: AsyncConnection) -> bool:
        if not await admit(conn, partition, token, node):
            raise Fenced(partition, token)
        return await claim(conn)

    return await db.transaction(work)
