"""Planning in steps: releases' ``plan_cursor`` (the last contact id planned while a
release is ``planning``), and two indexes of ``deliveries`` that nothing needs, dropped so
that planning does not maintain them row by row: ``ix_deliveries_contact_id`` (the prefix
of ``ix_deliveries_contact_status`` serves every query by contact) and
``ix_deliveries_email`` (the staff log's exact-address filter goes through
``ix_deliveries_email_hash``; its substring filter never used an index).

Revision ID: 0016_planning_steps
Revises: 0017_contact_search
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_planning_steps"
down_revision = "0017_contact_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): a batch copy of releases would drop a table that
    # other rows still reference.
    op.add_column("releases", sa.Column("plan_cursor", sa.BigInteger(), nullable=True))
    op.drop_index("ix_deliveries_contact_id", table_name="deliveries")
    op.drop_index("ix_deliveries_email", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_email", "deliveries", ["email"])
    op.create_index("ix_deliveries_contact_id", "deliveries", ["contact_id"])
    op.drop_column("releases", "plan_cursor")
