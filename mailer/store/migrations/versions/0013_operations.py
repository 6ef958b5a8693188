"""Running it as a service: process heartbeats and pushed counters (readiness, metrics).

Revision ID: 0013_operations
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_operations"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "heartbeats",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("beat_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_heartbeats")),
    )
    op.create_index(op.f("ix_heartbeats_kind"), "heartbeats", ["kind"], unique=False)
    op.create_table(
        "ops_counters",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("labels", sa.String(length=400), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", "labels", name=op.f("pk_ops_counters")),
    )


def downgrade() -> None:
    op.drop_table("ops_counters")
    op.drop_index(op.f("ix_heartbeats_kind"), table_name="heartbeats")
    op.drop_table("heartbeats")
