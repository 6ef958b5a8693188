"""Replies to releases: the replies themselves, the forward outbox, contact holds (out of
office) and the research queue (see mailer.inbound).

Revision ID: 0011_replies
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_replies"
# The actual id of 0007_release_send_ledger.py (the lead re-chains the helpers' migrations).
down_revision = "0009_media_list"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("envelope_to", sa.String(length=320), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("return_date", sa.DateTime(), nullable=True),
        sa.Column("new_email", sa.String(length=320), nullable=True),
        sa.Column("new_outlet", sa.String(length=200), nullable=True),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("action_detail", sa.Text(), nullable=True),
        sa.Column("undone_at", sa.DateTime(), nullable=True),
        sa.Column("undone_by", sa.String(length=320), nullable=True),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], name=op.f("fk_replies_delivery_id_deliveries"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["release_id"], ["releases.id"], name=op.f("fk_replies_release_id_releases"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_replies_contact_id_contacts"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replies")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_replies_dedupe_key")),
    )
    op.create_index(op.f("ix_replies_contact_id"), "replies", ["contact_id"], unique=False)
    op.create_index(op.f("ix_replies_kind"), "replies", ["kind"], unique=False)
    op.create_index("ix_replies_release_id_id", "replies", ["release_id", "id"], unique=False)

    op.create_table(
        "reply_forwards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reply_id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reply_id"], ["replies.id"], name=op.f("fk_reply_forwards_reply_id_replies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reply_forwards")),
        sa.UniqueConstraint("reply_id", name=op.f("uq_reply_forwards_reply_id")),
    )
    op.create_index("ix_reply_forwards_due", "reply_forwards", ["sent_at", "next_attempt_at"], unique=False)

    op.create_table(
        "contact_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("reply_id", sa.Integer(), nullable=True),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("lifted_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_contact_holds_contact_id_contacts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["reply_id"], ["replies.id"], name=op.f("fk_contact_holds_reply_id_replies"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_holds")),
    )
    op.create_index(op.f("ix_contact_holds_contact_id"), "contact_holds", ["contact_id"], unique=False)
    op.create_index(op.f("ix_contact_holds_until"), "contact_holds", ["until"], unique=False)

    op.create_table(
        "research_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reply_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("old_email", sa.String(length=320), nullable=True),
        sa.Column("new_email", sa.String(length=320), nullable=True),
        sa.Column("new_outlet", sa.String(length=200), nullable=True),
        sa.Column("topics", sa.String(length=500), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reply_id"], ["replies.id"], name=op.f("fk_research_items_reply_id_replies"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_research_items_contact_id_contacts"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_research_items")),
    )
    op.create_index(op.f("ix_research_items_status"), "research_items", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_research_items_status"), table_name="research_items")
    op.drop_table("research_items")
    op.drop_index(op.f("ix_contact_holds_until"), table_name="contact_holds")
    op.drop_index(op.f("ix_contact_holds_contact_id"), table_name="contact_holds")
    op.drop_table("contact_holds")
    op.drop_index("ix_reply_forwards_due", table_name="reply_forwards")
    op.drop_table("reply_forwards")
    op.drop_index("ix_replies_release_id_id", table_name="replies")
    op.drop_index(op.f("ix_replies_kind"), table_name="replies")
    op.drop_index(op.f("ix_replies_contact_id"), table_name="replies")
    op.drop_table("replies")
