"""Trigger model v2: watched instruments, baskets, time legs, stop orders, day ranges.

- `hmt_gtt_orders` gains the watched instrument (`watch_*`: NULL is the traded
  one), `legs` (JSON: each leg's condition and basket; NULL is the v1 shape),
  `not_before` and `on_gap` (NULL is fire). `trigger_price_1` may be NULL (a
  time leg). `order_type` admits SL and SL-M.
- `hmt_trigger_events.kind` admits `missed_touch`.
- `hmt_trigger_orders`: the state of each order of a basket.
- `hmt_day_ranges`: the engine's last-seen day high and low per instrument.

Every row written before this revision reads back unchanged: the new columns
are NULL, which is the v1 meaning of each.

SQLite cannot alter a CHECK or a column's nullability in place, so there the
two tables are rebuilt (Alembic's batch mode). Batch mode would reflect the
old table, and reflection loses what matters here (the CHECK constraints, the
partial index's WHERE); so the old tables are given as they are (`copy_from`),
and the rebuild keeps every constraint and both indexes
(tests/store/test_migrate_v2.py checks that they survive).

The CHECK constraints are also renamed to the names `tables.py` gives them:
revision 0001 passed full names through the naming convention, which
prefixed them once more (`ck_hmt_gtt_orders_ck_hmt_gtt_orders_quantity`).
PostgreSQL renames them in place; SQLite's rebuild writes the new names.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations
from sqlalchemy.dialects.postgresql import JSONB

from hmt.store.columns import Price, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATUSES = "'active', 'paused', 'triggered', 'placed', 'failed', 'cancelled', 'expired'"
KINDS = (
    "'created', 'updated', 'paused', 'resumed', 'fired', 'claimed', 'order_sent', "
    "'retry', 'placed', 'failed', 'released', 'cancelled', 'expired', 'reconciled'"
)
KINDS_V2 = KINDS + ", 'missed_touch'"

# hmt_gtt_orders' CHECKs (short name -> rule) at revision 0002 and at this one.
GTT_CHECKS_V1 = {
    "user_id": "user_id <> ''",
    "status": f"status IN ({STATUSES})",
    "trigger_type": "trigger_type IN ('single', 'oco')",
    "transaction_type": "transaction_type IN ('BUY', 'SELL')",
    "product": "product IN ('CNC', 'MIS', 'NRML')",
    "order_type": "order_type IN ('MARKET', 'LIMIT')",
    "quantity": "quantity >= 1",
    "triggered_leg": "triggered_leg IS NULL OR triggered_leg IN (1, 2)",
    "attempts": "attempts >= 0",
}
GTT_CHECKS_V2 = {
    **GTT_CHECKS_V1,
    "order_type": "order_type IN ('MARKET', 'LIMIT', 'SL', 'SL-M')",
    "on_gap": "on_gap IN ('fire', 'skip')",
}
EVENT_CHECKS_V1 = {"kind": f"kind IN ({KINDS})"}
EVENT_CHECKS_V2 = {"kind": f"kind IN ({KINDS_V2})"}

# Row-level security as revision 0001 sets it on the other user tables.
MATCH = "user_id = current_setting('hmt.user_id', true)"


def _check_name(table: str, name: str, *, v2: bool) -> str:
    """A CHECK's name as revision 0001 made it, or as this revision names it."""
    return f"ck_{table}_{name}" if v2 else f"ck_{table}_ck_{table}_{name}"


def _checks(table: str, rules: dict[str, str], *, v2: bool) -> list[sa.CheckConstraint]:
    return [
        sa.CheckConstraint(rule, name=op.f(_check_name(table, name, v2=v2)))
        for name, rule in rules.items()
    ]


def _new_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("watch_token", sa.BigInteger()),
        sa.Column("watch_exchange", sa.String(8)),
        sa.Column("watch_tradingsymbol", sa.String(64)),
        sa.Column("watch_price_divisor", sa.Integer()),
        sa.Column("legs", sa.JSON().with_variant(JSONB(), "postgresql")),
        sa.Column("not_before", UTCDateTime()),
        sa.Column("on_gap", sa.String(8)),
    ]


def _gtt_orders(*, v2: bool) -> sa.Table:
    """`hmt_gtt_orders` as revision 0002 left it, or (`v2`) as this one leaves it:
    what SQLite's rebuild copies from."""
    table = sa.Table(
        "hmt_gtt_orders",
        sa.MetaData(),
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("instrument_token", sa.BigInteger(), nullable=False),
        sa.Column("exchange", sa.String(8), nullable=False),
        sa.Column("tradingsymbol", sa.String(64), nullable=False),
        sa.Column("trigger_type", sa.String(8), nullable=False),
        sa.Column("transaction_type", sa.String(4), nullable=False),
        sa.Column("trigger_price_1", Price(), nullable=v2),
        sa.Column("trigger_price_2", Price()),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("product", sa.String(8), nullable=False),
        sa.Column("order_type", sa.String(8), nullable=False),
        sa.Column("limit_price_1", Price()),
        sa.Column("limit_price_2", Price()),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("triggered_leg", sa.SmallInteger()),
        sa.Column("triggered_price", Price()),
        sa.Column("triggered_at", UTCDateTime()),
        sa.Column("broker_tag", sa.String(20)),
        sa.Column("order_id", sa.String(64)),
        sa.Column("error_message", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", UTCDateTime()),
        sa.Column("price_divisor", sa.Integer()),
        sa.Column("tick_size", Price()),
        sa.Column("lot_size", sa.Integer()),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claim_expires_at", UTCDateTime()),
        *(_new_columns() if v2 else ()),
        sa.PrimaryKeyConstraint("id", name="pk_hmt_gtt_orders"),
        *_checks("hmt_gtt_orders", GTT_CHECKS_V2 if v2 else GTT_CHECKS_V1, v2=v2),
    )
    active = sa.text("status = 'active'")
    sa.Index(
        "ix_hmt_gtt_orders_active",
        table.c.instrument_token,
        table.c.status,
        postgresql_where=active,
        sqlite_where=active,
    )
    sa.Index("ix_hmt_gtt_orders_user", table.c.user_id, table.c.created_at)
    return table


def _trigger_events(*, v2: bool) -> sa.Table:
    """`hmt_trigger_events` as revision 0001 left it, or as this one leaves it."""
    table = sa.Table(
        "hmt_trigger_events",
        sa.MetaData(),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("trigger_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("payload", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hmt_trigger_events"),
        *_checks("hmt_trigger_events", EVENT_CHECKS_V2 if v2 else EVENT_CHECKS_V1, v2=v2),
    )
    sa.Index("ix_hmt_trigger_events_trigger", table.c.trigger_id, table.c.id)
    return table


def _move_checks(
    batch: BatchOperations, table: str, before: dict[str, str], after: dict[str, str], *, v2: bool
) -> None:
    """Replace `table`'s CHECKs `before` by `after`, named for revision 0003 if `v2`.

    A rule that stays the same is renamed in place on PostgreSQL (no scan of
    the table); SQLite writes every constraint anew in its rebuild anyway.
    """
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in before.keys() | after.keys():
        old, new = _check_name(table, name, v2=not v2), _check_name(table, name, v2=v2)
        if postgresql and before.get(name) == after.get(name):
            op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {old} TO {new}")
            continue
        if name in before:
            batch.drop_constraint(op.f(old), type_="check")
        if name in after:
            batch.create_check_constraint(op.f(new), after[name])


def upgrade() -> None:
    with op.batch_alter_table("hmt_gtt_orders", copy_from=_gtt_orders(v2=False)) as batch:
        for column in _new_columns():
            batch.add_column(column)
        batch.alter_column("trigger_price_1", existing_type=Price(), nullable=True)
        _move_checks(batch, "hmt_gtt_orders", GTT_CHECKS_V1, GTT_CHECKS_V2, v2=True)
    with op.batch_alter_table("hmt_trigger_events", copy_from=_trigger_events(v2=False)) as batch:
        _move_checks(batch, "hmt_trigger_events", EVENT_CHECKS_V1, EVENT_CHECKS_V2, v2=True)
    op.create_table(
        "hmt_trigger_orders",
        sa.Column("trigger_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("leg", sa.SmallInteger(), nullable=False, autoincrement=False),
        sa.Column("position", sa.SmallInteger(), nullable=False, autoincrement=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("tag", sa.String(20), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("order_id", sa.String(64)),
        sa.Column("error_message", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("trigger_id", "leg", "position", name="pk_hmt_trigger_orders"),
        sa.CheckConstraint("user_id <> ''", name=op.f("ck_hmt_trigger_orders_user_id")),
        sa.CheckConstraint("leg IN (1, 2)", name=op.f("ck_hmt_trigger_orders_leg")),
        sa.CheckConstraint(
            "position >= 0 AND position < 20", name=op.f("ck_hmt_trigger_orders_position")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'placed', 'failed')", name=op.f("ck_hmt_trigger_orders_status")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_hmt_trigger_orders_attempts")),
    )
    op.create_table(
        "hmt_day_ranges",
        sa.Column("broker", sa.String(16), nullable=False),
        sa.Column("instrument_token", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("high", sa.BigInteger(), nullable=False),
        sa.Column("low", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("broker", "instrument_token", "day", name="pk_hmt_day_ranges"),
        sa.CheckConstraint("low <= high", name=op.f("ck_hmt_day_ranges_low_high")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE hmt_trigger_orders ENABLE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY hmt_trigger_orders_by_user ON hmt_trigger_orders "
            f"USING ({MATCH}) WITH CHECK ({MATCH})"
        )


def downgrade() -> None:
    """Back to 0002. Refused, with nothing changed, while a row holds what 0002 cannot
    (an SL order, a time leg's NULL price, a missed_touch event): the CHECKs fail."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP POLICY IF EXISTS hmt_trigger_orders_by_user ON hmt_trigger_orders")
    op.drop_table("hmt_day_ranges")
    op.drop_table("hmt_trigger_orders")
    with op.batch_alter_table("hmt_trigger_events", copy_from=_trigger_events(v2=True)) as batch:
        _move_checks(batch, "hmt_trigger_events", EVENT_CHECKS_V2, EVENT_CHECKS_V1, v2=False)
    with op.batch_alter_table("hmt_gtt_orders", copy_from=_gtt_orders(v2=True)) as batch:
        _move_checks(batch, "hmt_gtt_orders", GTT_CHECKS_V2, GTT_CHECKS_V1, v2=False)
        batch.alter_column("trigger_price_1", existing_type=Price(), nullable=False)
        for column in reversed(_new_columns()):
            batch.drop_column(column.name)
