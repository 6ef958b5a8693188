"""Mail kept for staff (inbound_mail) and the soft-bounce warn/disable flow.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("soft_bounce_warnings", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("soft_bounce_warned_at", sa.DateTime(), nullable=True))
    op.create_table(
        "inbound_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("envelope_to", sa.String(length=320), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_inbound_mail_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_mail")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_inbound_mail_dedupe_key")),
    )
    op.create_index(op.f("ix_inbound_mail_category"), "inbound_mail", ["category"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_inbound_mail_category"), table_name="inbound_mail")
    op.drop_table("inbound_mail")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("soft_bounce_warned_at")
        batch_op.drop_column("soft_bounce_warnings")
