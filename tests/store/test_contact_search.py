"""The staff contact search (issue 15): words by prefix across name, email, outlet, beats
and tags; filters; sorts; keyset pages; the index kept by import, edit and erasure."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.audience import contact_edit, contacts, erasure
from mailer.runtime import Runtime
from mailer.store import contact_search
from mailer.store.contact_search import ContactFilters, contact_page
from mailer.store.db import transaction
from tests.support.constants import FIXED_NOW

ROWS = """email,first_name,last_name,outlet,outlet_type,beats,tags,region
clemence@lequotidien.example.com,Clémence,Aubert,Le Quotidien,print,politics|foreign-policy,vip,eu-west
dana@harborledger.example.com,Dana,Reyes,Harbor Ledger,online,business,,us-east
liam@example.org,Liam,O'Brien,Tis Media,tv,foreign-policy,freelance,eu-west
zoe@wire.example.net,Zoë,Adams,Example Wire,wire,business|energy,vip,us-west
"""


@pytest.fixture
def imported(rt: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(ROWS, encoding="utf-8")
    result = contacts.import_csv(rt.sessions, path, list_slug="press", now=FIXED_NOW)
    assert result.rejected == []


def emails(rt: Runtime, sort: str = "name", **filters: str) -> list[str]:
    with transaction(rt.sessions) as s:
        return [r.email for r in contact_page(s, ContactFilters(**filters), sort=sort).rows]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("clem", ["clemence@lequotidien.example.com"]),  # accent folded
        ("ZOE", ["zoe@wire.example.net"]),
        ("ledg", ["dana@harborledger.example.com"]),  # outlet word
        ("dana@harb", ["dana@harborledger.example.com"]),  # the address whole
        ("harborledger", ["dana@harborledger.example.com"]),  # a domain label
        ("foreign", ["clemence@lequotidien.example.com", "liam@example.org"]),  # beat part
        ("foreign-policy aub", ["clemence@lequotidien.example.com"]),
        ("vip business", ["zoe@wire.example.net"]),  # tag and beat together
        ("o'brien", ["liam@example.org"]),
        ("nobody", []),
    ],
)
def test_words_match_by_prefix_across_fields(rt: Runtime, imported: None, query: str, expected: list[str]) -> None:
    """Each search word matches the beginning of a word of the name, address, outlet, beats or tags; all words must match."""
    assert emails(rt, query=query) == expected


def test_filters_and_sorts(rt: Runtime, imported: None) -> None:
    """Region, outlet type, beat, tag and list filters narrow; sort by name, email, outlet."""
    assert emails(rt, region="eu-west") == ["clemence@lequotidien.example.com", "liam@example.org"]
    assert emails(rt, outlet_type="wire") == ["zoe@wire.example.net"]
    assert emails(rt, beat="business", tag="vip") == ["zoe@wire.example.net"]
    assert emails(rt, list_slug="press") == emails(rt)
    assert emails(rt, list_slug="nope") == []
    assert emails(rt) == [  # by last name
        "zoe@wire.example.net",
        "clemence@lequotidien.example.com",
        "liam@example.org",
        "dana@harborledger.example.com",
    ]
    assert emails(rt, sort="outlet")[0] == "zoe@wire.example.net"  # "Example Wire"
    assert emails(rt, sort="email")[0] == "clemence@lequotidien.example.com"


@pytest.mark.parametrize("cap", [1, 5000])
def test_keyset_pages_cover_everything_once_whatever_drives(
    rt: Runtime, imported: None, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of one row, by each sort, walk every match once, driven by the sort index or by the rarest condition."""
    monkeypatch.setattr(contact_search, "DRIVE_CAP", cap)
    for sort in contact_search.SORTS:
        for filters in (ContactFilters(), ContactFilters(query="e"), ContactFilters(region="eu-west")):
            seen: list[str] = []
            cursor = None
            with transaction(rt.sessions) as s:
                while True:
                    page = contact_page(s, filters, sort=sort, cursor=cursor, limit=1)
                    seen.extend(r.email for r in page.rows)
                    if page.next_cursor is None:
                        break
                    cursor = page.next_cursor
                whole = [r.email for r in contact_page(s, filters, sort=sort, limit=50).rows]
            assert seen == whole and len(set(seen)) == len(seen)


def test_edit_and_erasure_keep_the_index(rt: Runtime, imported: None) -> None:
    """An edited outlet is found by its new words at once; an erased contact is found by nothing."""
    with transaction(rt.sessions) as s:
        contact_edit.edit_contact(
            s, "dana@harborledger.example.com", {"outlet": "Bay Courier"}, actor="pat", now=FIXED_NOW
        )
    assert emails(rt, query="courier") == ["dana@harborledger.example.com"]
    assert emails(rt, query="ledger") == []
    with transaction(rt.sessions) as s:
        erasure.erase_contact(s, "dana@harborledger.example.com", actor="pat", now=FIXED_NOW)
    assert emails(rt, query="dana") == [] and "dana@harborledger.example.com" not in emails(rt)
