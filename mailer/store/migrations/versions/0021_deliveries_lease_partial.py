"""``ix_deliveries_lease`` holds the leased rows only (``WHERE status = 'sending'``).

The full index on (status, lease_expires_at) took an entry for every delivery row: each
planned row (issue 20: ~6% of a planned row's instructions on SQLite), each claim and
each recorded result moved one. Only ``sending`` rows have a lease, and every query that
reads the index (:mod:`mailer.store.leases`: renewal, hand-back, the sweep) says
``status = 'sending'`` literally, as SQLite needs to use a partial index.

Revision ID: 0021_deliveries_lease_partial
Revises: 0019_import_terms
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_deliveries_lease_partial"
down_revision = "0019_import_terms"
branch_labels = None
depends_on = None

_SENDING = sa.text("status = 'sending'")


def upgrade() -> None:
    op.drop_index("ix_deliveries_lease", table_name="deliveries")
    op.create_index(
        "ix_deliveries_lease", "deliveries", ["lease_expires_at"], sqlite_where=_SENDING, postgresql_where=_SENDING
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_lease", table_name="deliveries")
    op.create_index("ix_deliveries_lease", "deliveries", ["status", "lease_expires_at"])
