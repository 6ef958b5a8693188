"""Every query, each a named function, grouped by what it touches.

Functions that change data say so ("Writes"). Callers own the transaction
(:func:`mailer.store.db.transaction`); nothing here commits. Import the submodule you need:
``from mailer.store import contacts as contact_store``; the common ones are re-exported.
"""

from mailer.store.contacts import (
    ContactKey,
    ListSummary,
    add_contact_labels,
    add_list_members,
    all_segments,
    contact_attributes,
    contact_labels,
    create_list,
    ensure_list,
    find_contacts_by_email,
    get_contact,
    get_list,
    get_segment,
    insert_contacts,
    insert_ignoring_conflicts,
    iter_contacts,
    list_summaries,
    replace_contact_labels,
    save_segment,
    segment_count,
    segment_sample,
    suppressed_hashes,
    update_contacts,
)

__all__ = [
    "ContactKey",
    "ListSummary",
    "add_contact_labels",
    "add_list_members",
    "all_segments",
    "contact_attributes",
    "contact_labels",
    "create_list",
    "ensure_list",
    "find_contacts_by_email",
    "get_contact",
    "get_list",
    "get_segment",
    "insert_contacts",
    "insert_ignoring_conflicts",
    "iter_contacts",
    "list_summaries",
    "replace_contact_labels",
    "save_segment",
    "segment_count",
    "segment_sample",
    "suppressed_hashes",
    "update_contacts",
]
