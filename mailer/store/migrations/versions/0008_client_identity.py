"""Each client sends as itself: its DKIM key and selector(s), return-path (bounce) and
Message-ID domains, a recorded alignment override; a proof's bounce is recorded on it.

Revision ID: 0008_client_identity
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_client_identity"
down_revision = "0013_operations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("dkim_domain", sa.String(length=253), nullable=True))
        batch.add_column(sa.Column("dkim_selector", sa.String(length=63), nullable=True))
        batch.add_column(sa.Column("dkim_key_file", sa.Text(), nullable=True))
        batch.add_column(sa.Column("dkim_other_keys", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("bounce_domain", sa.String(length=253), nullable=True))
        batch.add_column(sa.Column("message_id_domain", sa.String(length=253), nullable=True))
        batch.add_column(sa.Column("alignment_override", sa.Text(), nullable=True))
        batch.add_column(sa.Column("alignment_override_by", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("alignment_override_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("proofs") as batch:
        batch.add_column(sa.Column("bounced_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("bounce", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proofs") as batch:
        batch.drop_column("bounce")
        batch.drop_column("bounced_at")
    with op.batch_alter_table("clients") as batch:
        for column in (
            "alignment_override_at",
            "alignment_override_by",
            "alignment_override",
            "message_id_domain",
            "bounce_domain",
            "dkim_other_keys",
            "dkim_key_file",
            "dkim_selector",
            "dkim_domain",
        ):
            batch.drop_column(column)
