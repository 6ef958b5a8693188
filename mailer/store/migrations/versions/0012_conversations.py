"""Conversations: linked releases (corrections, withdrawals, follow-ups) threaded under
the parent's messages, the cadence cap's lift, local-hour delivery (a not-before per
delivery), and an index on a contact's deliveries for the cap and the history segments.

Revision ID: 0012_conversations
Revises: 0007 (0007_release_send_ledger.py)
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_conversations"
# main's 0007_release_send_ledger.py has the revision id "0007" (the merge re-chains this)
down_revision = "0014_publicist_desk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch "move and copy"): on SQLite, recreating ``releases`` would
    # drop it, and the drop's implicit DELETE cascades to every table that references it.
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # SQLite takes a reference only inline, in the ADD COLUMN itself.
        op.execute("ALTER TABLE releases ADD COLUMN parent_id INTEGER REFERENCES releases (id)")
    else:
        op.add_column("releases", sa.Column("parent_id", sa.Integer(), nullable=True))
        op.create_foreign_key(op.f("fk_releases_parent_id_releases"), "releases", "releases", ["parent_id"], ["id"])
    op.create_index(op.f("ix_releases_parent_id"), "releases", ["parent_id"])
    op.add_column("releases", sa.Column("kind", sa.String(length=20), nullable=True))
    op.add_column("releases", sa.Column("follow_up_filter", sa.String(length=20), nullable=True))
    op.add_column("releases", sa.Column("cap_lifted_by", sa.String(length=320), nullable=True))
    op.add_column("releases", sa.Column("cap_lifted_at", sa.DateTime(), nullable=True))
    op.add_column("releases", sa.Column("send_at_local", sa.String(length=16), nullable=True))
    op.add_column("releases", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.add_column("deliveries", sa.Column("not_before", sa.DateTime(), nullable=True))
    op.add_column("deliveries", sa.Column("in_reply_to", sa.String(length=255), nullable=True))
    op.create_index("ix_deliveries_contact_status", "deliveries", ["contact_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_contact_status", table_name="deliveries")
    op.drop_index(op.f("ix_releases_parent_id"), table_name="releases")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("fk_releases_parent_id_releases"), "releases", type_="foreignkey")
    # SQLite 3.35+ drops a plain column in place (no table copy, no cascade); the
    # parent_id column's inline reference is dropped with it.
    for table, column in (
        ("deliveries", "in_reply_to"),
        ("deliveries", "not_before"),
        ("releases", "timezone"),
        ("releases", "send_at_local"),
        ("releases", "cap_lifted_at"),
        ("releases", "cap_lifted_by"),
        ("releases", "follow_up_filter"),
        ("releases", "kind"),
        ("releases", "parent_id"),
    ):
        op.drop_column(table, column)
