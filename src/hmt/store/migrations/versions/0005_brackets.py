"""Brackets: an entry trigger whose fills arm oco exits (issue 14).

- `hmt_brackets`: one row per bracket, keyed by its entry trigger's id: its status
  (open, armed, filled, failed, cancelled, expired), the exits asked for (JSON),
  the entry's filled and armed quantities and the exits' generation.
- `hmt_bracket_events`: the bracket's own history (append-only).

Nothing existing changes: triggers and their history keep their tables and CHECKs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from hmt.store.columns import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MATCH = "user_id = current_setting('hmt.user_id', true)"
STATUSES = "'armed', 'cancelled', 'expired', 'failed', 'filled', 'open'"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "hmt_brackets",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("exits", _json(), nullable=False),
        sa.Column("filled", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("armed", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("generation", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("entry_status", sa.String(32)),
        sa.Column("error_message", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hmt_brackets"),
        sa.CheckConstraint("user_id <> ''", name=op.f("ck_hmt_brackets_user_id")),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_hmt_brackets_status")),
        sa.CheckConstraint("armed >= 0 AND armed <= filled", name=op.f("ck_hmt_brackets_armed")),
        sa.CheckConstraint("generation >= 0", name=op.f("ck_hmt_brackets_generation")),
    )
    op.create_index("ix_hmt_brackets_status", "hmt_brackets", ["status"])
    op.create_table(
        "hmt_bracket_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bracket_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hmt_bracket_events"),
    )
    op.create_index(
        "ix_hmt_bracket_events_bracket_id_id", "hmt_bracket_events", ["bracket_id", "id"]
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in ("hmt_brackets", "hmt_bracket_events"):
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY {table}_by_user ON {table} USING ({MATCH}) WITH CHECK ({MATCH})"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("hmt_brackets", "hmt_bracket_events"):
            op.execute(f"DROP POLICY IF EXISTS {table}_by_user ON {table}")
    op.drop_index("ix_hmt_bracket_events_bracket_id_id", table_name="hmt_bracket_events")
    op.drop_table("hmt_bracket_events")
    op.drop_index("ix_hmt_brackets_status", table_name="hmt_brackets")
    op.drop_table("hmt_brackets")
