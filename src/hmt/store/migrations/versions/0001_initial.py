"""Initial schema: triggers, their history, users, API tokens, broker accounts.

On PostgreSQL also: row-level security, a NOTIFY trigger for the change feed,
and a database-side default id so other tools can insert rows.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from hmt.store.columns import Price, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = "'active', 'paused', 'triggered', 'placed', 'failed', 'cancelled', 'expired'"
KINDS = (
    "'created', 'updated', 'paused', 'resumed', 'fired', 'claimed', 'order_sent', "
    "'retry', 'placed', 'failed', 'released', 'cancelled', 'expired', 'reconciled'"
)

# The change feed (hmt.store.changes): ids only, since payloads are capped near
# 8000 bytes; a TRUNCATE tells listeners to re-read everything.
NOTIFY_FUNCTION = """
CREATE FUNCTION hmt_gtt_orders_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('hmt_gtt_orders', '{"op": "truncate"}');
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    PERFORM pg_notify('hmt_gtt_orders', json_build_object(
        'op', lower(TG_OP), 'id', r.id, 'user_id', r.user_id)::text);
    RETURN NULL;
END $$
"""
NOTIFY_TRIGGERS = [
    "CREATE TRIGGER hmt_gtt_orders_notify AFTER INSERT OR UPDATE OR DELETE ON hmt_gtt_orders "
    "FOR EACH ROW EXECUTE FUNCTION hmt_gtt_orders_notify()",
    "CREATE TRIGGER hmt_gtt_orders_notify_truncate AFTER TRUNCATE ON hmt_gtt_orders "
    "FOR EACH STATEMENT EXECUTE FUNCTION hmt_gtt_orders_notify()",
]
# Row-level security (hmt.store.rls): ENABLEd, not FORCEd, so the owning role
# (the engine's) reads every user while a non-owner role sees its user's rows.
RLS_TABLES = ("hmt_gtt_orders", "hmt_trigger_events")
MATCH = "user_id = current_setting('hmt.user_id', true)"


def _postgresql_extras() -> None:
    op.execute("ALTER TABLE hmt_gtt_orders ALTER COLUMN id SET DEFAULT gen_random_uuid()")
    op.execute(NOTIFY_FUNCTION)
    for statement in NOTIFY_TRIGGERS:
        op.execute(statement)
    for table in RLS_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_by_user ON {table} USING ({MATCH}) WITH CHECK ({MATCH})")


def _drop_postgresql_extras() -> None:
    for table in RLS_TABLES:
        op.execute(f"DROP POLICY IF EXISTS {table}_by_user ON {table}")
    op.execute("DROP TRIGGER IF EXISTS hmt_gtt_orders_notify_truncate ON hmt_gtt_orders")
    op.execute("DROP TRIGGER IF EXISTS hmt_gtt_orders_notify ON hmt_gtt_orders")
    op.execute("DROP FUNCTION IF EXISTS hmt_gtt_orders_notify()")


def upgrade() -> None:
    op.create_table(
        "hmt_users",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hmt_users"),
    )
    op.create_table(
        "hmt_gtt_orders",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("instrument_token", sa.BigInteger(), nullable=False),
        sa.Column("exchange", sa.String(8), nullable=False),
        sa.Column("tradingsymbol", sa.String(64), nullable=False),
        sa.Column("trigger_type", sa.String(8), nullable=False),
        sa.Column("transaction_type", sa.String(4), nullable=False),
        sa.Column("trigger_price_1", Price(), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_hmt_gtt_orders"),
        sa.CheckConstraint("user_id <> ''", name="ck_hmt_gtt_orders_user_id"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_hmt_gtt_orders_status"),
        sa.CheckConstraint(
            "trigger_type IN ('single', 'oco')", name="ck_hmt_gtt_orders_trigger_type"
        ),
        sa.CheckConstraint(
            "transaction_type IN ('BUY', 'SELL')", name="ck_hmt_gtt_orders_transaction_type"
        ),
        sa.CheckConstraint("product IN ('CNC', 'MIS', 'NRML')", name="ck_hmt_gtt_orders_product"),
        sa.CheckConstraint(
            "order_type IN ('MARKET', 'LIMIT')", name="ck_hmt_gtt_orders_order_type"
        ),
        sa.CheckConstraint("quantity >= 1", name="ck_hmt_gtt_orders_quantity"),
        sa.CheckConstraint(
            "triggered_leg IS NULL OR triggered_leg IN (1, 2)",
            name="ck_hmt_gtt_orders_triggered_leg",
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_hmt_gtt_orders_attempts"),
    )
    active = sa.text("status = 'active'")
    op.create_index(
        "ix_hmt_gtt_orders_active",
        "hmt_gtt_orders",
        ["instrument_token", "status"],
        postgresql_where=active,
        sqlite_where=active,
    )
    op.create_index("ix_hmt_gtt_orders_user", "hmt_gtt_orders", ["user_id", "created_at"])
    op.create_table(
        "hmt_trigger_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("trigger_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("payload", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hmt_trigger_events"),
        sa.CheckConstraint(f"kind IN ({KINDS})", name="ck_hmt_trigger_events_kind"),
    )
    op.create_index("ix_hmt_trigger_events_trigger", "hmt_trigger_events", ["trigger_id", "id"])
    op.create_table(
        "hmt_api_tokens",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("operator", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(128)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_hmt_api_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["hmt_users.id"], name="fk_hmt_api_tokens_user_id_hmt_users"
        ),
        sa.UniqueConstraint("token_hash", name="uq_hmt_api_tokens_token_hash"),
    )
    op.create_table(
        "hmt_broker_accounts",
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("broker", sa.String(16), nullable=False),
        sa.Column("api_key", sa.String(64), nullable=False),
        sa.Column("access_token_sealed", sa.Text()),
        sa.Column("api_secret_sealed", sa.Text()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "broker", name="pk_hmt_broker_accounts"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["hmt_users.id"], name="fk_hmt_broker_accounts_user_id_hmt_users"
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_extras()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _drop_postgresql_extras()
    op.drop_table("hmt_broker_accounts")
    op.drop_table("hmt_api_tokens")
    op.drop_index("ix_hmt_trigger_events_trigger", table_name="hmt_trigger_events")
    op.drop_table("hmt_trigger_events")
    op.drop_index("ix_hmt_gtt_orders_user", table_name="hmt_gtt_orders")
    op.drop_index("ix_hmt_gtt_orders_active", table_name="hmt_gtt_orders")
    op.drop_table("hmt_gtt_orders")
    op.drop_table("hmt_users")
