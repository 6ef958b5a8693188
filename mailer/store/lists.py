"""Managing lists and segments: rename, delete, remove members, and what uses a segment
(writes say so). Import-time list writes stay in :mod:`mailer.store.contacts`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mailer.store.contacts import add_list_members, get_list, get_segment
from mailer.store.deliveries import rowcount
from mailer.store.segments import parse_rule, predicates
from mailer.store.tables import Contact, ListMember, MailingList, Release, ReleaseSegment, Segment


def list_slugs(session: Session) -> list[str]:
    """Every list's slug, in order (cheap: no counts)."""
    return list(session.scalars(select(MailingList.slug).order_by(MailingList.slug)))


def rename_list(session: Session, slug: str, name: str) -> None:
    """Writes: the display name of list ``slug``; NotFoundError when there is none."""
    found = get_list(session, slug)
    session.execute(update(MailingList).where(MailingList.id == found.id).values(name=name))


def delete_list(session: Session, slug: str) -> int:
    """Writes: delete list ``slug`` and its memberships (the contacts stay); returns how
    many members it had. NotFoundError when there is none."""
    found = get_list(session, slug)
    members = rowcount(session.execute(delete(ListMember).where(ListMember.list_id == found.id)))
    session.execute(delete(MailingList).where(MailingList.id == found.id))
    return members


def remove_members(session: Session, slug: str, emails: Sequence[str]) -> list[str]:
    """Writes: take the contacts with these (normalized) addresses off list ``slug``;
    returns the addresses that were members."""
    found = get_list(session, slug)
    members = list(
        session.execute(
            select(Contact.id, Contact.email)
            .join(ListMember, ListMember.contact_id == Contact.id)
            .where(ListMember.list_id == found.id, Contact.email.in_(list(emails)))
        )
    )
    if members:
        session.execute(
            delete(ListMember).where(ListMember.list_id == found.id, ListMember.contact_id.in_([m[0] for m in members]))
        )
    return sorted(m[1] for m in members if m[1])


def add_members_by_id(session: Session, slug: str, contact_ids: Sequence[int], *, now: datetime) -> int:
    """Writes: put these contacts on list ``slug`` (members already there stay); returns
    how many were added."""
    found = get_list(session, slug)
    have = set(
        session.scalars(
            select(ListMember.contact_id).where(
                ListMember.list_id == found.id, ListMember.contact_id.in_(list(contact_ids))
            )
        )
    )
    new = [cid for cid in dict.fromkeys(contact_ids) if cid not in have]
    add_list_members(session, found.id, new, now)
    return len(new)


def segments_naming_list(session: Session, slug: str) -> list[str]:
    """Segments whose rule mentions list ``slug`` (a cheap text match, then parsed)."""
    out = []
    for seg in session.scalars(select(Segment).where(Segment.rule.contains(slug)).order_by(Segment.slug)):
        if any(p.field == "list" and slug in {v.lower() for v in p.values} for p in predicates(parse_rule(seg.rule))):
            out.append(seg.slug)
    return out


def releases_using_segment(session: Session, slug: str) -> list[int]:
    """Ids of the releases that go (or went) to segment ``slug``; NotFoundError when there is none."""
    seg = get_segment(session, slug)
    return list(
        session.scalars(
            select(Release.id)
            .join(ReleaseSegment, ReleaseSegment.release_id == Release.id)
            .where(ReleaseSegment.segment_id == seg.id)
            .order_by(Release.id)
        )
    )


def delete_segment(session: Session, slug: str) -> None:
    """Writes: delete segment ``slug`` (the caller has checked no release uses it)."""
    seg = get_segment(session, slug)
    session.execute(delete(Segment).where(Segment.id == seg.id))
