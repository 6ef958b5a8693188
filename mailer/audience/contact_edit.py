"""Editing one contact by hand (``mailer contacts edit``, the staff contact page) and
its notes (``mailer contacts note``).

An edit is validated exactly as an import row is (:func:`mailer.audience.contactfields.clean_field`,
the same labels for beats and tags, the same control-character rules for attributes) and
every field that changes is logged with who and when (:mod:`mailer.store.contact_journal`).
The address itself is not editable: it is the contact's identity and its suppressions'
key; a new address is a new contact.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailer import store
from mailer.audience.contactfields import (
    FLAG_COLUMNS,
    FORBIDDEN_IN_ATTRIBUTE,
    FORBIDDEN_IN_FIELD,
    KNOWN_COLUMNS,
    clean_field,
    flag,
    header_key,
    labels,
    refuse_controls,
)
from mailer.domain.addresses import normalize_email
from mailer.domain.errors import InputError
from mailer.domain.states import DEFAULT_OUTLET_TYPES
from mailer.store import contact_journal, contact_search
from mailer.store.tables import ContactBeat, ContactTag

#: The fields an edit may set (the known columns but the address).
EDITABLE = (*(c for c in KNOWN_COLUMNS if c != "email"), *FLAG_COLUMNS)
MAX_NOTE = 10_000


@dataclass(frozen=True)
class EditResult:
    email: str
    changes: tuple[contact_journal.Change, ...]


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return "|".join(value) if value else None
    return str(value)


def edit_contact(
    session: Session,
    email: str,
    fields: Mapping[str, str],
    *,
    attributes: Mapping[str, str] | None = None,
    actor: str,
    now: datetime,
    outlet_types: Collection[str] = DEFAULT_OUTLET_TYPES,
) -> EditResult:
    """Writes: set ``fields`` (column → text; "" clears) and ``attributes`` (name → text;
    "" removes the attribute) of the contact ``email``, logging each real change.

    Raises InputError naming the field for a bad value or an unknown field (nothing is
    written then), NotFoundError when there is no such contact.
    """
    contact = store.get_contact(session, normalize_email(email))
    beats, tags, _ = store.contact_labels(session, contact.id)
    values: dict[str, object] = {}
    new_labels: dict[str, list[str]] = {}
    for name, raw in fields.items():
        key = header_key(name)
        if key not in EDITABLE:
            raise InputError(f"{name}: not a field that can be edited (fields: {', '.join(EDITABLE)})")
        if key in ("beats", "tags"):
            refuse_controls(key, raw, FORBIDDEN_IN_FIELD)
            new_labels[key] = labels(raw)
        elif key in FLAG_COLUMNS:
            # embargo_ok: "false" leaves the contact out of embargoed releases ("" clears)
            values[key] = flag(key, raw)
        else:
            values[key] = clean_field(key, raw, outlet_types=outlet_types)
    merged = dict(contact.attributes or {})
    for name, raw in (attributes or {}).items():
        key = header_key(name)
        if not key or key in KNOWN_COLUMNS:
            raise InputError(f"attribute {name!r}: not a free attribute name")
        refuse_controls(key, raw, FORBIDDEN_IN_ATTRIBUTE)
        if raw.strip():
            merged[key] = raw.strip()
        else:
            merged.pop(key, None)
    log: list[contact_journal.Change] = []
    changed: dict[str, object] = {}
    for key, value in values.items():
        old = getattr(contact, key)
        if old != value:
            changed[key] = value
            log.append(contact_journal.Change(actor, key, _text(old), _text(value), now))
    current = {"beats": beats, "tags": tags}
    for key, new in new_labels.items():
        if new != current[key]:
            table = ContactBeat if key == "beats" else ContactTag
            store.replace_contact_labels(session, table, {contact.id: new})
            log.append(contact_journal.Change(actor, key, _text(current[key]), _text(new), now))
    old_attrs = dict(contact.attributes or {})
    if merged != old_attrs:
        changed["attributes"] = merged
        for key in sorted(set(merged) | set(old_attrs)):
            if merged.get(key) != old_attrs.get(key):
                log.append(
                    contact_journal.Change(actor, f"attr.{key}", _attr(old_attrs.get(key)), _attr(merged.get(key)), now)
                )
    if changed or log:
        changed["updated_at"] = now
        contact_journal.update_contact_fields(session, contact.id, changed)
        contact_journal.record_changes(session, contact.id, log)
        contact_search.reindex_contacts(session, [contact.id])
    return EditResult(contact.email or email, tuple(log))


def _attr(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def add_note(session: Session, email: str, text: str, *, actor: str, now: datetime) -> int:
    """Writes: a note on the contact ``email``, stamped with ``actor`` and ``now``; returns
    its id. InputError for an empty or over-long note or a NUL; NotFoundError for no contact."""
    body = text.strip()
    if not body:
        raise InputError("the note is empty")
    if len(body) > MAX_NOTE:
        raise InputError(f"the note is longer than {MAX_NOTE} characters")
    if "\x00" in body:
        raise InputError("the note holds a NUL character")
    contact = store.get_contact(session, normalize_email(email))
    return contact_journal.add_note(session, contact.id, author=actor, body=body, now=now)
