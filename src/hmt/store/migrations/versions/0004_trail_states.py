"""Trailing stops: where each trailing leg's stop stood when last written.

`hmt_trail_states` (trigger, leg) -> the trail's terms, best reference and stop
(wire units; both NULL before activation), and when it was written. The
engine writes changed states in batches at most every HMT_TRAIL_FLUSH_MS and
at shutdown, and resumes from them at start-up (docs/engine.md, "Trailing
stops"). A trailing leg's terms live in the `legs` JSON column (no change).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hmt.store.columns import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hmt_trail_states",
        sa.Column("trigger_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("leg", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("best", sa.BigInteger(), nullable=True),
        sa.Column("stop", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("leg IN (1, 2)", name=op.f("ck_hmt_trail_states_leg")),
        sa.CheckConstraint(
            "(best IS NULL) = (stop IS NULL)", name=op.f("ck_hmt_trail_states_best_stop")
        ),
        sa.PrimaryKeyConstraint("trigger_id", "leg", name="pk_hmt_trail_states"),
    )


def downgrade() -> None:
    op.drop_table("hmt_trail_states")
