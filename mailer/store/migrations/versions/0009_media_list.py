"""The media list (issue 15): domain suppressions, contact notes and the log of contact edits.

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
    op.create_table(
        "contact_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=320), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_contact_notes_contact_id_contacts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_contact_notes"),
    )
    op.create_index("ix_contact_notes_contact_id", "contact_notes", ["contact_id"])
    op.create_table(
        "contact_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("field", sa.String(length=80), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_contact_changes_contact_id_contacts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_contact_changes"),
    )
    op.create_index("ix_contact_changes_contact_id", "contact_changes", ["contact_id"])


def downgrade() -> None:
    op.drop_table("contact_changes")
    op.drop_table("contact_notes")
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_index("ix_suppressions_domain")
        batch.drop_column("subdomains")
        batch.drop_column("domain")
