"""The circuit breaker's shared state on the release: the last results (a window of
``0``/``1`` marks, ``1`` a counted refusal) and the current streak of counted refusals,
updated atomically by every worker process at each recording.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("breaker_window", sa.String(length=500), nullable=False, server_default=""))
        batch.add_column(sa.Column("breaker_streak", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("breaker_streak")
        batch.drop_column("breaker_window")
