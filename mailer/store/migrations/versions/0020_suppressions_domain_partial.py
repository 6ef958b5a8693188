"""``ix_suppressions_domain`` holds the domain suppressions only (``WHERE domain IS NOT
NULL``), and the suppression check says so too (:mod:`mailer.store.suppression_match`).

With the full index, statistics taken by ``ANALYZE`` while every suppression was an
address (all ``domain`` NULL: ``sqlite_stat1`` says "N N", N rows per value) made SQLite
read every suppression for every contact planned or claimed instead of the index: a
100,000-contact planning statement took 36 s instead of 1.2 s. The partial index has no
entry for an address, so no statistics make the one-key lookup look as costly as a scan.

Revision ID: 0020_suppressions_domain_partial
Revises: 0018_deliveries_lookup
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_suppressions_domain_partial"
down_revision = "0018_deliveries_lookup"
branch_labels = None
depends_on = None

_DOMAIN = sa.text("domain IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_suppressions_domain", table_name="suppressions")
    op.create_index(
        "ix_suppressions_domain", "suppressions", ["domain"], sqlite_where=_DOMAIN, postgresql_where=_DOMAIN
    )


def downgrade() -> None:
    op.drop_index("ix_suppressions_domain", table_name="suppressions")
    op.create_index("ix_suppressions_domain", "suppressions", ["domain"])
