"""A large import into an empty contacts table on SQLite (mailer.store.bulk.first_load):
the same rows and words as a plain import, the sort and facet indexes back as they were, and a failure
that leaves every index and nothing imported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from mailer.audience import contacts, importfeed
from mailer.audience.importfeed import ParserFailed
from mailer.runtime import Runtime
from mailer.store.db import transaction
from tests.audience.test_import_feed import (
    _crash_after_one_batch,
    _lines,
    _nothing_imported,
    _stored,
    _write,
)
from tests.support.constants import FIXED_NOW


def _indexes(rt: Runtime) -> list[tuple[str, str]]:
    """Every index of the database with its definition (and on SQLite, no leftover temp table)."""
    with transaction(rt.sessions) as s:
        if rt.engine.dialect.name != "sqlite":
            found = s.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"))
            return sorted((str(n), str(q)) for n, q in found)
        found = s.execute(text("SELECT name, coalesce(sql, '') FROM sqlite_schema WHERE type = 'index' ORDER BY name"))
        assert s.execute(text("SELECT name FROM sqlite_temp_schema")).all() == []
        return [(str(n), str(q)) for n, q in found]


def _statements(rt: Runtime) -> tuple[list[str], Any]:
    seen: list[str] = []

    def grab(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(rt.engine, "before_cursor_execute", grab)
    return seen, grab


def _import(rt: Runtime, path: Path, slug: str) -> contacts.ImportResult:
    return contacts.import_csv(rt.sessions, path, list_slug=slug, now=FIXED_NOW, parse_in_child=False)


def test_a_first_load_stores_what_a_plain_import_stores(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same file into an empty table with indexes deferred (SQLite) and without: same counts, rows, words; every index back."""
    before = _indexes(rt)
    path = _write(tmp_path, _lines(2 * contacts.BATCH + 300))
    monkeypatch.setattr(contacts, "FIRST_LOAD_MIN_BYTES", 0)
    first = _import(rt, path, "a")
    stored = _stored(rt)
    assert _indexes(rt) == before
    assert len(before) > 12 and any(name == "ix_contacts_sort_name" for name, _ in before)
    with transaction(rt.sessions) as s:
        s.execute(text("DELETE FROM contacts"))
        s.execute(text("DELETE FROM lists"))
        if rt.engine.dialect.name == "sqlite":
            assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    monkeypatch.setattr(contacts, "FIRST_LOAD_MIN_BYTES", 1 << 40)
    plain = _import(rt, path, "a")
    assert first.as_json() == plain.as_json()
    assert first.accepted == 2 * contacts.BATCH + 300 - 5
    assert _stored(rt) == stored


def test_only_an_empty_contacts_table_gets_a_first_load(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first import drops and rebuilds the sort indexes (SQLite; never on PostgreSQL); a second one touches no index."""
    monkeypatch.setattr(contacts, "FIRST_LOAD_MIN_BYTES", 0)
    seen, grab = _statements(rt)
    try:
        _import(rt, _write(tmp_path, _lines(300)), "a")
        first = list(seen)
        seen.clear()
        _import(rt, _write(tmp_path, _lines(300, prefix="q"), name="d.csv"), "a")
    finally:
        event.remove(rt.engine, "before_cursor_execute", grab)
    sqlite = rt.engine.dialect.name == "sqlite"
    assert any(s.startswith('DROP INDEX "ix_contacts_sort_name"') for s in first) is sqlite
    assert any(s.startswith("CREATE INDEX ix_contacts_sort_name") for s in first) is sqlite
    assert not any("INDEX" in s for s in seen)
    with transaction(rt.sessions) as s:
        assert s.execute(text("SELECT count(*) FROM contacts")).scalar() == 600


def test_a_first_load_that_fails_keeps_every_index_and_nothing_imported(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parser fails after a batch of a first load: the error names the line, every index and no contact is left."""
    before = _indexes(rt)
    monkeypatch.setattr(contacts, "FIRST_LOAD_MIN_BYTES", 0)
    monkeypatch.setattr(importfeed, "_child", _crash_after_one_batch)
    path = _write(tmp_path, _lines(3 * contacts.BATCH))
    with pytest.raises(ParserFailed, match="line 1234"):
        contacts.import_csv(rt.sessions, path, list_slug="gone", now=FIXED_NOW, parse_in_child=True)
    assert _nothing_imported(rt, "gone")
    assert _indexes(rt) == before


def test_the_import_says_what_it_does_after_the_last_row(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """phase hears 'building the contact indexes' then 'saving' on a SQLite first load, only 'saving' on the next import."""
    monkeypatch.setattr(contacts, "FIRST_LOAD_MIN_BYTES", 0)
    heard: list[str] = []
    for name, prefix in (("c.csv", "p"), ("d.csv", "q")):
        path = _write(tmp_path, _lines(50, prefix=prefix), name=name)
        contacts.import_csv(rt.sessions, path, list_slug="a", now=FIXED_NOW, parse_in_child=False, phase=heard.append)
    first = [contacts.INDEXING, contacts.SAVING] if rt.engine.dialect.name == "sqlite" else [contacts.SAVING]
    assert heard == [*first, contacts.SAVING]
