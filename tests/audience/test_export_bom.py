"""Contact export for Excel (issue 15): one column per attribute, a UTF-8 BOM on request,
and a file that re-imports cleanly (no junk 'attributes' field, blanks keep values)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from mailer.audience import contacts
from mailer.cli.root import app as cli_app
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Contact
from tests.support.constants import FIXED_NOW

DATA = (
    "email,first_name,outlet,beats,desk,phone\r\n"
    "clemence@example.com,Clémence,Le Quotidien,politics,night,+33 1 00 00 00 00\r\n"
    "bo@example.org,Bo,,,,\r\n"
)


def test_bom_export_reimports_with_the_same_attributes(rt: Runtime, tmp_path: Path) -> None:
    """`contacts export --bom` starts with EF BB BF, has desk and phone as columns, and re-imports: 0 new, 2 updated, nothing changed."""
    source = tmp_path / "in.csv"
    source.write_text(DATA, encoding="utf-8")
    contacts.import_csv(rt.sessions, source, list_slug="press", now=FIXED_NOW)
    out = tmp_path / "out.csv"
    env = {"MAILER_DATABASE__URL": rt.settings.database.url}
    result = CliRunner().invoke(cli_app, ["contacts", "export", "--bom", "-o", str(out)], env=env)
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "Clémence".encode() in raw
    header = next(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert header[-2:] == ["desk", "phone"] and "attributes" not in header

    with transaction(rt.sessions) as s:
        before = {c.email: (c.first_name, c.outlet, dict(c.attributes)) for c in s.scalars(select(Contact))}
    again = contacts.import_csv(rt.sessions, out, list_slug="press", now=FIXED_NOW)
    assert (again.accepted, again.updated, again.rejected, again.encoding) == (0, 2, [], "UTF-8")
    with transaction(rt.sessions) as s:
        after = {c.email: (c.first_name, c.outlet, dict(c.attributes)) for c in s.scalars(select(Contact))}
    assert after == before
    assert after["clemence@example.com"][2] == {"desk": "night", "phone": "+33 1 00 00 00 00"}


def test_without_bom_the_file_starts_with_the_header(rt: Runtime) -> None:
    """The default export has no BOM (scripts reading the CSV see 'email' first)."""
    buffer = io.StringIO()
    contacts.export_csv(rt.sessions, buffer)
    assert buffer.getvalue().startswith("email,")
    bom = io.StringIO()
    contacts.export_csv(rt.sessions, bom, bom=True)
    assert bom.getvalue().startswith("\ufeffemail,")
