"""The right to erasure: everything personal about an address goes, its hash stays in
a global ``erased`` suppression so the address is never mailed again. The caller owns
the transaction; the writes are :mod:`mailer.store.erasure`'s."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.domain.addresses import normalize_email
from mailer.domain.errors import NotFoundError
from mailer.domain.states import GLOBAL_SCOPE, SuppressionReason, email_hash
from mailer.store import erasure as erasure_store
from mailer.store import suppressions as suppression_store


@dataclass(frozen=True)
class Erasure:
    """What :func:`erase_contact` changed."""

    email_hash: str
    contact_id: int | None
    deliveries: int
    events: int
    suppressions: int


def erase_contact(session: Session, email: str, *, actor: str, now: datetime) -> Erasure:
    """Writes: erase everything personal about ``email`` and keep it suppressed.

    * the contact: address, names, outlet, region, country, language, time zone and
      attributes cleared; beats, tags and list memberships deleted; ``erased_at`` set; its
      ``email_hash`` replaced by ``erased-<id>`` (see
      :func:`mailer.store.erasure.erase_contact_row`: a re-import then creates a new,
      suppressed contact instead of failing on the unique hash);
    * its deliveries: address cleared and cut out of the last SMTP reply; unclaimed ones
      (queued, deferred) become ``suppressed``;
    * their events: raw bounce messages dropped, address cut out of the details;
    * suppressions: the address cleared, the hash kept;
    * a global suppression with reason ``erased`` (an existing global one is kept and its
      reason becomes ``erased``), logged with ``actor``.

    Suppressions match on the hash, so the address stays suppressed however it comes
    back. Raises InputError for a bad address, NotFoundError when nothing is known
    about it (no contact, delivery or suppression).
    """
    normalized = normalize_email(email)
    hashed = email_hash(normalized)
    contact = erasure_store.find_contact_by_hash(session, hashed)
    contact_id = contact.id if contact is not None else None
    deliveries = erasure_store.forget_delivery_addresses(
        session, contact_id=contact_id, hashed=hashed, email=normalized, now=now
    )
    if contact is None and not deliveries and not suppression_store.suppression_scopes(session, [hashed]):
        raise NotFoundError(f"nothing is stored about {normalized}")
    events = erasure_store.forget_event_details(
        session, delivery_ids=deliveries, contact_id=contact_id, email=normalized
    )
    if contact_id is not None:
        erasure_store.erase_contact_row(session, contact_id, now=now)
    forgotten = erasure_store.forget_suppression_addresses(session, hashed, email=normalized)
    source = f"erased by {actor}"
    if not suppression_store.suppress_hash(
        session, hashed, email=None, reason=SuppressionReason.ERASED, source=source, now=now, scope=GLOBAL_SCOPE
    ):
        suppression_store.set_suppression_reason(session, hashed, scope=GLOBAL_SCOPE, reason=SuppressionReason.ERASED)
    suppression_store.log_suppression_change(
        session, hashed, scope=GLOBAL_SCOPE, action="erased", reason="contact erased", actor=actor, now=now
    )
    return Erasure(
        email_hash=hashed, contact_id=contact_id, deliveries=len(deliveries), events=events, suppressions=forgotten
    )
