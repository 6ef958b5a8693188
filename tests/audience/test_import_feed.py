"""Parsing an import in a second process (mailer.audience.importfeed): the same result as
in one process, and a parser that fails or dies, or a Ctrl-C, leaves nothing imported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from mailer.audience import contacts, importfeed
from mailer.audience.csvinput import Encoding
from mailer.audience.importfeed import Batch, FeedOptions, ParserFailed
from mailer.domain.errors import InputError
from mailer.runtime import Runtime
from mailer.store import contact_search
from mailer.store.db import transaction
from mailer.store.tables import Contact, ContactTerm, MailingList
from tests.support.constants import FIXED_NOW

HEADER = "email,first_name,last_name,outlet,outlet_type,beats,region,country,language,timezone,tags,desk\n"


def _lines(count: int, prefix: str = "p") -> list[str]:
    """``count`` rows; every 500th a bad address, every 700th a duplicate of the row 1,200
    before (another batch, upper case), every 900th a ``+tag`` variant of the row before."""
    out: list[str] = []
    for i in range(count):
        email = f"{prefix}{i}@feed{i % 7}.example.com"
        if i % 500 == 499:
            email = f"broken{i}"
        elif i % 700 == 699 and i >= 1200:
            email = f"{prefix}{i - 1200}@feed{(i - 1200) % 7}.example.com".upper()
        elif i % 900 == 899:
            email = f"{prefix}{i - 1}+news@feed{(i - 1) % 7}.example.com"
        out.append(
            f"{email},Fïrst{i % 13},Läst {i % 101},Outlet {i % 50},print,politics|b{i % 9},eu,DE,de,,t{i % 3},d{i}\n"
        )
    return out


def _write(tmp_path: Path, lines: list[str], name: str = "c.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    return path


def _stored(rt: Runtime) -> tuple[list[tuple[object, ...]], list[tuple[str, str]]]:
    """Every contact's fields that the import sets (ids aside) and every search word by address."""
    with transaction(rt.sessions) as s:
        rows = s.execute(
            select(
                Contact.email,
                Contact.email_hash,
                Contact.first_name,
                Contact.last_name,
                Contact.outlet,
                Contact.attributes,
                Contact.sort_name,
                Contact.sort_outlet,
                Contact.import_line,
            ).order_by(Contact.email)
        ).all()
        terms = s.execute(
            select(ContactTerm.term, Contact.email).join(Contact, Contact.id == ContactTerm.contact_id)
        ).all()
    return [tuple(r) for r in rows], sorted((t, e or "") for t, e in terms)


def _nothing_imported(rt: Runtime, slug: str) -> bool:
    with transaction(rt.sessions) as s:
        contacts_left = s.scalar(select(func.count()).select_from(Contact))
        lists = s.scalar(select(func.count()).select_from(MailingList).where(MailingList.slug == slug))
    return contacts_left == 0 and lists == 0


def test_parsing_in_a_child_gives_what_one_process_gives(rt: Runtime, tmp_path: Path) -> None:
    """The same file parsed in a second process and in one: the same counts, rejects, warnings, rows and words."""
    path = _write(tmp_path, _lines(2 * contacts.BATCH + 300))
    child = contacts.import_csv(rt.sessions, path, list_slug="a", now=FIXED_NOW, parse_in_child=True)
    stored = _stored(rt)
    with transaction(rt.sessions) as s:
        s.execute(delete(Contact))
    alone = contacts.import_csv(rt.sessions, path, list_slug="b", now=FIXED_NOW, parse_in_child=False)
    assert child.as_json() == alone.as_json()
    assert child.accepted == 2 * contacts.BATCH + 300 - 5
    assert [r.line for r in child.rejected] == [501, 1001, 1401, 1501, 2001]  # 1401: duplicate of line 201
    assert [w.line for w in child.warnings] == [901, 1801]
    assert _stored(rt) == stored
    with transaction(rt.sessions) as s:
        words = sorted(s.execute(select(ContactTerm.term, ContactTerm.contact_id)).all())
        contact_search.reindex_all(s)
    with transaction(rt.sessions) as s:
        assert sorted(s.execute(select(ContactTerm.term, ContactTerm.contact_id)).all()) == words


def test_a_batch_survives_the_pipe_whole() -> None:
    """A batch pickled column-wise (short rows among full ones) comes back equal, words in (word, row) order."""
    import pickle

    from mailer.audience.contactfields import ParsedRow

    batch = Batch()
    batch.add(ParsedRow(2, "b@x.example", {"first_name": "Bé", "outlet": "The Wire"}, ["p"], None, {"d": "1"}))
    batch.add(ParsedRow(3, "a@x.example", {"first_name": "Al"}, None, ["t"], {}, frozenset({"d"})))
    batch.add(ParsedRow(4, "c@x.example", {"first_name": "Cy", "outlet": "Wire"}, [], [], {}))
    batch.rejected.append((5, "bad"))
    batch.seal(99)
    back = pickle.loads(pickle.dumps(batch))
    assert back == batch
    pairs = list(zip(back.terms, back.owners, strict=True))
    assert pairs == sorted(pairs)
    assert ("wire", 0) in pairs and ("wire", 2) in pairs


def _crash_after_one_batch(sender: Connection, path: Path, options: FeedOptions) -> None:
    """A child that delivers one batch, then reports a failure on line 1234."""
    sender.send(("batch", next(importfeed.parse_batches(path, options))))
    sender.send(("failed", (1234, "RuntimeError: boom")))
    sender.close()


def _die_after_one_batch(sender: Connection, path: Path, options: FeedOptions) -> None:
    """A child that delivers one batch and dies without a word (as if killed)."""
    sender.send(("batch", next(importfeed.parse_batches(path, options))))
    os._exit(3)


@pytest.mark.parametrize("child", [_crash_after_one_batch, _die_after_one_batch])
def test_a_failing_parser_names_the_line_and_nothing_is_imported(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, child: object
) -> None:
    """The child fails on a line or dies after one batch: the error names the line, no contact or list is kept."""
    monkeypatch.setattr(importfeed, "_child", child)
    path = _write(tmp_path, _lines(3 * contacts.BATCH))
    with pytest.raises(ParserFailed) as failed:
        contacts.import_csv(rt.sessions, path, list_slug="gone", now=FIXED_NOW, parse_in_child=True)
    delivered = next(importfeed.parse_batches(path, FeedOptions(Encoding("utf-8"), outlet_types=frozenset({"print"}))))
    expected = 1234 if child is _crash_after_one_batch else delivered.last_line + 1  # the line after what arrived
    assert failed.value.line == expected
    assert f"line {expected}" in str(failed.value)
    assert _nothing_imported(rt, "gone")


def test_an_unexpected_error_on_a_line_names_it(rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """parse_row failing unexpectedly (not a bad value) on line 1,500 stops the import there: that line, nothing kept."""
    from mailer.audience.contactfields import parse_row as real

    def parse_row(line: int, *args: object, **kwargs: object) -> object:
        if line == 1500:
            raise RuntimeError("boom")
        return real(line, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importfeed, "parse_row", parse_row)
    path = _write(tmp_path, _lines(2 * contacts.BATCH))
    with pytest.raises(ParserFailed, match=r"line 1500: .*RuntimeError: boom"):
        contacts.import_csv(rt.sessions, path, list_slug="gone", now=FIXED_NOW, parse_in_child=False)
    assert _nothing_imported(rt, "gone")


def test_an_unusable_file_is_refused_by_the_child_before_anything_is_written(rt: Runtime, tmp_path: Path) -> None:
    """No email column, parsed in a child: the usual one-line InputError, not even the list is created."""
    path = tmp_path / "c.csv"
    path.write_text("name,outlet\nAna,Wire\n", encoding="utf-8")
    with pytest.raises(InputError, match="no 'email' column"):
        contacts.import_csv(rt.sessions, path, list_slug="gone", now=FIXED_NOW, parse_in_child=True)
    assert _nothing_imported(rt, "gone")


def test_only_large_files_start_a_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Below CHILD_MIN_BYTES the file is parsed in this process, from it on in a child."""
    started: list[Path] = []

    def from_child(path: Path, options: FeedOptions) -> object:
        started.append(path)
        return iter([])

    monkeypatch.setattr(importfeed, "_from_child", from_child)
    path = _write(tmp_path, _lines(10))
    options = FeedOptions(Encoding("utf-8"), outlet_types=frozenset({"print"}))
    assert len(list(importfeed.batches(path, options))) == 1
    assert started == []
    monkeypatch.setattr(importfeed, "CHILD_MIN_BYTES", path.stat().st_size)
    assert list(importfeed.batches(path, options)) == []
    assert started == [path]


def _group_gone(group: int, *, within: float) -> bool:
    """Whether every process of ``group`` (the parser, multiprocessing's tracker) exits in time."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_ctrl_c_during_a_large_import_keeps_nothing(rt: Runtime, tmp_path: Path) -> None:
    """SIGINT to the process group (Ctrl-C) of `mailer contacts import` on a file parsed in a child: nothing kept, both exit."""
    rows = importfeed.CHILD_MIN_BYTES // 90 + 1000
    path = _write(tmp_path, _lines(rows))
    assert path.stat().st_size >= importfeed.CHILD_MIN_BYTES
    env = {"MAILER_DATABASE__URL": rt.settings.database.url, "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "mailer", "contacts", "import", str(path), "--list", "gone", "--json"]
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, start_new_session=True, stderr=subprocess.PIPE)
    time.sleep(4)  # the writer is some batches in (a few seconds for the whole file)
    assert proc.poll() is None, "the import finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert _group_gone(proc.pid, within=10), "a process of the import outlived it"
    assert _nothing_imported(rt, "gone"), err.decode()[-2000:]
