"""The staff contact search at 1,000,000 contacts (issue 15): access paths matched to the
broad combinations of filters.

* ``(outlet_type, sort key, id)`` and ``(region, sort key, id)`` for each sort of the
  contact list (name, outlet, email, updated): a page filtered by outlet type or region
  walks only the contacts of that type or region, in order, instead of every contact
  (they replace the one-column indexes on ``outlet_type`` and ``region``);
* ``(beat, contact_id)`` and ``(tag, contact_id)``: a beat's or tag's contacts are counted
  and listed from the index alone (they replace the one-column indexes on ``beat``, ``tag``).

Revision ID: 0017_contact_search
Revises: 0015_claim_due
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0017_contact_search"
down_revision = "0015_claim_due"
branch_labels = None
depends_on = None

#: (name, columns) of the indexes over contacts that a filtered page walks
FACET_INDEXES = [
    (f"ix_contacts_{facet}_{key}", [facet, key, "id"])
    for facet in ("outlet_type", "region")
    for key in ("sort_name", "sort_outlet", "email", "updated_at")
]


def upgrade() -> None:
    op.drop_index("ix_contacts_outlet_type", table_name="contacts")
    op.drop_index("ix_contacts_region", table_name="contacts")
    for name, columns in FACET_INDEXES:
        op.create_index(name, "contacts", columns)
    op.drop_index("ix_contact_beats_beat", table_name="contact_beats")
    op.create_index("ix_contact_beats_beat_contact", "contact_beats", ["beat", "contact_id"])
    op.drop_index("ix_contact_tags_tag", table_name="contact_tags")
    op.create_index("ix_contact_tags_tag_contact", "contact_tags", ["tag", "contact_id"])


def downgrade() -> None:
    op.drop_index("ix_contact_tags_tag_contact", table_name="contact_tags")
    op.create_index("ix_contact_tags_tag", "contact_tags", ["tag"])
    op.drop_index("ix_contact_beats_beat_contact", table_name="contact_beats")
    op.create_index("ix_contact_beats_beat", "contact_beats", ["beat"])
    for name, _ in FACET_INDEXES:
        op.drop_index(name, table_name="contacts")
    op.create_index("ix_contacts_region", "contacts", ["region"])
    op.create_index("ix_contacts_outlet_type", "contacts", ["outlet_type"])
