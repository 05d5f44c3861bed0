"""hardening: handled updates as a set, database meta, local challenge outcomes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handled_updates",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("update_id"),
    )
    with op.batch_alter_table("handled_updates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handled_updates_at"), ["at"], unique=False)
    op.create_table(
        "meta",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("last_update_id")
    with op.batch_alter_table("local_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.String(length=40), nullable=True))
    with op.batch_alter_table("local_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requester", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("local_events", schema=None) as batch_op:
        batch_op.drop_column("requester")
    with op.batch_alter_table("local_accounts", schema=None) as batch_op:
        batch_op.drop_column("created_by")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_update_id", sa.BigInteger(), nullable=True))
    op.drop_table("meta")
    with op.batch_alter_table("handled_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handled_updates_at"))
    op.drop_table("handled_updates")
