"""Each trigger's cluster partition, stored: a node loads only its partitions' rows.

`hmt_gtt_orders` gains `partition` (int4, NULL allowed): the partition of the
trigger's **watched** instrument, `hmt.core.partitions.partition_of(watched, P,
"kite")` (docs/cluster.md). SQL cannot compute BLAKE2b, so hmt computes it when it
writes a row (create, and an edit that changes the watched instrument); a row
another tool inserts has NULL, and a cluster node loads NULL rows with every
partition and keeps only its own (and `hmt.store.partitions.repartition`, run by
each node at start, writes the right value into every live row whose value is
missing or was computed for another partition count).

Indexed on `partition` for active rows only (a gained partition's load). Existing
rows are computed here with P = `HMT_CLUSTER_PARTITIONS` when it is set, else 64,
in batches of `BATCH`.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

from hmt.core.partitions import DEFAULT_PARTITIONS, partition_of

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLE = "hmt_gtt_orders"
INDEX = "ix_hmt_gtt_orders_partition"
NOTIFY = "hmt_gtt_orders_notify"  # the change feed's (revision 0001)
BATCH = 10_000


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("partition", sa.Integer(), nullable=True))
    op.create_index(
        INDEX,
        TABLE,
        ["partition"],
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    bind = op.get_bind()
    try:
        partitions = int(os.environ.get("HMT_CLUSTER_PARTITIONS", DEFAULT_PARTITIONS))
    except ValueError:
        partitions = DEFAULT_PARTITIONS  # the settings name the bad value at start
    partitions = partitions if 1 <= partitions <= 4096 else DEFAULT_PARTITIONS
    postgresql = bind.dialect.name == "postgresql"
    if postgresql:  # nothing changes meaning: no engine needs to re-read these rows
        op.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {NOTIFY}")
    read = sa.text(
        f"SELECT id, instrument_token, watch_token FROM {TABLE} "  # noqa: S608
        "WHERE partition IS NULL LIMIT :n"
    )
    write = sa.text(f"UPDATE {TABLE} SET partition = :p WHERE id = :id")  # noqa: S608
    while rows := bind.execute(read, {"n": BATCH}).all():
        bind.execute(
            write,
            [
                {
                    "id": row.id,
                    "p": partition_of(
                        int(
                            row.watch_token if row.watch_token is not None else row.instrument_token
                        ),
                        partitions,
                    ),
                }
                for row in rows
            ],
        )
    if postgresql:
        op.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER {NOTIFY}")


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.drop_column(TABLE, "partition")
