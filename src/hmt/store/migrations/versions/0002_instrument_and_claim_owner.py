"""Instruments carry their own units; claims carry their owner and a lease.

- `price_divisor`, `tick_size`, `lot_size`: the instrument's identity as the
  broker's instrument master gives it, stored on the trigger so that nothing
  decodes a broker's instrument id to learn its price unit. Rows written
  before this revision are backfilled with Kite's segment rule (the low byte of
  `instrument_token`, ../shared/kite/FACTS.md 1.6), the only broker they could
  belong to; tick and lot sizes stay unknown (NULL) for them.
- `claimed_by`, `claim_expires_at`: which engine instance claimed a trigger,
  and until when its claim is its own. Recovery settles only its own claims
  and expired ones, so a restarting engine never resends another live
  engine's order.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hmt.store.columns import Price, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

KITE_DIVISORS = """
UPDATE hmt_gtt_orders SET price_divisor = CASE (instrument_token & 255)
    WHEN 3 THEN 10000000
    WHEN 6 THEN 10000
    WHEN 12 THEN 10000
    ELSE 100
END
"""


def upgrade() -> None:
    op.add_column("hmt_gtt_orders", sa.Column("price_divisor", sa.Integer()))
    op.add_column("hmt_gtt_orders", sa.Column("tick_size", Price()))
    op.add_column("hmt_gtt_orders", sa.Column("lot_size", sa.Integer()))
    op.add_column("hmt_gtt_orders", sa.Column("claimed_by", sa.String(64)))
    op.add_column("hmt_gtt_orders", sa.Column("claim_expires_at", UTCDateTime()))
    op.execute(KITE_DIVISORS)


def downgrade() -> None:
    with op.batch_alter_table("hmt_gtt_orders") as batch:
        for column in ("claim_expires_at", "claimed_by", "lot_size", "tick_size", "price_divisor"):
            batch.drop_column(column)
