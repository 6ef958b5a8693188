"""Import hygiene (issue 12, items 10, 13, 18, 9 and 14): encodings decided per file with
bad lines rejected alone, control characters refused per line on both databases, an
export that re-imports unchanged, mailbox variants flagged, and one-line CLI errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from mailer import store
from mailer.audience import contacts
from mailer.cli import app
from mailer.domain.errors import InputError
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Contact
from tests.support.constants import FIXED_NOW, REPO

HEADER = b"email,first_name,last_name,outlet,beats,desk\r\n"


def write(tmp_path: Path, data: bytes, name: str = "c.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def run_import(rt: Runtime, path: Path, **options: Any) -> contacts.ImportResult:
    return contacts.import_csv(rt.sessions, path, list_slug="press", now=FIXED_NOW, **options)


def names(rt: Runtime) -> dict[str, tuple[str | None, str | None, str | None]]:
    with transaction(rt.sessions) as s:
        return {c.email or "": (c.first_name, c.last_name, c.outlet) for c in s.scalars(select(Contact))}


def contact(rt: Runtime, email: str) -> dict[str, Any]:
    with transaction(rt.sessions) as s:
        c = store.get_contact(s, email)
        beats, tags, _ = store.contact_labels(s, c.id)
        return {
            "first_name": c.first_name,
            "outlet": c.outlet,
            "beats": beats,
            "tags": tags,
            "attributes": dict(c.attributes),
        }


def point_cli_at(rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process CLI reads its settings from MAILER_* variables: point them at the test database."""
    monkeypatch.delenv("MAILER_CONFIG", raising=False)
    monkeypatch.setenv("MAILER_DATABASE__URL", rt.settings.database.url)
    monkeypatch.chdir(tmp_path)


def no_replacement_characters(rt: Runtime) -> bool:
    return all("\ufffd" not in (v or "") for row in names(rt).values() for v in row)


# --- item 10: encodings ------------------------------------------------------------------


def test_stray_byte_in_a_utf8_file_rejects_only_its_line(rt: Runtime, tmp_path: Path) -> None:
    """A UTF-8 file with one cp1252 byte keeps UTF-8: that line is rejected (line, byte), Clémence is stored intact."""
    data = (
        HEADER
        + "clemence@example.com,Clémence,Faure,Le Matin,,\r\n".encode()
        + b"rene@example.com,Ren\xe9,Blanc,Ouest,,\r\n"
        + "zoe@example.org,Zoë,Krüger,Rheinblick,,\r\n".encode()
    )
    result = run_import(rt, write(tmp_path, data))
    assert result.accepted == 2 and result.encoding == "UTF-8"
    assert [r.line for r in result.rejected] == [3]
    assert "0xE9" in result.rejected[0].reason and "UTF-8" in result.rejected[0].reason
    stored = names(rt)
    assert stored["clemence@example.com"][0] == "Clémence"
    assert "rene@example.com" not in stored
    assert all("Ã" not in (v or "") for row in stored.values() for v in row)


def test_a_windows_1252_file_is_read_as_such_and_its_undefined_bytes_are_rejected(rt: Runtime, tmp_path: Path) -> None:
    """A cp1252 file imports with accents; byte 0x81 (no character in cp1252) rejects its line instead of becoming U+FFFD."""
    data = (
        HEADER
        + "jose@example.com,José,Peña,Radio Sol,,\r\n".encode("cp1252")
        + b"odd@example.com,Odd\x81,Byte,Wire,,\r\n"
        + "anna@example.com,Anna,Müller,Tagesblatt,,\r\n".encode("cp1252")
    )
    result = run_import(rt, write(tmp_path, data))
    assert result.accepted == 2 and result.encoding == "Windows-1252"
    assert [(r.line, "0x81" in r.reason) for r in result.rejected] == [(3, True)]
    assert names(rt)["jose@example.com"][:2] == ("José", "Peña")
    assert no_replacement_characters(rt)


def test_a_utf8_line_in_a_mostly_windows_1252_file_is_rejected_not_garbled(rt: Runtime, tmp_path: Path) -> None:
    """Most lines cp1252, one line UTF-8: that line is rejected rather than stored as 'ClÃ©mence'."""
    data = (
        HEADER
        + "jose@example.com,José,Peña,Radio Sol,,\r\n".encode("cp1252")
        + "anna@example.com,Anna,Müller,Tagesblatt,,\r\n".encode("cp1252")
        + "clemence@example.com,Clémence,Faure,Le Matin,,\r\n".encode()
    )
    result = run_import(rt, write(tmp_path, data))
    assert result.accepted == 2
    assert [r.line for r in result.rejected] == [4] and "UTF-8" in result.rejected[0].reason
    assert "clemence@example.com" not in names(rt)


def test_encoding_option_forces_the_codec(rt: Runtime, tmp_path: Path) -> None:
    """--encoding latin-1 reads bytes the detector would not pick; an unknown name is one clear InputError."""
    data = HEADER + "jose@example.com,José,Peña,Radio Sol,,\r\n".encode("latin-1")
    result = run_import(rt, write(tmp_path, data), encoding="latin-1")
    assert (result.accepted, result.rejected, result.encoding) == (1, [], "iso8859-1")
    assert names(rt)["jose@example.com"][0] == "José"
    with pytest.raises(InputError, match="--encoding 'klingon': unknown encoding"):
        run_import(rt, write(tmp_path, data), encoding="klingon")


def test_cli_encoding_option(rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`contacts import --encoding utf-8` on a cp1252 file rejects its non-UTF-8 lines instead of guessing."""
    point_cli_at(rt, tmp_path, monkeypatch)
    data = HEADER + "jose@example.com,José,Peña,Radio Sol,,\r\n".encode("cp1252") + b"ann@example.com,Ann,Lee,,,\r\n"
    path = write(tmp_path, data)
    result = CliRunner().invoke(
        app, ["contacts", "import", str(path), "--list", "press", "--encoding", "utf-8", "--json"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["accepted"] == 1 and [r["line"] for r in shown["rejected"]] == [2]


# --- items 10 and 18: control characters per line, on both databases ----------------------


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (b"nul@example.com,Nul\x00Name,X,,,\r\n", "first_name"),
        (b"nulattr@example.com,Nul,X,,,desk\x00b\r\n", "desk"),
        ("nel@example.com,Ann,Lee\u0085Bcc,,,\r\n".encode(), "last_name"),
        ("ls@example.com,Ann,Lee,Harbor\u2028Ledger,,\r\n".encode(), "outlet"),
        ("ps@example.com,Ann\u2029,Lee,,,\r\n".encode(), "first_name"),
        ("bidi@example.com,\u202eAnn,Lee,,,\r\n".encode(), "first_name"),
        (b'crlf@example.com,Ann,Lee,,,"night\r\nBcc: x@example.org"\r\n', "desk"),
        (b"vt@example.com,Ann,Lee,,poli\x0btics,\r\n", "beats"),
    ],
)
def test_control_characters_are_refused_per_line(rt: Runtime, tmp_path: Path, row: bytes, column: str) -> None:
    """NUL, NEL, U+2028/2029, bidi overrides, CR/LF: the line is rejected naming the column; the rows around it land."""
    data = HEADER + b"before@example.com,Bea,Fore,,,\r\n" + row + b"after@example.com,Af,Ter,,,\r\n"
    result = run_import(rt, write(tmp_path, data))
    assert result.accepted == 2, result.rejected
    assert [r.line for r in result.rejected] == [3]
    reason = result.rejected[0].reason
    assert reason.startswith(f"{column}: U+") and "not allowed" in reason
    assert set(names(rt)) == {"before@example.com", "after@example.com"}


def test_many_nul_lines_do_not_abort_the_import(rt: Runtime, tmp_path: Path) -> None:
    """Over a whole batch, every other line with a NUL in a free attribute: each is rejected with its line, the others are stored (PostgreSQL used to abort)."""
    lines = [f"p{i}@example.com,N{i},L,,,d{chr(0) if i % 2 else ''}x\r\n".encode() for i in range(contacts.BATCH + 10)]
    result = run_import(rt, write(tmp_path, HEADER + b"".join(lines)))
    assert result.accepted == (contacts.BATCH + 10) // 2
    assert [r.line for r in result.rejected] == [i + 2 for i in range(contacts.BATCH + 10) if i % 2]


# --- item 13: the export round-trips --------------------------------------------------------


def export(rt: Runtime) -> str:
    buffer = io.StringIO()
    contacts.export_csv(rt.sessions, buffer)
    return buffer.getvalue()


def test_export_reimports_unchanged(rt: Runtime, tmp_path: Path) -> None:
    """Formula-marked cells lose their mark on re-import: '+sum@example.com' stays itself, nothing new, nothing changed."""
    data = (
        b"email,first_name,last_name,outlet,beats,tags,desk,phone,=calc\r\n"
        b"+sum@example.com,=Eve,-Dash,@handle,politics|business,vip,=night,+44 20 7946 0000,1\r\n"
        b"plain@example.com,Ann,Lee,Harbor Ledger,,,,,\r\n"
    )
    assert run_import(rt, write(tmp_path, data)).accepted == 2
    before = {e: contact(rt, e) for e in ("+sum@example.com", "plain@example.com")}
    exported = export(rt)
    header = next(csv.reader(io.StringIO(exported)))
    assert header[-3:] == ["'=calc", "desk", "phone"] and "attributes" not in header
    row = next(r for r in csv.DictReader(io.StringIO(exported)) if r["first_name"] == "'=Eve")
    assert row["email"] == "'+sum@example.com" and row["phone"] == "'+44 20 7946 0000"

    again = run_import(rt, write(tmp_path, exported.encode(), "export.csv"))
    assert (again.accepted, again.updated, again.rejected) == (0, 2, [])
    after = {e: contact(rt, e) for e in before}
    assert after == before
    assert after["+sum@example.com"]["first_name"] == "=Eve"
    assert after["+sum@example.com"]["attributes"] == {"=calc": "1", "desk": "=night", "phone": "+44 20 7946 0000"}


def test_an_apostrophe_that_is_not_our_mark_stays(rt: Runtime, tmp_path: Path) -> None:
    """A name like "'Tis Media" or "O'Brien" keeps its apostrophe: only ' before = + - @ is removed."""
    data = HEADER + b"ob@example.com,Liam,O'Brien,'Tis Media,,'quoted\r\n"
    run_import(rt, write(tmp_path, data))
    got = contact(rt, "ob@example.com")
    assert got["outlet"] == "'Tis Media" and got["attributes"] == {"desk": "'quoted"}


def test_empty_cells_keep_stored_values_unless_blank_clears(rt: Runtime, tmp_path: Path) -> None:
    """Re-importing with empty cells keeps outlet, beats and attributes; --blank-clears empties them."""
    run_import(rt, write(tmp_path, HEADER + b"ann@example.com,Ann,Lee,Harbor Ledger,politics,metro\r\n"))
    sparse = write(tmp_path, HEADER + b"ann@example.com,Anna,,,,\r\n", "sparse.csv")
    assert run_import(rt, sparse).updated == 1
    kept = contact(rt, "ann@example.com")
    assert kept == {
        "first_name": "Anna",
        "outlet": "Harbor Ledger",
        "beats": ["politics"],
        "tags": [],
        "attributes": {"desk": "metro"},
    }
    run_import(rt, sparse, blank_clears=True)
    assert contact(rt, "ann@example.com") == {
        "first_name": "Anna",
        "outlet": None,
        "beats": [],
        "tags": [],
        "attributes": {},
    }


def test_an_older_export_with_one_attributes_column_adds_no_junk_field(rt: Runtime, tmp_path: Path) -> None:
    """The JSON 'attributes' column of older exports becomes the attributes themselves, not an 'attributes' attribute."""
    data = b'email,first_name,attributes\r\nann@example.com,Ann,"{""desk"": ""metro"", ""phone"": ""+1 555""}"\r\n'
    assert run_import(rt, write(tmp_path, data)).accepted == 1
    assert contact(rt, "ann@example.com")["attributes"] == {"desk": "metro", "phone": "+1 555"}


# --- item 9: mailbox variants are flagged, not merged ------------------------------------------


def test_gmail_dot_and_plus_tag_variants_are_flagged_not_merged(rt: Runtime, tmp_path: Path) -> None:
    """j.doe@gmail.com, jdoe+press@ and googlemail forms are imported separately, each with a warning on its line."""
    data = (
        HEADER
        + b"jdoe@gmail.com,J,Doe,,,\r\n"
        + b"j.doe@gmail.com,J,Doe,,,\r\n"
        + b"jdoe+press@gmail.com,J,Doe,,,\r\n"
        + b"ann@example.com,Ann,Lee,,,\r\n"
        + b"ann+news@example.com,Ann,Lee,,,\r\n"
        + b"john.smith@gmail.com,John,Smith,,,\r\n"
    )
    result = run_import(rt, write(tmp_path, data))
    assert result.accepted == 6 and result.rejected == []
    assert [w.line for w in result.warnings] == [3, 4, 6]
    assert "j.doe@gmail.com" in result.warnings[0].reason and "jdoe@gmail.com" in result.warnings[0].reason
    assert "separate contact" in result.warnings[0].reason

    later = run_import(rt, write(tmp_path, HEADER + b"jd.oe@googlemail.com,J,Doe,,,\r\n", "later.csv"))
    assert later.accepted == 1
    assert [w.line for w in later.warnings] == [2] and "already stored" in later.warnings[0].reason
    assert len(names(rt)) == 7


def test_cli_json_lists_the_warnings(rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`contacts import --json` carries the warnings with their line numbers."""
    point_cli_at(rt, tmp_path, monkeypatch)
    path = write(tmp_path, HEADER + b"ann@example.com,Ann,,,,\r\nann+x@example.com,Ann,,,,\r\n")
    result = CliRunner().invoke(app, ["contacts", "import", str(path), "--list", "press", "--json"])
    assert result.exit_code == 0, result.output
    assert [w["line"] for w in json.loads(result.stdout)["warnings"]] == [3]


# --- item 14: one line, no traceback -----------------------------------------------------------


def test_export_to_a_missing_folder_is_one_line(rt: Runtime, tmp_path: Path) -> None:
    """`contacts export -o /nonexistent-dir/x.csv` fails with one line naming the path, no traceback."""
    env = {**os.environ, "MAILER_DATABASE__URL": rt.settings.database.url, "PYTHONPATH": str(REPO)}
    env.pop("MAILER_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "mailer", "contacts", "export", "-o", "/nonexistent-dir/x.csv"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "/nonexistent-dir/x.csv" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    with transaction(rt.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 0
