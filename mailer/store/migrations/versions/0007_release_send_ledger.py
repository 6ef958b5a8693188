"""The release's send ledger: a sequence raised in every transaction that records send
results, and the key a person's resend-after-restore decision renews (see mailer.releases.fence).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("ledger_seq", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("ledger_key", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("ledger_key")
        batch.drop_column("ledger_seq")
