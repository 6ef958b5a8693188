"""CLI parity for the media list (issue 15): segments delete (guarded), lists delete /
rename / remove, clients update, contacts edit (validated, logged) and contacts note."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mailer.audience import erasure
from mailer.cli.root import app as cli_app
from mailer.domain.errors import MailerError
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Client, Contact, ContactChange, ContactNote, ListMember, MailingList, Segment
from tests.support.constants import FIXED_NOW
from tests.support.engine import Variant, add_contacts, approved_release

ANN = "ann@example.com"


def cli(rt: Runtime, *args: str) -> tuple[int, str]:
    """``mailer ARGS`` in-process on the test database: (exit code, output or the error's line)."""
    env = {"MAILER_DATABASE__URL": rt.settings.database.url, "MAILER_USER": "pat"}
    result = CliRunner().invoke(cli_app, list(args), env=env)
    if isinstance(result.exception, MailerError):
        return result.exception.exit_code, str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def people(rt: Runtime, tmp_path: Path) -> None:
    add_contacts(rt, tmp_path, [ANN, "bob@example.org", "cat@example.net"])


def test_segment_delete_is_refused_while_a_release_uses_it(rt: Runtime, people: None) -> None:
    """A segment of a release cannot be deleted (exit 4, the release named); an unused one can."""
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    assert cli(rt, "segments", "create", "spare", "--rule", "beat:politics")[0] == 0
    code, line = cli(rt, "segments", "delete", "press-all")
    assert code == 4 and f"#{rid}" in line
    assert cli(rt, "segments", "delete", "spare")[0] == 0
    with transaction(rt.sessions) as s:
        assert set(s.scalars(select(Segment.slug))) == {"press-all"}
    assert cli(rt, "segments", "delete", "spare")[0] == 3


def test_list_delete_guards_segments_and_keeps_contacts(rt: Runtime, people: None) -> None:
    """A list named by a segment needs --force; deleting drops memberships, not contacts."""
    cli(rt, "segments", "create", "press-seg", "--rule", "list:press OR beat:x")
    code, line = cli(rt, "lists", "delete", "press")
    assert code == 4 and "press-seg" in line
    code, output = cli(rt, "lists", "delete", "press", "--force", "--json")
    assert code == 0 and json.loads(output)["members"] == 3
    with transaction(rt.sessions) as s:
        assert s.scalars(select(MailingList)).all() == [] and s.scalars(select(ListMember)).all() == []
        assert len(s.scalars(select(Contact)).all()) == 3


def test_lists_remove_and_rename(rt: Runtime, people: None) -> None:
    """`lists remove press ANN nobody@...` removes ANN and reports the non-member; rename changes the name only."""
    code, output = cli(rt, "lists", "remove", "press", "ANN@example.com", "nobody@example.com", "--json")
    assert code == 0
    assert json.loads(output) == {"slug": "press", "removed": [ANN], "not_members": ["nobody@example.com"]}
    assert cli(rt, "lists", "remove", "press", "not-an-address")[0] == 2
    assert cli(rt, "lists", "rename", "press", "National press")[0] == 0
    code, output = cli(rt, "lists", "show", "press", "--json")
    assert json.loads(output)["name"] == "National press" and json.loads(output)["members"] == 2


def test_clients_update_validates_and_keeps_the_slug(rt: Runtime) -> None:
    """`clients update` changes from-name and clears reply-to; a bad address is refused and nothing changes."""
    assert (
        cli(
            rt,
            "clients",
            "create",
            "acme",
            "--name",
            "Acme",
            "--from-name",
            "Acme Press",
            "--from-address",
            "press@acme.example.com",
            "--reply-to",
            "media@acme.example.com",
            "--postal-address",
            "1 Road",
        )[0]
        == 0
    )
    code, output = cli(rt, "clients", "update", "acme", "--from-name", "Acme Media Office", "--reply-to", "", "--json")
    assert code == 0, output
    data = json.loads(output)
    assert (data["from_name"], data["reply_to"], data["slug"]) == ("Acme Media Office", None, "acme")
    assert cli(rt, "clients", "update", "acme", "--from-address", "not an address")[0] == 2
    with transaction(rt.sessions) as s:
        assert s.scalar(select(Client.from_address)) == "press@acme.example.com"
    assert cli(rt, "clients", "update", "nobody", "--name", "X")[0] == 3


def test_contacts_edit_validates_like_import_and_logs_each_change(rt: Runtime, people: None) -> None:
    """An edit of outlet, type, beats and an attribute is logged field by field with who and when; a bad type writes nothing."""
    code, output = cli(
        rt,
        "contacts",
        "edit",
        ANN,
        "--outlet",
        "Harbor Ledger",
        "--outlet-type",
        "Magazine",
        "--beats",
        "Foreign Policy|defence",
        "--attr",
        "desk=night",
        "--as",
        "sam@staff.example.com",
        "--json",
    )
    assert code == 0, output
    fields = {c["field"]: (c["old"], c["new"]) for c in json.loads(output)["changes"]}
    assert fields == {
        "outlet": (None, "Harbor Ledger"),
        "outlet_type": (None, "magazine"),
        "beats": ("politics", "foreign-policy|defence"),
        "attr.desk": (None, "night"),
    }
    code, line = cli(rt, "contacts", "edit", ANN, "--outlet", "Other", "--outlet-type", "zine")
    assert code == 2 and "outlet_type 'zine'" in line
    assert cli(rt, "contacts", "edit", ANN, "--timezone", "Mars/Olympus")[0] == 2
    assert cli(rt, "contacts", "edit", ANN, "--first-name", "A\u202eB")[0] == 2
    with transaction(rt.sessions) as s:
        ann = s.scalars(select(Contact).where(Contact.email == ANN)).one()
        assert (ann.outlet, ann.outlet_type, ann.attributes["desk"]) == ("Harbor Ledger", "magazine", "night")
        log = s.execute(select(ContactChange.actor, ContactChange.at)).all()
    assert len(log) == 4 and {r.actor for r in log} == {"sam@staff.example.com"} and log[0].at is not None
    code, output = cli(rt, "contacts", "edit", ANN, "--attr", "desk=", "--outlet", "", "--json")
    assert {c["field"] for c in json.loads(output)["changes"]} == {"outlet", "attr.desk"}


def test_contacts_note_is_kept_with_author_and_erased_with_the_contact(rt: Runtime, people: None) -> None:
    """`contacts note` stores text, author and time; an empty note is refused; erasure removes notes and the edit log."""
    assert cli(rt, "contacts", "note", ANN, "Prefers phone calls before 10am", "--as", "sam")[0] == 0
    assert cli(rt, "contacts", "note", ANN, "   ")[0] == 2
    assert cli(rt, "contacts", "note", "nobody@example.com", "hi")[0] == 3
    cli(rt, "contacts", "edit", ANN, "--last-name", "Lee")
    with transaction(rt.sessions) as s:
        note = s.scalars(select(ContactNote)).one()
        assert (note.author, note.body) == ("sam", "Prefers phone calls before 10am") and note.at is not None
    with transaction(rt.sessions) as s:
        erasure.erase_contact(s, ANN, actor="pat", now=FIXED_NOW)
    with transaction(rt.sessions) as s:
        assert s.scalars(select(ContactNote)).all() == [] and s.scalars(select(ContactChange)).all() == []


def test_segments_create_warns_of_values_no_contact_has(rt: Runtime, people: None) -> None:
    """`segments create` with beat:politcs (a typo) saves and warns, pointing at the value's column."""
    code, output = cli(rt, "segments", "create", "typo", "--rule", "list:press AND beat:politcs", "--json")
    assert code == 0
    assert json.loads(output)["warnings"] == ["no contact has beat 'politcs' (column 21)"]


def test_contacts_edit_marks_a_contact_not_embargo_ok(rt: Runtime, people: None) -> None:
    """`contacts edit --embargo-ok false` (after a broken embargo) is stored and logged; a bad value writes nothing."""
    code, output = cli(rt, "contacts", "edit", ANN, "--embargo-ok", "false", "--as", "sam@staff.example.com", "--json")
    assert code == 0, output
    assert {c["field"]: c["new"] for c in json.loads(output)["changes"]} == {"embargo_ok": "False"}
    with transaction(rt.sessions) as session:
        assert session.scalars(select(Contact.embargo_ok).where(Contact.email == ANN)).one() is False
    assert cli(rt, "contacts", "edit", ANN, "--embargo-ok", "maybe")[0] == 2
