"""What a segment rule names that the database does not hold: a list that does not exist,
a beat or tag no contact has. Such a rule is valid but matches nothing there (issue 21:
a misspelt list name selected nobody, silently). Read-only."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.store.segments import parse_rule, predicates
from mailer.store.tables import ContactBeat, ContactTag, MailingList

__all__ = ["unknown_names"]


def unknown_names(session: Session, rule: str) -> list[str]:
    """One line per list, beat or tag the rule names that nothing in the database has
    (``list 'x' does not exist``); empty when all are known. The rule must parse."""
    found: list[str] = []
    for predicate in predicates(parse_rule(rule)):
        values = sorted({v.lower() for v in predicate.values})
        if predicate.field == "list":
            have = set(session.scalars(select(MailingList.slug).where(MailingList.slug.in_(values))))
            found += [f"list {v!r} does not exist (see `mailer lists list`)" for v in values if v not in have]
        elif predicate.field == "beat":
            have = set(session.scalars(select(ContactBeat.beat).where(ContactBeat.beat.in_(values)).distinct()))
            found += [f"no contact has beat {v!r}" for v in values if v not in have]
        elif predicate.field == "tag":
            have = set(session.scalars(select(ContactTag.tag).where(ContactTag.tag.in_(values)).distinct()))
            found += [f"no contact has tag {v!r}" for v in values if v not in have]
    return list(dict.fromkeys(found))
