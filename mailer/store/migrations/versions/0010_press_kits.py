"""Press kits, a newsroom and embargoes: contacts' ``embargo_ok``.

Revision ID: 0010_press_kits
Revises: 0007 (the lead re-chains the parallel branches' migrations at merge)
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_press_kits"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("embargo_ok", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("embargo_ok")
