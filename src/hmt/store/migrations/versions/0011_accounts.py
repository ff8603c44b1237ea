"""Several broker accounts: the linked accounts, and the account of each trigger.

`hmt_accounts` holds the accounts a user links (docs/accounts.md): broker, label,
API key, and the API secret and access token sealed (`hmt.store.sealing`). The
default account is not a row: it is built from the settings as before.

`hmt_gtt_orders` gains `account` (text, NULL allowed): the id of the account
whose session places the trigger's orders; NULL is the default account, so every
row written before this revision keeps its meaning and nothing is rewritten.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hmt.store.columns import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLE = "hmt_accounts"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("broker", sa.String(16), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("api_key", sa.String(64), nullable=False),
        sa.Column("api_secret_sealed", sa.Text(), nullable=True),
        sa.Column("access_token_sealed", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("broker IN ('kite', 'upstox')", name="ck_hmt_accounts_broker"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["hmt_users.id"], name="fk_hmt_accounts_user_id_hmt_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_hmt_accounts"),
    )
    op.create_index("ix_hmt_accounts_user_id", TABLE, ["user_id"])
    # A nullable column without a default: no row is rewritten (PostgreSQL and SQLite
    # only change the table's definition), so the change feed hears nothing.
    op.add_column("hmt_gtt_orders", sa.Column("account", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("hmt_gtt_orders", "account")
    op.drop_index("ix_hmt_accounts_user_id", table_name=TABLE)
    op.drop_table(TABLE)
