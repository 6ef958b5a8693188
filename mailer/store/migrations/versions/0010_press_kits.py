"""Press kits, a newsroom and embargoes: contacts' ``embargo_ok``, release assets,
clients' ``newsroom_noindex``.

Revision ID: 0010_press_kits
Revises: 0007 (the lead re-chains the parallel branches' migrations at merge)
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_press_kits"
down_revision = "0012_conversations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): a batch copy of clients or contacts would drop a
    # table that other rows still reference.
    op.add_column("contacts", sa.Column("embargo_ok", sa.Boolean(), nullable=True))
    op.add_column("clients", sa.Column("newsroom_noindex", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "release_assets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column("alt", sa.Text(), nullable=True),
        sa.Column("attached", sa.Boolean(), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"], ["releases.id"], name="fk_release_assets_release_id_releases", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_release_assets"),
    )
    op.create_index("ix_release_assets_release_id", "release_assets", ["release_id"])


def downgrade() -> None:
    op.drop_index("ix_release_assets_release_id", table_name="release_assets")
    op.drop_table("release_assets")
    op.drop_column("clients", "newsroom_noindex")
    op.drop_column("contacts", "embargo_ok")
