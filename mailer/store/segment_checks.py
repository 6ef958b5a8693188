"""What a segment rule names that the database does not hold: a list that does not exist,
a beat or tag no contact has. Such a rule is valid but matches nothing there (issue 21:
a misspelt list name selected nobody, silently). Read-only."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailer.store.segment_help import unknown_values
from mailer.store.segments import parse_rule

__all__ = ["unknown_names"]


def unknown_names(session: Session, rule: str) -> list[str]:
    """One line per list, beat or tag the rule names that nothing in the database has
    (``list 'x' does not exist (column 6)``); empty when all are known. The rule must parse."""
    found: list[str] = []
    for field, value, at in unknown_values(session, parse_rule(rule)):
        if field == "list":
            what = f"list {value.lower()!r} does not exist (see `mailer lists list`)"
        else:
            what = f"no contact has {field} {value.lower()!r}"
        found.append(f"{what} (column {at})")
    return list(dict.fromkeys(found))
