"""What a page of contacts is narrowed by (:class:`ContactFilters`) and sorted by, and each
condition of it as the planner and the page's statement see it (:class:`Condition`): the
ids it matches, from an index alone, and the test of one walked contact."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import Session

from mailer.domain.search_terms import prefix_upper, query_words
from mailer.store.tables import Contact, ContactBeat, ContactTag, ContactTerm, ListMember, MailingList

SORTS = ("name", "email", "outlet", "updated")
#: filters on a column of the contact with an index of (column, sort key, id) for every sort
FACETS = ("outlet_type", "region")


@dataclass(frozen=True)
class ContactFilters:
    """What the contact list is narrowed by (empty: not used)."""

    query: str = ""
    list_slug: str = ""
    outlet_type: str = ""
    beat: str = ""
    tag: str = ""
    region: str = ""
    country: str = ""
    language: str = ""

    def active(self) -> bool:
        return any(getattr(self, f) for f in self.__dataclass_fields__)


def sort_columns(sort: str) -> tuple[Any, bool]:
    """The sort column and whether it runs descending."""
    if sort == "email":
        return Contact.email, False
    if sort == "outlet":
        return Contact.sort_outlet, False
    if sort == "updated":
        return Contact.updated_at, True
    return Contact.sort_name, False


@dataclass(frozen=True)
class Condition:
    """One condition of a page that an index can count: the ids it matches (from an index
    alone, to count and to drive the query) and the test of one walked contact."""

    name: str
    ids: Any
    #: the rows of another table that make a contact match (correlated with it: tested
    #: with :func:`probe_exists`); None for a column of the contact (``facet``)
    probe: Any = None
    #: the column and value when the condition is ``column = value`` on the contact, which
    #: has an index of (column, sort key, id) for every sort
    facet: tuple[Any, str] | None = None


def probe_exists(query: Any, *, fenced: bool = True) -> ColumnElement[bool]:
    """EXISTS (query LIMIT 1 OFFSET 0): the OFFSET keeps PostgreSQL from turning the test
    into a semi-join that starts from the other table (a LIMIT alone does not: it drops a
    constant one from an EXISTS; at 100,000 contacts it joined the 33,000 members of a list
    with the 5,600 contacts of a word before sorting, 44 ms, instead of walking 300 rows);
    each row of the walk is probed instead, the plan
    :func:`~mailer.store.contact_search.costs.plan` chose. Unfenced (a driven page, where
    every match is found anyway) the planner may join."""
    return exists(query.limit(1).offset(0) if fenced else query.limit(1))


def conditions(session: Session, filters: ContactFilters) -> list[Condition]:
    """The conditions of a page of ``filters`` an index can count: each word, the list,
    the beat, the tag, then each facet (country and language are only tested)."""
    conds: list[Condition] = []
    for word in query_words(filters.query):
        in_range = (ContactTerm.term >= word, ContactTerm.term < prefix_upper(word))
        conds.append(
            Condition(
                f"word {word}",
                select(ContactTerm.contact_id).where(*in_range),
                probe=select(ContactTerm.contact_id).where(ContactTerm.contact_id == Contact.id, *in_range),
            )
        )
    if filters.list_slug:
        list_id = session.scalar(select(MailingList.id).where(MailingList.slug == filters.list_slug)) or 0
        conds.append(
            Condition(
                "list",
                select(ListMember.contact_id).where(ListMember.list_id == list_id),
                probe=(
                    select(ListMember.contact_id).where(
                        ListMember.list_id == list_id, ListMember.contact_id == Contact.id
                    )
                ),
            )
        )
    if filters.beat:
        beat = filters.beat.strip().lower()
        conds.append(
            Condition(
                "beat",
                select(ContactBeat.contact_id).where(ContactBeat.beat == beat),
                probe=(
                    select(ContactBeat.contact_id).where(ContactBeat.contact_id == Contact.id, ContactBeat.beat == beat)
                ),
            )
        )
    if filters.tag:
        tag = filters.tag.strip().lower()
        conds.append(
            Condition(
                "tag",
                select(ContactTag.contact_id).where(ContactTag.tag == tag),
                probe=(select(ContactTag.contact_id).where(ContactTag.contact_id == Contact.id, ContactTag.tag == tag)),
            )
        )
    for name in FACETS:
        value = getattr(filters, name).strip().lower()
        if value:
            col = getattr(Contact, name)
            conds.append(Condition(name, select(Contact.id).where(col == value), facet=(col, value)))
    return conds
