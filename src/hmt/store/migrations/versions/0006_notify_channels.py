"""Notification channels: one row per user's delivery URL (sealed) and the kinds it wants.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hmt.store.columns import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hmt_notify_channels",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("url_sealed", sa.Text(), nullable=False),
        sa.Column("url_hint", sa.String(512), nullable=False),
        sa.Column("kinds", sa.String(256), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["hmt_users.id"], name="fk_hmt_notify_channels_user_id_hmt_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_hmt_notify_channels"),
    )
    op.create_index("ix_hmt_notify_channels_user_id", "hmt_notify_channels", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_hmt_notify_channels_user_id", table_name="hmt_notify_channels")
    op.drop_table("hmt_notify_channels")
