"""gate: gated chats and their settings, waits with deadlines, admissions, the decision log,
redeemed deep links

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deep_links_used",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("used_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce"),
    )
    with op.batch_alter_table("deep_links_used", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deep_links_used_used_at"), ["used_at"], unique=False)

    op.create_table(
        "gate_admissions",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("admitted_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rule", sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "user_id"),
    )
    with op.batch_alter_table("gate_admissions", schema=None) as batch_op:
        batch_op.create_index("ix_gate_admissions_user_id", ["user_id"], unique=False)

    op.create_table(
        "gate_erasures",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("waiting", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "user_id"),
    )
    op.create_table(
        "gate_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=512), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("gate_log", schema=None) as batch_op:
        batch_op.create_index("ix_gate_log_chat_id_id", ["chat_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_gate_log_user_id"), ["user_id"], unique=False)

    op.create_table(
        "gate_notices",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "key"),
    )
    op.create_table(
        "gate_pending",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("user_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("query_id", sa.String(length=128), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("deadline_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "user_id"),
    )
    with op.batch_alter_table("gate_pending", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gate_pending_deadline_at"), ["deadline_at"], unique=False
        )
        batch_op.create_index("ix_gate_pending_user_id", ["user_id"], unique=False)

    op.create_table(
        "gated_chats",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("policy", sa.String(length=512), nullable=False),
        sa.Column("timeout", sa.Integer(), nullable=False),
        sa.Column("require_live_link", sa.Boolean(), nullable=False),
        sa.Column("bot_rights", sa.JSON(), nullable=True),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id"),
    )


def downgrade() -> None:
    op.drop_table("gated_chats")
    with op.batch_alter_table("gate_pending", schema=None) as batch_op:
        batch_op.drop_index("ix_gate_pending_user_id")
        batch_op.drop_index(batch_op.f("ix_gate_pending_deadline_at"))

    op.drop_table("gate_pending")
    op.drop_table("gate_notices")
    with op.batch_alter_table("gate_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gate_log_user_id"))
        batch_op.drop_index("ix_gate_log_chat_id_id")

    op.drop_table("gate_log")
    op.drop_table("gate_erasures")
    with op.batch_alter_table("gate_admissions", schema=None) as batch_op:
        batch_op.drop_index("ix_gate_admissions_user_id")

    op.drop_table("gate_admissions")
    with op.batch_alter_table("deep_links_used", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deep_links_used_used_at"))

    op.drop_table("deep_links_used")
