"""Claims that do not scan the release: two partial indexes of the due rows (queued by
not-before then id, deferred by retry time then id) replace ``ix_deliveries_claim``
(measured with bench/claim_bench.py).

Revision ID: 0015_claim_due
Revises: 0010_press_kits
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_claim_due"
down_revision = "0010_press_kits"
branch_labels = None
depends_on = None

_QUEUED = sa.text("status = 'queued'")
_DEFERRED = sa.text("status = 'deferred'")


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_due_queued",
        "deliveries",
        ["release_id", "not_before", "id"],
        sqlite_where=_QUEUED,
        postgresql_where=_QUEUED,
    )
    op.create_index(
        "ix_deliveries_due_deferred",
        "deliveries",
        ["release_id", "next_attempt_at", "id"],
        sqlite_where=_DEFERRED,
        postgresql_where=_DEFERRED,
    )
    op.drop_index("ix_deliveries_claim", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_claim", "deliveries", ["release_id", "status", "next_attempt_at"])
    op.drop_index("ix_deliveries_due_deferred", table_name="deliveries")
    op.drop_index("ix_deliveries_due_queued", table_name="deliveries")
