"""Two indexes of ``deliveries`` that took each planned row at a random place, dropped so
that planning a large release does not rewrite them step after step (issue 20: on SQLite
every step's commit rewrote most of their pages, ~48 KB written per planned row at
1,000,000 contacts), and the table that replaces one of them:

- ``ix_deliveries_email_hash``: an address's rows are found through the contacts that
  have or had its hash (``contacts.email_hash``, the new ``former_addresses``, then
  ``ix_deliveries_contact_status``; :mod:`mailer.store.address_rows`). Filled here with
  the hashes that rows carry and their contact no longer has (erased contacts).
- ``ix_deliveries_domain_status_id``: the staff log's domain filter reads the rows in id
  order without it (measured in bench/README.md, ``log_bench.py``).

The unique index on ``message_id`` stays: new Message-IDs begin with a random tag of their
planning step, so a step's rows go into it side by side; rows planned before keep their
Message-IDs and are found by them as before.

Revision ID: 0018_deliveries_lookup
Revises: 0016_planning_steps
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_deliveries_lookup"
down_revision = "0016_planning_steps"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "former_addresses",
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name="fk_former_addresses_contact_id_contacts"),
        sa.PrimaryKeyConstraint("email_hash", "contact_id", name="pk_former_addresses"),
    )
    op.execute(
        "INSERT INTO former_addresses (email_hash, contact_id)"
        " SELECT DISTINCT d.email_hash, d.contact_id FROM deliveries d"
        " JOIN contacts c ON c.id = d.contact_id"
        " WHERE d.email_hash <> c.email_hash AND d.email_hash NOT LIKE 'erased-%'"
    )
    op.drop_index("ix_deliveries_email_hash", table_name="deliveries")
    op.drop_index("ix_deliveries_domain_status_id", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_domain_status_id", "deliveries", ["domain", "status", "id"])
    op.create_index("ix_deliveries_email_hash", "deliveries", ["email_hash"])
    op.drop_table("former_addresses")
