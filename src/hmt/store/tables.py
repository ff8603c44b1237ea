"""The schema as SQLAlchemy Core tables; the migrations create exactly this (no drift)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.types import OrderType, Product, Side, TriggerType
from hmt.store.columns import Price, UTCDateTime

# Named constraints, so migrations can refer to them on both backends.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# The NOTIFY payload carries user_id, and payloads are capped near 8000 bytes.
USER_ID_MAX = 128


def _one_of(column: str, values: type) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"  # type: ignore[attr-defined]


users = Table(
    "hmt_users",
    metadata,
    Column("id", String(USER_ID_MAX), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

gtt_orders = Table(
    "hmt_gtt_orders",
    metadata,
    Column("id", Uuid(as_uuid=False), primary_key=True),
    # Not a foreign key: hosted UIs insert rows for their own user ids.
    Column("user_id", String(USER_ID_MAX), nullable=False),
    Column("instrument_token", BigInteger, nullable=False),
    Column("exchange", String(8), nullable=False),
    Column("tradingsymbol", String(64), nullable=False),
    Column("trigger_type", String(8), nullable=False),
    Column("transaction_type", String(4), nullable=False),
    Column("trigger_price_1", Price(), nullable=False),
    Column("trigger_price_2", Price()),
    Column("quantity", Integer, nullable=False),
    Column("product", String(8), nullable=False),
    Column("order_type", String(8), nullable=False),
    Column("limit_price_1", Price()),
    Column("limit_price_2", Price()),
    Column("status", String(16), nullable=False, server_default=Status.ACTIVE.value),
    Column("triggered_leg", SmallInteger),
    Column("triggered_price", Price()),
    Column("triggered_at", UTCDateTime()),
    Column("broker_tag", String(20)),
    Column("order_id", String(64)),  # Kite's order ids are 19 digits: text, not a number
    Column("error_message", Text),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("created_at", UTCDateTime(), nullable=False, server_default=func.now()),
    Column("updated_at", UTCDateTime(), nullable=False, server_default=func.now()),
    Column("expires_at", UTCDateTime()),
    # The instrument's units (revision 0002): NULL divisor only in rows another tool wrote.
    Column("price_divisor", Integer),
    Column("tick_size", Price()),
    Column("lot_size", Integer),
    # Which engine instance holds the claim, and until when (revision 0002).
    Column("claimed_by", String(64)),
    Column("claim_expires_at", UTCDateTime()),
    CheckConstraint("user_id <> ''", name="user_id"),
    CheckConstraint(_one_of("status", Status), name="status"),
    CheckConstraint(_one_of("trigger_type", TriggerType), name="trigger_type"),
    CheckConstraint(_one_of("transaction_type", Side), name="transaction_type"),
    CheckConstraint(_one_of("product", Product), name="product"),
    CheckConstraint(_one_of("order_type", OrderType), name="order_type"),
    CheckConstraint("quantity >= 1", name="quantity"),
    CheckConstraint("triggered_leg IS NULL OR triggered_leg IN (1, 2)", name="triggered_leg"),
    CheckConstraint("attempts >= 0", name="attempts"),
)

# The engine's start-up load, as in the seed: only active rows are indexed.
Index(
    "ix_hmt_gtt_orders_active",
    gtt_orders.c.instrument_token,
    gtt_orders.c.status,
    postgresql_where=gtt_orders.c.status == Status.ACTIVE.value,
    sqlite_where=gtt_orders.c.status == Status.ACTIVE.value,
)
Index("ix_hmt_gtt_orders_user", gtt_orders.c.user_id, gtt_orders.c.created_at)

# Append-only. No foreign key to the trigger: history outlives a row deleted by
# another tool, and nothing here ever updates or deletes an event.
trigger_events = Table(
    "hmt_trigger_events",
    metadata,
    # INTEGER on SQLite: only that spelling makes it the auto-incrementing rowid.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("trigger_id", Uuid(as_uuid=False), nullable=False),
    Column("user_id", String(USER_ID_MAX), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("payload", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    CheckConstraint(_one_of("kind", EventKind), name="kind"),
)
Index("ix_hmt_trigger_events_trigger", trigger_events.c.trigger_id, trigger_events.c.id)

api_tokens = Table(
    "hmt_api_tokens",
    metadata,
    Column("id", Uuid(as_uuid=False), primary_key=True),
    Column("user_id", String(USER_ID_MAX), ForeignKey(users.c.id), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),  # SHA-256
    Column("operator", Boolean, nullable=False),
    Column("name", String(128)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
)

broker_accounts = Table(
    "hmt_broker_accounts",
    metadata,
    Column("user_id", String(USER_ID_MAX), ForeignKey(users.c.id), primary_key=True),
    Column("broker", String(16), primary_key=True),
    Column("api_key", String(64), nullable=False),
    Column("access_token_sealed", Text),  # sealing.Sealer output, never plaintext
    Column("api_secret_sealed", Text),
    Column("updated_at", UTCDateTime(), nullable=False),
)
