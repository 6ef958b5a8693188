"""What the segment editor suggests and warns about (read only): values a field has
among the stored contacts, and values of a rule that match nothing stored."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.domain.search_terms import prefix_upper
from mailer.store.segments import Node, predicates
from mailer.store.tables import Contact, ContactBeat, ContactTag, MailingList

_COLUMNS = {
    "list": MailingList.slug,
    "beat": ContactBeat.beat,
    "tag": ContactTag.tag,
    "region": Contact.region,
    "country": Contact.country,
    "language": Contact.language,
}


def field_values(session: Session, field: str, prefix: str = "", *, limit: int = 12) -> list[str]:
    """Up to ``limit`` distinct stored values of ``field`` starting with ``prefix``, in
    order (an index range where there is one). Fields without a stored set give []."""
    column = _COLUMNS.get(field)
    if column is None:
        return []
    query = select(column).where(column.is_not(None)).distinct().order_by(column).limit(limit)
    start = prefix.upper() if field == "country" else prefix.lower()
    if start:
        query = query.where(column >= start, column < prefix_upper(start))
    return [v for v in session.scalars(query) if v]


def unknown_values(session: Session, node: Node) -> list[tuple[str, str, int]]:
    """(field, value, column) for each list, beat or tag of the rule that no stored
    contact (or list) has: likely a typo, since the rule then matches nobody by it."""
    out: list[tuple[str, str, int]] = []
    for p in predicates(node):
        column = _COLUMNS.get(p.field)
        if column is None or p.field not in ("list", "beat", "tag"):
            continue
        for value, at in zip(p.values, p.columns or (0,) * len(p.values), strict=True):
            if session.scalar(select(column).where(column == value.lower()).limit(1)) is None:
                out.append((p.field, value, at))
    return out
