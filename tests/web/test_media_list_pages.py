"""The media-list pages (issue 15) through the test client: contacts search, the contact
page with edit and notes, lists, the segment editor's live preview, suppressions by hand
(domain forms, re-consent, CSV import) and the browser import with its column mapping."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from mailer.audience import contacts
from mailer.domain.states import Role
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Contact, ContactChange, ContactNote, ListMember, Segment, Suppression, SuppressionLog
from tests.support.constants import FIXED_NOW
from tests.support.engine import Variant, approved_release
from tests.support.web import csrf, sign_in

ROWS = """email,first_name,last_name,outlet,outlet_type,beats,tags,region
clemence@lequotidien.example.com,Clémence,Aubert,Le Quotidien,print,politics|foreign-policy,vip,eu-west
dana@harborledger.example.com,Dana,Reyes,Harbor Ledger,online,business,,us-east
liam@example.org,Liam,O'Brien,Tis Media,tv,foreign-policy,freelance,eu-west
"""
DANA = "dana@harborledger.example.com"


@pytest.fixture
def people(rt: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(ROWS, encoding="utf-8")
    assert contacts.import_csv(rt.sessions, path, list_slug="press", now=FIXED_NOW).rejected == []


def ctx(response: Any) -> dict[str, Any]:
    return response.context  # type: ignore[no-any-return]


def test_contacts_page_searches_and_htmx_gets_only_the_rows(app: FastAPI, people: None) -> None:
    """/contacts?q=ledg finds Dana; with HX-Request the answer is the results fragment alone."""
    client = sign_in(app, Role.VIEWER)
    page = client.get("/contacts", params={"q": "ledg"})
    assert page.status_code == 200 and page.template.name == "staff/contacts.html"  # type: ignore[attr-defined]
    assert [r.email for r in ctx(page)["page"].rows] == [DANA]
    fragment = client.get("/contacts", params={"q": "foreign", "sort": "email"}, headers={"HX-Request": "true"})
    assert fragment.template.name == "staff/_contact_rows.html"  # type: ignore[attr-defined]
    assert [r.email for r in ctx(fragment)["page"].rows] == ["clemence@lequotidien.example.com", "liam@example.org"]
    assert client.get("/contacts", params={"cursor": "!!"}).status_code == 200  # a bad cursor is the first page


def test_contact_page_edit_and_note(rt: Runtime, app: FastAPI, people: None) -> None:
    """A publicist edits Dana (logged with who), a bad time zone is 422 with the reason, a note is kept; a viewer may not."""
    client = sign_in(app, Role.PUBLICIST)
    page = client.get(f"/contacts/{DANA}")
    assert ctx(page)["contact"]["lists"] == ["press"] and ctx(page)["can_edit"]
    fields = (
        "first_name",
        "last_name",
        "outlet",
        "outlet_type",
        "beats",
        "tags",
        "region",
        "country",
        "language",
        "timezone",
    )
    form = {k: ctx(page)["contact"][k] for k in fields}  # what the browser's form sends
    saved = client.post(
        f"/contacts/{DANA}/edit",
        data={
            **form,
            "outlet": "Bay Courier",
            "beats": "business|energy",
            "attributes": "desk: metro",
            "csrftoken": csrf(client),
        },
    )
    assert saved.status_code == 303
    bad = client.post(f"/contacts/{DANA}/edit", data={**form, "timezone": "Mars/Olympus", "csrftoken": csrf(client)})
    assert bad.status_code == 422 and "Mars/Olympus" in ctx(bad)["error"]
    assert (
        client.post(
            f"/contacts/{DANA}/notes", data={"text": "Met at the summit", "csrftoken": csrf(client)}
        ).status_code
        == 303
    )
    with transaction(rt.sessions) as s:
        dana = s.scalars(select(Contact).where(Contact.email == DANA)).one()
        assert (dana.outlet, dana.attributes) == ("Bay Courier", {"desk": "metro"})
        assert {c.field for c in s.scalars(select(ContactChange))} == {"outlet", "beats", "attr.desk"}
        assert s.scalars(select(ContactNote.author)).one() == "publicist@staff.example.com"
    viewer = sign_in(app, Role.VIEWER)
    assert viewer.post(f"/contacts/{DANA}/notes", data={"text": "x", "csrftoken": csrf(viewer)}).status_code == 403


def test_lists_create_add_remove_rename_delete(rt: Runtime, app: FastAPI, people: None) -> None:
    """Create a list, add by address and from a search, remove one, rename, delete; a segment naming it guards the delete."""
    client = sign_in(app, Role.PUBLICIST)
    token = csrf(client)
    assert (
        client.post("/lists", data={"slug": "desk", "name": "Desk", "csrftoken": token}).headers["location"]
        == "/lists/desk"
    )
    client.post("/lists/desk/add", data={"emails": f"{DANA}\nnobody@example.com", "csrftoken": token})
    client.post(
        "/lists/add-from-search", data={"target": "desk", "all_matching": "1", "q": "foreign", "csrftoken": token}
    )
    assert ctx(client.get("/lists/desk"))["summary"].members == 3
    client.post("/lists/desk/remove", data={"emails": "liam@example.org", "csrftoken": token})
    client.post("/lists/desk/rename", data={"name": "Night desk", "csrftoken": token})
    page = client.get("/lists/desk")
    assert (ctx(page)["summary"].members, ctx(page)["summary"].name) == (2, "Night desk")
    with transaction(rt.sessions) as s:
        s.add(Segment(slug="desk-seg", rule="list:desk", created_at=FIXED_NOW, updated_at=FIXED_NOW))
    refused = client.post("/lists/desk/delete", data={"csrftoken": token}, follow_redirects=True)
    assert "desk-seg" in refused.text
    client.post("/lists/desk/delete", data={"force": "1", "csrftoken": token})
    assert client.get("/lists/desk").status_code == 404
    with transaction(rt.sessions) as s:
        assert len(s.scalars(select(ListMember)).all()) == 3  # the press list is untouched


def test_segment_preview_counts_points_at_errors_and_warns(app: FastAPI, people: None) -> None:
    """The live preview counts and samples a rule, points at the column of an error, warns of an unknown beat, suggests values."""
    client = sign_in(app, Role.PUBLICIST)
    ok = ctx(client.get("/segments/preview", params={"rule": "beat:foreign-policy AND region:eu-west"}))
    assert ok["count"] == 2 and len(ok["sample"]) == 2 and ok["warnings"] == []
    bad = ctx(client.get("/segments/preview", params={"rule": "beat:x AND (region:us"}))
    assert bad["count"] is None and "column" in bad["problem"] and bad["caret"].endswith("^")
    assert len(bad["caret"]) == len("beat:x AND (region:us") + 1
    warned = ctx(client.get("/segments/preview", params={"rule": "beat:foreign-polcy OR list:nope"}))
    assert warned["count"] == 0 and len(warned["warnings"]) == 2
    suggested = ctx(client.get("/segments/preview", params={"rule": "beat:fo"}))
    assert [label for label, _ in suggested["suggestions"]] == ["beat:foreign-policy"]
    assert "zine" in ctx(client.get("/segments/preview", params={"rule": "outlet_type:zine"}))["problem"]


def test_segment_save_and_guarded_delete(rt: Runtime, app: FastAPI, people: None) -> None:
    """Saving creates the segment; one used by a release cannot be deleted from the page; an unused one can."""
    client = sign_in(app, Role.PUBLICIST)
    token = csrf(client)
    saved = client.post("/segments", data={"slug": "eu", "rule": "region:eu-west", "csrftoken": token})
    assert saved.headers["location"] == "/segments/eu"
    assert ctx(client.get("/segments/eu"))["count"] == 2
    rid = approved_release(rt, [Variant("used", "list:press")])
    refused = client.post("/segments/used/delete", data={"csrftoken": token}, follow_redirects=True)
    assert f"#{rid}" in refused.text
    assert client.post("/segments/eu/delete", data={"csrftoken": token}).headers["location"] == "/segments"
    with transaction(rt.sessions) as s:
        assert set(s.scalars(select(Segment.slug))) == {"used"}


def test_admin_suppresses_a_domain_and_lifts_a_bounce_with_reconsent(rt: Runtime, app: FastAPI) -> None:
    """Admins add '@example.net' and refuse '*@example.de'; lifting a hard bounce needs the re-consent note; a publicist may not."""
    admin = sign_in(app, Role.ADMIN)
    token = csrf(admin)
    admin.post("/suppressions/add", data={"target": "@example.net", "reason": "manual", "csrftoken": token})
    refused = admin.post(
        "/suppressions/add", data={"target": "*@example.de", "csrftoken": token}, follow_redirects=True
    )
    assert "@example.de" in refused.text and "wildcards" in refused.text
    admin.post("/suppressions/add", data={"target": "ann@example.com", "reason": "hard_bounce", "csrftoken": token})
    with transaction(rt.sessions) as s:
        ids = {r.email: r.id for r in s.scalars(select(Suppression))}
    assert set(ids) == {"@example.net", "ann@example.com"}
    page = admin.get(f"/suppressions/{ids['ann@example.com']}/lift")
    assert ctx(page)["needs_reconsent"]
    admin.post(f"/suppressions/{ids['ann@example.com']}/lift", data={"reason": "asked", "csrftoken": token})
    admin.post(
        f"/suppressions/{ids['ann@example.com']}/lift",
        data={"reason": "asked", "reconsent": "signed up again on 2026-11-30", "csrftoken": token},
    )
    with transaction(rt.sessions) as s:
        assert set(s.scalars(select(Suppression.email))) == {"@example.net"}
        assert s.scalars(select(SuppressionLog.action).where(SuppressionLog.action.like("removed%"))).all() == [
            "removed (re-consent)"
        ]
    publicist = sign_in(app, Role.PUBLICIST)
    assert (
        publicist.post("/suppressions/add", data={"target": "@x.example", "csrftoken": csrf(publicist)}).status_code
        == 403
    )
    assert not ctx(publicist.get("/suppressions"))["can_suppress"]


def test_admin_imports_a_suppression_file(rt: Runtime, app: FastAPI) -> None:
    """A CSV upload suppresses its good lines and shows the rejected ones."""
    admin = sign_in(app, Role.ADMIN)
    body = b"email\r\nann@example.com\r\n*.example.org\r\n*@bad.example\r\n"
    posted = admin.post(
        "/suppressions/import",
        data={"reason": "manual"},
        files={"file": ("sup.csv", body, "text/csv")},
        headers=htmx(admin),
    )
    assert posted.headers["HX-Redirect"] == "/suppressions", posted.text
    flash = [text for _, text in ctx(admin.get("/suppressions"))["flash"]]
    assert flash[0] == "sup.csv: 2 suppressed, 0 already were, 1 rejected" and "line 4" in flash[1]
    with transaction(rt.sessions) as s:
        assert set(s.scalars(select(Suppression.email))) == {"ann@example.com", "*.example.org"}


def htmx(client: TestClient) -> dict[str, str]:
    """The headers htmx sends with an upload form: the CSRF token travels as x-csrftoken."""
    return {"HX-Request": "true", "x-csrftoken": csrf(client)}


def test_an_upload_without_the_token_header_is_refused(app: FastAPI) -> None:
    """A multipart post with no x-csrftoken header is refused before any route runs."""
    client = sign_in(app, Role.ADMIN)
    refused = client.post("/suppressions/import", files={"file": ("s.csv", b"a@example.com\n", "text/csv")})
    assert refused.status_code == 403


def wait_for(client: TestClient, url: str) -> Any:
    deadline = time.monotonic() + 30
    while True:
        page = client.get(url)
        if ctx(page)["job"].finished or time.monotonic() > deadline:
            return page
        time.sleep(0.05)


def test_browser_import_maps_columns_and_reports_rejects(rt: Runtime, app: FastAPI) -> None:
    """A cp1252 ';' export with odd headers: the mapping offers email/outlet/beats, one column is left out, rejects are shown and downloadable."""
    data = (
        "E-mail Address;First Name;Publication;Beat;Fax;Desk\r\n"
        "zoe@example.com;Zoë;Le Monde Example;politics;000;night\r\n"
        "not-an-address;Bad;X;y;1;z\r\n"
        "max@example.org;Max;Wire;business;2;day\r\n"
    ).encode("cp1252")
    client = sign_in(app, Role.PUBLICIST)
    posted = client.post(
        "/contacts/import",
        data={"list": "imported"},
        files={"file": ("export.csv", data, "text/csv")},
        headers=htmx(client),
    )
    mapping = client.get(posted.headers["HX-Redirect"])
    assert mapping.status_code == 200, mapping.text
    offered = {c["header"]: c["suggested"] for c in ctx(mapping)["columns"]}
    assert offered == {
        "E-mail Address": "email",
        "First Name": "first_name",
        "Publication": "outlet",
        "Beat": "beats",
        "Fax": "attr",
        "Desk": "attr",
    }
    token = ctx(mapping)["token"]
    started = client.post(f"/contacts/import/{token}/run", data={"csrftoken": csrf(client), "map_4": "skip"})
    assert started.status_code == 303
    page = wait_for(client, f"/contacts/import/{token}")
    result = ctx(page)["job"].result
    assert (result.accepted, [r.line for r in result.rejected]) == (2, [3])
    rejects = client.get(f"/contacts/import/{token}/rejects.csv")
    assert rejects.status_code == 200 and rejects.text.startswith("line,reason") and "\r\n3," in rejects.text
    with transaction(rt.sessions) as s:
        zoe = s.scalars(select(Contact).where(Contact.email == "zoe@example.com")).one()
        assert (zoe.first_name, zoe.outlet, zoe.attributes) == ("Zoë", "Le Monde Example", {"desk": "night"})


def test_mapping_needs_exactly_one_email_column(app: FastAPI) -> None:
    """Mapping no column (or two) to email is refused on the mapping step."""
    client = sign_in(app, Role.PUBLICIST)
    posted = client.post(
        "/contacts/import",
        data={"list": "x"},
        files={"file": ("e.csv", b"email,name\r\na@example.com,A\r\n", "text/csv")},
        headers=htmx(client),
    )
    mapping = client.get(posted.headers["HX-Redirect"])
    token = ctx(mapping)["token"]
    refused = client.post(f"/contacts/import/{token}/run", data={"csrftoken": csrf(client), "map_0": "skip"})
    assert refused.status_code == 422 and "email" in ctx(refused)["error"]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.PUBLICIST, Role.ADMIN], ids=lambda r: r.value)
def test_every_media_list_page_renders(app: FastAPI, people: None, role: Role) -> None:
    """Contacts, lists, a list, segments, the editor, a contact and the suppressions render for every role; import is 403 for a viewer."""
    client = sign_in(app, role)
    for url in (
        "/contacts",
        "/lists",
        "/lists/press",
        "/segments",
        "/segments/new?rule=beat:",
        f"/contacts/{DANA}",
        "/suppressions",
    ):
        assert client.get(url).status_code == 200, url
    assert client.get("/contacts/import").status_code == (403 if role is Role.VIEWER else 200)
    assert client.get("/lists/nope").status_code == 404
    assert client.get("/contacts/import/" + "0" * 32).status_code == 404
