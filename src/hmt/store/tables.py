"""The schema as SQLAlchemy Core tables; the migrations create exactly this (no drift)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
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

from hmt.core.events import TRIGGER_EVENT_KINDS
from hmt.core.lifecycle import BRACKET_STATUSES, TRIGGER_STATUSES, Status
from hmt.core.types import MAX_BASKET, OnGap, OrderType, Product, Side, TriggerType
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

# An order of a basket: not yet sent (or its fate unknown), placed, finally failed.
ORDER_PENDING, ORDER_PLACED, ORDER_FAILED = "pending", "placed", "failed"
ORDER_STATUSES = (ORDER_PENDING, ORDER_PLACED, ORDER_FAILED)

# The NOTIFY payload carries user_id, and payloads are capped near 8000 bytes.
USER_ID_MAX = 128
ACCOUNT_ID_MAX = 32


def _one_of(column: str, values: Iterable[Any]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


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
    Column("trigger_price_1", Price()),  # NULL: a time leg (revision 0003)
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
    # Trigger model v2 (revision 0003, docs/store.md): all NULL in a v1 row.
    # The watched instrument (NULL: the traded one) and its units, for its thresholds.
    Column("watch_token", BigInteger),
    Column("watch_exchange", String(8)),
    Column("watch_tradingsymbol", String(64)),
    Column("watch_price_divisor", Integer),
    # The legs' conditions and baskets; NULL is the v1 shape (one order from the row).
    Column("legs", JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")),
    Column("not_before", UTCDateTime()),
    Column("on_gap", String(8)),  # NULL: fire
    # Each price times price_divisor, where a whole number (revision 0008): on
    # PostgreSQL a database trigger keeps them, so the start-up load reads int8s.
    # NULL on SQLite. Never written by hmt itself.
    Column("trigger_price_1_units", BigInteger),
    Column("trigger_price_2_units", BigInteger),
    Column("limit_price_1_units", BigInteger),
    Column("limit_price_2_units", BigInteger),
    # The cluster partition of the watched instrument (revision 0010, docs/cluster.md):
    # written by hmt with each row; NULL in a row another tool inserted.
    Column("partition", Integer),
    # The account whose session places the orders (revision 0011, docs/accounts.md):
    # an `hmt_accounts` id; NULL is the default account (every row before 0011).
    Column("account", String(ACCOUNT_ID_MAX)),
    CheckConstraint("user_id <> ''", name="user_id"),
    CheckConstraint(_one_of("status", TRIGGER_STATUSES), name="status"),
    CheckConstraint(_one_of("trigger_type", TriggerType), name="trigger_type"),
    CheckConstraint(_one_of("transaction_type", Side), name="transaction_type"),
    CheckConstraint(_one_of("product", Product), name="product"),
    CheckConstraint(_one_of("order_type", OrderType), name="order_type"),
    CheckConstraint("quantity >= 1", name="quantity"),
    CheckConstraint("triggered_leg IS NULL OR triggered_leg IN (1, 2)", name="triggered_leg"),
    CheckConstraint("attempts >= 0", name="attempts"),
    CheckConstraint(_one_of("on_gap", OnGap), name="on_gap"),
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
# A cluster node's load of a partition it gained (revision 0010).
Index(
    "ix_hmt_gtt_orders_partition",
    gtt_orders.c.partition,
    postgresql_where=gtt_orders.c.status == Status.ACTIVE.value,
    sqlite_where=gtt_orders.c.status == Status.ACTIVE.value,
)

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
    CheckConstraint(_one_of("kind", TRIGGER_EVENT_KINDS), name="kind"),
)
Index("ix_hmt_trigger_events_trigger", trigger_events.c.trigger_id, trigger_events.c.id)

# The state of each order of a basket (a leg of more than one order); a leg of
# one order keeps it on the trigger's row as in v1. No foreign key, like the
# events: tools that delete or truncate trigger rows keep working unchanged.
trigger_orders = Table(
    "hmt_trigger_orders",
    metadata,
    Column("trigger_id", Uuid(as_uuid=False), primary_key=True),
    Column("leg", SmallInteger, primary_key=True, autoincrement=False),
    Column("position", SmallInteger, primary_key=True, autoincrement=False),
    Column("user_id", String(USER_ID_MAX), nullable=False),
    Column("tag", String(20), nullable=False),
    Column("status", String(16), nullable=False, server_default=ORDER_PENDING),
    Column("order_id", String(64)),
    Column("error_message", Text),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("updated_at", UTCDateTime(), nullable=False, server_default=func.now()),
    CheckConstraint("user_id <> ''", name="user_id"),
    CheckConstraint("leg IN (1, 2)", name="leg"),
    CheckConstraint(f"position >= 0 AND position < {MAX_BASKET}", name="position"),
    CheckConstraint(
        "status IN (" + ", ".join(repr(s) for s in ORDER_STATUSES) + ")", name="status"
    ),
    CheckConstraint("attempts >= 0", name="attempts"),
)

# The engine's last-seen day high and low of each watched instrument (wire
# units), kept across restarts to find the touches it missed while blind.
day_ranges = Table(
    "hmt_day_ranges",
    metadata,
    Column("broker", String(16), primary_key=True),
    Column("instrument_token", BigInteger, primary_key=True, autoincrement=False),
    Column("day", Date, primary_key=True),
    Column("high", BigInteger, nullable=False),
    Column("low", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("low <= high", name="low_high"),
)

# The performance history: one row of an engine's key figures per window (10 s, folded
# to 1 minute after an hour, deleted after a day; hmt.store.samples).
metric_samples = Table(
    "hmt_metric_samples",
    metadata,
    Column("engine", String(255), primary_key=True),
    Column("seconds", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime(), primary_key=True),
    Column("figures", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    CheckConstraint("seconds > 0", name="seconds"),
)

# Brackets (revision 0005, docs/triggers.md): the entry is the trigger of the same id;
# the exits are oco triggers made on the entry's fills, one per generation, whose ids
# are derived from the bracket's (`core.brackets.exit_id`): arming is exactly once
# because a second insert of the same exit is a primary-key conflict.
brackets = Table(
    "hmt_brackets",
    metadata,
    Column("id", Uuid(as_uuid=False), primary_key=True),
    Column("user_id", String(USER_ID_MAX), nullable=False),
    Column("status", String(16), nullable=False, server_default=Status.OPEN.value),
    Column("exits", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Column("filled", Integer, nullable=False, server_default=text("0")),
    Column("armed", Integer, nullable=False, server_default=text("0")),
    Column("generation", Integer, nullable=False, server_default=text("0")),
    Column("entry_status", String(32)),  # the broker's last word on the entry's order
    Column("error_message", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("user_id <> ''", name="user_id"),
    CheckConstraint(_one_of("status", sorted(BRACKET_STATUSES)), name="status"),
    CheckConstraint("armed >= 0 AND armed <= filled", name="armed"),
    CheckConstraint("generation >= 0", name="generation"),
)
Index("ix_hmt_brackets_status", brackets.c.status)

bracket_events = Table(
    "hmt_bracket_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("bracket_id", Uuid(as_uuid=False), nullable=False),
    Column("user_id", String(USER_ID_MAX), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("payload", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
)
Index("ix_hmt_bracket_events_bracket_id_id", bracket_events.c.bracket_id, bracket_events.c.id)

# Where each trailing leg's stop stood when the engine last wrote it (issue 14,
# revision 0004), wire units of the watched instrument; both NULL before
# activation. `terms` is the trail as the `legs` column spells it: a state is
# resumed only by a leg with the same terms. No foreign key, like the orders.
trail_states = Table(
    "hmt_trail_states",
    metadata,
    Column("trigger_id", Uuid(as_uuid=False), primary_key=True),
    Column("leg", SmallInteger, primary_key=True, autoincrement=False),
    Column("terms", Text, nullable=False),
    Column("best", BigInteger),
    Column("stop", BigInteger),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("leg IN (1, 2)", name="leg"),
    CheckConstraint("(best IS NULL) = (stop IS NULL)", name="best_stop"),
)

# The cluster's fencing tokens (docs/cluster.md): PostgreSQL clusters only, never single-node.
partition_fences = Table(
    "hmt_partition_fences",
    metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("token", BigInteger, nullable=False),
    Column("node", String(64), nullable=False),
    CheckConstraint("partition >= 0", name="partition"),
)

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

# Linked broker accounts (revision 0011, docs/accounts.md): the default account is
# not a row (it is built from the settings); the secrets are sealed per account.
accounts = Table(
    "hmt_accounts",
    metadata,
    Column("id", String(ACCOUNT_ID_MAX), primary_key=True),
    Column("user_id", String(USER_ID_MAX), ForeignKey(users.c.id), nullable=False),
    Column("broker", String(16), nullable=False),
    Column("label", String(64), nullable=False),
    Column("api_key", String(64), nullable=False),
    Column("api_secret_sealed", Text),  # sealing.Sealer output, never plaintext
    Column("access_token_sealed", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("broker IN ('kite', 'upstox')", name="broker"),
)
Index("ix_hmt_accounts_user_id", accounts.c.user_id)

# A user's notification channels (docs/notifications.md): the delivery URL sealed
# like a broker token (it carries the service's token); `url_hint` is what may be
# shown (apprise's privacy form: secrets masked); `kinds` the notice kinds, comma
# separated.
notify_channels = Table(
    "hmt_notify_channels",
    metadata,
    Column("id", Uuid(as_uuid=False), primary_key=True),
    Column("user_id", String(USER_ID_MAX), ForeignKey(users.c.id), nullable=False),
    Column("name", String(64), nullable=False),
    Column("url_sealed", Text, nullable=False),  # sealing.Sealer output, never plaintext
    Column("url_hint", String(512), nullable=False),
    Column("kinds", String(256), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)
Index("ix_hmt_notify_channels_user_id", notify_channels.c.user_id)
