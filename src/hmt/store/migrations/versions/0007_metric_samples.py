"""The performance history: `hmt_metric_samples`, one row of an engine's figures per window.

Not per user (the figures are the engine's), so no row-level security: the API
serves it to any signed-in caller, as it serves /stats.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from hmt.store.columns import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hmt_metric_samples",
        sa.Column("engine", sa.String(255), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("figures", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("engine", "seconds", "at", name="pk_hmt_metric_samples"),
        sa.CheckConstraint("seconds > 0", name=op.f("ck_hmt_metric_samples_seconds")),
    )


def downgrade() -> None:
    op.drop_table("hmt_metric_samples")
