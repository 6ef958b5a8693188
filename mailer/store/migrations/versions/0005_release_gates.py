"""Release gates: editors recorded for two-person approval, a late-send limit, holds
waiting for a person, and the database's identity (the send fence's key).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_after", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("hold_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("late_confirmed_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("resend_confirmed_at", sa.DateTime(), nullable=True))
    op.create_table(
        "release_editors",
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("actor_key", sa.String(length=320), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_editors_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("release_id", "actor_key", name=op.f("pk_release_editors")),
    )
    op.create_table(
        "mailer_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_mailer_meta")),
    )
    # The database's identity, from the start: a backup taken at any later moment carries
    # it, so the send fence recognises a restored copy (see mailer.releases.fence).
    meta = sa.table("mailer_meta", sa.column("key", sa.String), sa.column("value", sa.Text))
    op.bulk_insert(meta, [{"key": "database_id", "value": secrets.token_hex(16)}])
    # Existing releases: the author, and whoever the history says edited the content.
    # (lower() folds ASCII only; actors are addresses or login names.)
    op.execute(
        "INSERT INTO release_editors (release_id, actor_key, actor, at) "
        "SELECT id, lower(author), author, created_at FROM releases"
    )
    op.execute(
        "INSERT INTO release_editors (release_id, actor_key, actor, at) "
        "SELECT e.release_id, lower(e.actor), min(e.actor), min(e.at) FROM release_events e "
        "WHERE e.note LIKE 'edited%' AND NOT EXISTS (SELECT 1 FROM release_editors r "
        "WHERE r.release_id = e.release_id AND r.actor_key = lower(e.actor)) "
        "GROUP BY e.release_id, lower(e.actor)"
    )


def downgrade() -> None:
    op.drop_table("mailer_meta")
    op.drop_table("release_editors")
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_column("resend_confirmed_at")
        batch_op.drop_column("late_confirmed_at")
        batch_op.drop_column("hold_reason")
        batch_op.drop_column("not_after")
