"""The media list (issue 15): domain suppressions, contact notes and the log of contact
edits, the staff search's words and the contact list's sort keys.

Revision ID: 0009_media_list
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_media_list"
down_revision = "0008_client_identity"
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
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("sort_name", sa.String(length=200), nullable=False, server_default=""))
        batch.add_column(sa.Column("sort_outlet", sa.String(length=200), nullable=False, server_default=""))
        batch.create_index("ix_contacts_sort_name", ["sort_name", "id"])
        batch.create_index("ix_contacts_sort_outlet", ["sort_outlet", "id"])
        batch.create_index("ix_contacts_updated_at", ["updated_at"])
    op.create_table(
        "contact_terms",
        sa.Column("term", sa.String(length=64).with_variant(sa.String(length=64, collation="C"), "postgresql")),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_contact_terms_contact_id_contacts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("term", "contact_id", name="pk_contact_terms"),
    )
    op.create_index("ix_contact_terms_contact_term", "contact_terms", ["contact_id", "term"])
    _index_existing_contacts()


def _index_existing_contacts() -> None:
    """Sort keys and search words of the contacts already stored (in pages, by id)."""
    from sqlalchemy.orm import Session

    from mailer.store.contact_search import reindex_all

    reindex_all(Session(bind=op.get_bind()))


def downgrade() -> None:
    op.drop_table("contact_terms")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_index("ix_contacts_updated_at")
        batch.drop_index("ix_contacts_sort_outlet")
        batch.drop_index("ix_contacts_sort_name")
        batch.drop_column("sort_outlet")
        batch.drop_column("sort_name")
    op.drop_table("contact_changes")
    op.drop_table("contact_notes")
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_index("ix_suppressions_domain")
        batch.drop_column("subdomains")
        batch.drop_column("domain")
