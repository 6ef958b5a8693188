"""The media list (issue 15): domain suppressions.

Revision ID: 0009_media_list
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_media_list"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("suppressions") as batch:
        batch.add_column(sa.Column("domain", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("subdomains", sa.Boolean(), nullable=False, server_default="0"))
        batch.create_index("ix_suppressions_domain", ["domain"])


def downgrade() -> None:
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_index("ix_suppressions_domain")
        batch.drop_column("subdomains")
        batch.drop_column("domain")
