"""Indexes for the staff delivery log's filters (measured with bench/log_bench.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_domain_status_id", "deliveries", ["domain", "status", "id"])
    op.create_index("ix_deliveries_release_status_id", "deliveries", ["release_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_release_status_id", table_name="deliveries")
    op.drop_index("ix_deliveries_domain_status_id", table_name="deliveries")
