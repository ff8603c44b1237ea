"""The cluster's fences: `hmt_partition_fences`, the greatest lease token per partition.

A cluster node claims only with its partition's lease token (docs/cluster.md); the
database keeps the greatest token it has admitted per partition and refuses an
older one, so a node whose lease was taken over cannot claim once the new holder
has fenced. Single-node engines never read or write it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hmt_partition_fences",
        sa.Column("partition", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("partition", name="pk_hmt_partition_fences"),
        sa.CheckConstraint("partition >= 0", name=op.f("ck_hmt_partition_fences_partition")),
    )


def downgrade() -> None:
    op.drop_table("hmt_partition_fences")
