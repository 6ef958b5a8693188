"""Contact CSV import and export against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer import store
from mailer.audience import contacts
from mailer.domain.errors import InputError
from mailer.domain.states import GLOBAL_SCOPE, email_hash
from mailer.runtime import Runtime
from mailer.store import contact_search
from mailer.store.contact_search import ContactFilters, contact_page
from mailer.store.db import transaction
from mailer.store.tables import Contact, ContactBeat, ContactTerm, Suppression
from tests.support.constants import FIXED_NOW, REPO

HEADER = "email,first_name,last_name,outlet,outlet_type,beats,region,country,language,timezone,tags,desk\n"
ROWS = [
    "ana.lima@harbor.example.com,Ana,Lima,Harbor Ledger,print,politics|business,us-east,US,pt,America/New_York,staff,metro\n",
    "zoë.krüger@rhein.example.org,Zoë,Krüger,Rheinblick,online,foreign-policy,eu,DE,de,Europe/Berlin,,\n",
    "omar@wire.example.net,Omar,Haddad,Northgate Wire,wire,national-security,mena,JO,ar,Asia/Amman,freelance,night\n",
]


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def import_file(rt: Runtime, path: Path, slug: str = "press") -> contacts.ImportResult:
    return contacts.import_csv(rt.sessions, path, list_slug=slug, now=FIXED_NOW)


def count_contacts(rt: Runtime) -> int:
    with transaction(rt.sessions) as s:
        return s.scalar(select(func.count()).select_from(Contact)) or 0


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252"])
def test_import_in_each_encoding(rt: Runtime, tmp_path: Path, encoding: str) -> None:
    """A file saved as UTF-8, UTF-8 with BOM, UTF-16 or Windows-1252 imports with names intact."""
    text = HEADER + ROWS[0] + "jose@radio.example.com,José,Peña,Radio Sol,radio,politics,latam,MX,es,,,\n"
    result = import_file(rt, write(tmp_path, "c.csv", text, encoding))
    assert (result.accepted, result.rejected) == (2, [])
    with transaction(rt.sessions) as s:
        jose = store.get_contact(s, "jose@radio.example.com")
        assert (jose.first_name, jose.last_name) == ("José", "Peña")


def test_semicolon_delimiter_from_excel(rt: Runtime, tmp_path: Path) -> None:
    """A ';'-delimited export (European Excel) is detected and read."""
    text = HEADER.replace(",", ";") + ROWS[0].replace(",", ";")
    result = import_file(rt, write(tmp_path, "c.csv", text, "cp1252"))
    assert result.accepted == 1
    with transaction(rt.sessions) as s:
        assert store.contact_labels(s, store.get_contact(s, "ana.lima@harbor.example.com").id)[0] == [
            "business",
            "politics",
        ]


def test_fields_beats_tags_and_free_attributes_are_stored(rt: Runtime, tmp_path: Path) -> None:
    """Known columns land in fields, several beats are split, unknown columns become attributes."""
    import_file(rt, write(tmp_path, "c.csv", HEADER + "".join(ROWS)))
    with transaction(rt.sessions) as s:
        omar = store.get_contact(s, "omar@wire.example.net")
        beats, tags, lists = store.contact_labels(s, omar.id)
        assert (omar.outlet_type, omar.region, omar.country, omar.timezone) == ("wire", "mena", "JO", "Asia/Amman")
        assert (beats, tags, lists) == (["national-security"], ["freelance"], ["press"])
        assert omar.attributes == {"desk": "night"}
        assert store.get_contact(s, "zoë.krüger@rhein.example.org").first_name == "Zoë"


def test_broken_rows_are_reported_and_good_rows_land(rt: Runtime) -> None:
    """The sample broken file: each bad row named with its line and reason; the good rows imported."""
    result = import_file(rt, REPO / "lists" / "broken-rows.csv", "broken")
    reasons = {r.line: r.reason for r in result.rejected}
    assert result.accepted >= 5
    assert any("email is empty" in r for r in reasons.values())
    assert any("@-sign" in r for r in reasons.values())
    assert any("outlet_type 'broadsheet'" in r for r in reasons.values())
    assert any("fields but the header has" in r for r in reasons.values())
    assert any("duplicate of line" in r for r in reasons.values())
    assert any("line breaks" in r for r in reasons.values())
    assert any("Mars/Olympus" in r for r in reasons.values())
    assert any("display name" in r for r in reasons.values())
    assert count_contacts(rt) == result.accepted


def test_duplicate_rows_in_one_file_keep_the_first(rt: Runtime, tmp_path: Path) -> None:
    """The same address twice (any case) in one file: one contact, the later row rejected as a duplicate."""
    text = HEADER + ROWS[0] + ROWS[0].replace("ana.lima", "Ana.Lima").replace("Ana,Lima", "Anna,Lima")
    result = import_file(rt, write(tmp_path, "c.csv", text))
    assert result.accepted == 1
    assert [(r.line, r.reason.split(" (")[0]) for r in result.rejected] == [(3, "duplicate of line 2")]
    with transaction(rt.sessions) as s:
        assert store.get_contact(s, "ana.lima@harbor.example.com").first_name == "Ana"


def test_duplicates_across_batches_are_found(rt: Runtime, tmp_path: Path) -> None:
    """A duplicate more than one write batch apart is still reported, not silently applied."""
    lines = [f"p{i}@bulk.example.com,P{i},X,,,,,,,,,\n" for i in range(contacts.BATCH + 10)]
    lines.append("p3@bulk.example.com,Late,X,,,,,,,,,\n")
    result = import_file(rt, write(tmp_path, "c.csv", HEADER + "".join(lines)))
    assert result.accepted == contacts.BATCH + 10
    assert [r.reason.split(" (")[0] for r in result.rejected] == ["duplicate of line 5"]


def test_reimport_updates_instead_of_duplicating(rt: Runtime, tmp_path: Path) -> None:
    """Importing a changed file again updates the existing contacts and adds no new rows."""
    import_file(rt, write(tmp_path, "a.csv", HEADER + "".join(ROWS)))
    changed = HEADER + ROWS[0].replace("Harbor Ledger", "Harbor Ledger Weekly").replace("metro", "")
    result = import_file(rt, write(tmp_path, "b.csv", changed), "second")
    assert (result.accepted, result.updated) == (0, 1)
    assert count_contacts(rt) == 3
    with transaction(rt.sessions) as s:
        ana = store.get_contact(s, "ana.lima@harbor.example.com")
        assert ana.outlet == "Harbor Ledger Weekly"
        assert ana.attributes == {"desk": "metro"}  # an empty cell does not erase an attribute
        assert store.contact_labels(s, ana.id)[2] == ["press", "second"]


def test_import_never_lifts_a_suppression(rt: Runtime, tmp_path: Path) -> None:
    """A suppressed address that is imported again stays suppressed."""
    import_file(rt, write(tmp_path, "a.csv", HEADER + ROWS[0]))
    with transaction(rt.sessions) as s:
        s.add(
            Suppression(
                email="ana.lima@harbor.example.com",
                email_hash=email_hash("ana.lima@harbor.example.com"),
                scope=GLOBAL_SCOPE,
                reason="unsubscribed",
                source="test",
                created_at=FIXED_NOW,
            )
        )
    import_file(rt, write(tmp_path, "b.csv", HEADER + ROWS[0]), "other")
    with transaction(rt.sessions) as s:
        assert store.suppressed_hashes(s, [email_hash("ana.lima@harbor.example.com")])
        assert s.scalar(select(func.count()).select_from(Suppression)) == 1


def test_file_without_email_column_is_refused_whole(rt: Runtime, tmp_path: Path) -> None:
    """No email column: one clear error, nothing written (not even the list)."""
    with pytest.raises(InputError, match="no 'email' column"):
        import_file(rt, write(tmp_path, "c.csv", "name,outlet\nAna,Harbor\n"))
    with transaction(rt.sessions) as s:
        assert store.list_summaries(s) == []


def test_control_characters_in_names_are_rejected(rt: Runtime, tmp_path: Path) -> None:
    """A name carrying a line break (header injection material) is rejected with the column named."""
    text = HEADER + 'eve@example.com,"Eve\r\nBcc: x@example.org",X,,,,,,,,,\n'
    result = import_file(rt, write(tmp_path, "c.csv", text))
    assert result.accepted == 0
    assert "first_name" in result.rejected[0].reason


def _import_peak_rss_kb(rt: Runtime, tmp_path: Path, rows: int) -> int:
    """Import a generated file of ``rows`` rows in a fresh process; return its peak RSS in KB."""
    path = tmp_path / f"big{rows}.csv"
    with path.open("w", encoding="utf-8") as fh:
        fh.write(HEADER)
        for i in range(rows):
            fh.write(
                f"p{rows}x{i}@big.example.com,First{i},Last{i},Outlet {i % 50},print,politics|business,,,,,,d{i}\n"
            )
    # SQLite's page cache is a fixed bound (bulk.IMPORT_CACHE_MIB, 256 MiB) that fills as
    # pages are touched: held at SQLite's default here, so that what grows is the import's own
    code = (
        "import atexit, resource, sys\n"
        "import mailer.store.bulk as bulk; bulk.IMPORT_CACHE_MIB = 2\n"
        "atexit.register(lambda: print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))\n"
        f"sys.argv = ['mailer', 'contacts', 'import', {str(path)!r}, '--list', 'big{rows}', '--json']\n"
        "from mailer.cli import main\nmain()\n"
    )
    env = {"MAILER_DATABASE__URL": rt.settings.database.url, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accepted"] == rows
    return int(proc.stderr.split("MAXRSS")[-1].split()[0])


@pytest.mark.slow
def test_large_file_imports_in_bounded_memory(rt: Runtime, tmp_path: Path) -> None:
    """Ten times the rows costs (almost) no more memory: 4,000 vs 40,000 rows, peak RSS measured."""
    small = _import_peak_rss_kb(rt, tmp_path, 4_000)
    large = _import_peak_rss_kb(rt, tmp_path, 40_000)
    assert large - small < 20_000, f"peak RSS grew from {small} KB to {large} KB"
    with transaction(rt.sessions) as s:
        assert s.scalar(select(func.count()).select_from(ContactBeat)) == 88_000


def test_export_neutralizes_formulas(rt: Runtime, tmp_path: Path) -> None:
    """Cells beginning with = + - @ or a tab are exported as text, not spreadsheet formulas."""
    text = HEADER + 'mal@example.com,=HYPERLINK("x"),+1,@SUM(A1),-2,,,,,,,\ttab\n'
    result = import_file(rt, write(tmp_path, "c.csv", text))
    assert result.rejected[0].reason.startswith("outlet_type")  # "-2" is not an outlet type
    text = HEADER + 'mal@example.com,=HYPERLINK("x"),+1,@SUM(A1),,,,,,,,\ttab\n'
    import_file(rt, write(tmp_path, "d.csv", text))
    buf = io.StringIO()
    assert contacts.export_csv(rt.sessions, buf) == 1
    row = next(r for r in csv.DictReader(io.StringIO(buf.getvalue())) if r["email"] == "mal@example.com")
    assert row["first_name"] == '\'=HYPERLINK("x")'
    assert row["last_name"] == "'+1"
    assert row["outlet"] == "'@SUM(A1)"


def test_cli_import_json_shape(rt: Runtime, tmp_path: Path) -> None:
    """`mailer contacts import --json` prints exactly accepted, updated and rejected with line and reason."""
    path = write(tmp_path, "c.csv", HEADER + ROWS[0] + "broken,,,,,,,,,,,\n")
    env = {"MAILER_DATABASE__URL": rt.settings.database.url, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "mailer", "contacts", "import", str(path), "--list", "press", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["accepted"] == 1 and data["updated"] == 0
    assert data["rejected"] == [{"line": 3, "reason": data["rejected"][0]["reason"]}]
    assert "@-sign" in data["rejected"][0]["reason"]


def _bulk_lines(count: int, *, outlet: str = "Harbor Ledger", beats: str = "politics") -> list[str]:
    return [f"b{i}@bulk.example.com,Bea{i},Stone,{outlet},print,{beats},,,,,,\n" for i in range(count)]


def _index_snapshot(rt: Runtime) -> tuple[list[tuple[str, int]], list[tuple[int, str, str]]]:
    with transaction(rt.sessions) as s:
        terms = sorted((t, c) for t, c in s.execute(select(ContactTerm.term, ContactTerm.contact_id)))
        keys = sorted((i, n, o) for i, n, o in s.execute(select(Contact.id, Contact.sort_name, Contact.sort_outlet)))
    return terms, keys


def test_rejects_inside_and_at_the_edges_of_a_batch_keep_their_line_numbers(rt: Runtime, tmp_path: Path) -> None:
    """Bad rows at a batch's first and last row and mid-batch are reported with their own line; the rest land."""
    lines = _bulk_lines(2 * contacts.BATCH + 10)
    bad = {0, contacts.BATCH - 1, contacts.BATCH, contacts.BATCH + 499, 2 * contacts.BATCH + 9}
    for i in bad:
        lines[i] = f"broken{i},X,Y,,,,,,,,,\n"
    result = import_file(rt, write(tmp_path, "c.csv", HEADER + "".join(lines)))
    assert sorted(r.line for r in result.rejected) == sorted(i + 2 for i in bad)  # line 1 is the header
    assert all("@-sign" in r.reason for r in result.rejected)
    assert result.accepted == count_contacts(rt) == len(lines) - len(bad)


def test_duplicates_within_and_across_batches_keep_the_first_row(rt: Runtime, tmp_path: Path) -> None:
    """A repeat in the same batch and one in a later batch are both rejected with the first row's line."""
    lines = _bulk_lines(contacts.BATCH + 20)
    lines[10] = lines[3].replace("Bea3", "Other")  # same batch
    lines[contacts.BATCH + 5] = lines[contacts.BATCH - 1].upper()  # next batch, other case
    result = import_file(rt, write(tmp_path, "c.csv", HEADER + "".join(lines)))
    assert [(r.line, r.reason.split(" (")[0]) for r in result.rejected] == [
        (12, "duplicate of line 5"),
        (contacts.BATCH + 7, f"duplicate of line {contacts.BATCH + 1}"),
    ]
    with transaction(rt.sessions) as s:
        assert store.get_contact(s, "b3@bulk.example.com").first_name == "Bea3"


def test_reimport_over_several_batches_updates_fields_labels_index_and_lists(rt: Runtime, tmp_path: Path) -> None:
    """Re-importing a changed file of 2+ batches updates every contact, its beats, search words and lists."""
    count = 2 * contacts.BATCH + 3
    import_file(rt, write(tmp_path, "a.csv", HEADER + "".join(_bulk_lines(count))))
    changed = HEADER + "".join(_bulk_lines(count, outlet="Tidewater Review", beats="energy|science"))
    result = import_file(rt, write(tmp_path, "b.csv", changed), "second")
    assert (result.accepted, result.updated, result.rejected) == (0, count, [])
    assert count_contacts(rt) == count
    with transaction(rt.sessions) as s:
        last = store.get_contact(s, f"b{count - 1}@bulk.example.com")
        assert (last.outlet, last.sort_outlet) == ("Tidewater Review", "tidewater review")
        assert store.contact_labels(s, last.id) == (["energy", "science"], [], ["press", "second"])
        found = select(func.count()).select_from(ContactTerm).where(ContactTerm.term == "tidewater")
        assert s.scalar(found) == count
        assert contact_page(s, ContactFilters(query="harbor"), sort="email").rows == []
    terms, keys = _index_snapshot(rt)
    with transaction(rt.sessions) as s:
        contact_search.reindex_all(s)
    assert _index_snapshot(rt) == (terms, keys)


def test_new_contacts_are_indexed_as_a_reindex_would(rt: Runtime, tmp_path: Path) -> None:
    """Search words and sort keys written with new contacts equal what reindexing them from the database gives."""
    text = HEADER + "".join(ROWS) + 'jo@example.org,"Jo ","d\'Arc",  Le  Monde ,,a b|c-d,,,,,X,\n'
    result = import_file(rt, write(tmp_path, "c.csv", text))
    assert result.accepted == 4
    before = _index_snapshot(rt)
    with transaction(rt.sessions) as s:
        contact_search.reindex_all(s)
    assert _index_snapshot(rt) == before


def test_short_rows_among_full_ones_in_one_batch_store_what_they_have(rt: Runtime, tmp_path: Path) -> None:
    """Rows with fewer cells than the header (before and after full rows) land with the missing columns empty."""
    text = HEADER + "short@example.com,Sam\n" + ROWS[0] + "shorter@example.org\n"
    result = import_file(rt, write(tmp_path, "c.csv", text))
    assert (result.accepted, result.rejected) == (3, [])
    with transaction(rt.sessions) as s:
        sam = store.get_contact(s, "short@example.com")
        assert (sam.first_name, sam.outlet, sam.attributes, sam.soft_bounce_score) == ("Sam", None, {}, 0)
        assert store.get_contact(s, "ana.lima@harbor.example.com").outlet == "Harbor Ledger"
        assert store.get_contact(s, "shorter@example.org").first_name is None
