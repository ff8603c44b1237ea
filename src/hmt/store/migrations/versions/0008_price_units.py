"""Each price's wire units, stored: the start-up load reads int8s, no arithmetic.

`hmt_gtt_orders` gains `trigger_price_1_units`, `trigger_price_2_units`,
`limit_price_1_units` and `limit_price_2_units` (int8): the price times the
row's `price_divisor`, NULL where that is not a whole number of units, the
price or the divisor is NULL, or it is out of int8's range (docs/engine.md,
"Start-up with a million triggers").

On PostgreSQL the database keeps them: a BEFORE INSERT OR UPDATE row trigger
computes them from the prices whenever a price, the divisor or a units column
is written, so every write path (the API's, bulk, v2, a hosted UI's own SQL)
keeps them equal to the prices without knowing they exist, and nobody can set
them to anything else. Existing rows are backfilled here in batches of
`BACKFILL_BATCH` (the trigger computes; each batch a plain UPDATE of the
divisor onto itself). The load still checks each units value against its price
(a row written with triggers disabled falls back to the price).

On SQLite the columns exist (one schema for both stores) but stay NULL: its
load converts the prices as before (SQLite keeps prices as decimal text, and
its start-up is not the 1M-trigger target).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLE = "hmt_gtt_orders"
PRICES = ("trigger_price_1", "trigger_price_2", "limit_price_1", "limit_price_2")
UNITS = tuple(f"{p}_units" for p in PRICES)
FUNCTION = "hmt_gtt_orders_price_units"
TRIGGER = "hmt_gtt_orders_price_units"
NOTIFY = "hmt_gtt_orders_notify"  # the change feed's (revision 0001)
BACKFILL_BATCH = 50_000

# A price's units, exactly, or NULL: the same rule as `store/loading._units` for a
# whole number of units (anything else is converted, or refused, from the price).
_UNITS_OF = (
    "CASE WHEN NEW.{p} * NEW.price_divisor = trunc(NEW.{p} * NEW.price_divisor)"
    " AND abs(NEW.{p} * NEW.price_divisor) < 1e18"
    " THEN (NEW.{p} * NEW.price_divisor)::int8 END"
)
_BODY = "\n".join(f"    NEW.{p}_units := {_UNITS_OF.format(p=p)};" for p in PRICES)
CREATE_FUNCTION = f"""
CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{_BODY}
    RETURN NEW;
END
$$
"""
CREATE_TRIGGER = (
    f"CREATE TRIGGER {TRIGGER} BEFORE INSERT OR UPDATE OF "
    f"{', '.join((*PRICES, 'price_divisor', *UNITS))} ON {TABLE} "
    f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
)
# Keyset batches by id: every row is written once, whatever its prices.
_BATCH_END = (
    f"SELECT max(id::text)::uuid FROM (SELECT id FROM {TABLE} WHERE id > :after "  # noqa: S608
    f"ORDER BY id LIMIT {BACKFILL_BATCH}) AS batch"
)
BACKFILL = (
    f"UPDATE {TABLE} SET price_divisor = price_divisor "  # noqa: S608
    "WHERE id > :after AND id <= :last"
)
FIRST = "00000000-0000-0000-0000-000000000000"


def upgrade() -> None:
    for name in UNITS:
        op.add_column(TABLE, sa.Column(name, sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(CREATE_FUNCTION)
    op.execute(CREATE_TRIGGER)
    # Batched, so no single statement holds a million row versions; the trigger
    # computes each row's units. The change feed's trigger is off meanwhile: no
    # trigger changes meaning, and a million notifications would only make every
    # listening engine re-read every row.
    bind = op.get_bind()
    op.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {NOTIFY}")
    after = FIRST
    while (last := bind.execute(sa.text(_BATCH_END), {"after": after}).scalar()) is not None:
        bind.execute(sa.text(BACKFILL), {"after": after, "last": last})
        after = str(last)
    op.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER {NOTIFY}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {TABLE}")
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
    for name in reversed(UNITS):
        op.drop_column(TABLE, name)
