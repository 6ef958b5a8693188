"""Ingesting returned mail from files, directories, mboxes, Maildirs and IMAP."""

from __future__ import annotations

import mailbox
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mailer.bounces.ingest import ImapOptions, ImapPoller, SourceKind, detect_source, ingest_path
from mailer.domain.errors import InputError
from mailer.runtime import Runtime
from tests.support.bounces import CORPUS, delivery, dsn, events, inbox, processor, send_to, suppressions, verp

HUMAN_REPLY = (CORPUS / "written" / "human-reply.eml").read_bytes()


def _maildir(path: Path, messages: dict[str, bytes]) -> Path:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True)
    for name, raw in messages.items():
        (path / "new" / name).write_bytes(raw)
    return path


def test_maildir_bounce_without_token_is_recorded_for_review_and_suppresses_nobody(rt: Runtime, tmp_path: Path) -> None:
    """Issue 12: a Maildir notice without a VERP token, matched by Message-ID, is kept for review and moved; nobody is suppressed."""
    sent = send_to(rt, "gone@example.org")
    box = _maildir(
        tmp_path / "Maildir",
        {"1.notoken": dsn(sent.email, to="press@harbor.example.org", original_message_id=sent.message_id)},
    )

    summary = ingest_path(processor(rt, soft_threshold=1), box)

    assert (summary.processed, summary.review, summary.bounced) == (1, 1, 0)
    assert suppressions(rt) == {}
    assert delivery(rt, sent.delivery_id).status == "sent"
    assert [(k.category, k.delivery_id) for k in inbox(rt)] == [("review", sent.delivery_id)]
    assert [p.name for p in (box / "cur").iterdir()] == ["1.notoken:2,S"]


def test_maildir_moves_only_processed_bounces(rt: Runtime, tmp_path: Path) -> None:
    """Bounces move to cur/ flagged S after commit; a human reply and an unmatched notice stay in new/."""
    sent = send_to(rt, "gone@example.org")
    box = _maildir(
        tmp_path / "Maildir",
        {
            "1.bounce": dsn(sent.email, to=verp(rt, sent.delivery_id)),
            "2.human": HUMAN_REPLY,
            "3.unmatched": dsn("stranger@example.org", to="press@harbor.example.org"),
        },
    )

    summary = ingest_path(processor(rt), box)

    assert summary.as_json() == {
        "processed": 3,
        "bounced": 1,
        "delayed": 0,
        "complaints": 0,
        "feedback": 0,
        "sender_refused": 0,
        "review": 0,
        "kept": 0,
        "unsubscribed": 0,
        "ignored": 1,
        "unmatched": 1,
        "duplicates": 0,
        "replies": 0,
    }
    assert sorted(p.name for p in (box / "new").iterdir()) == ["2.human", "3.unmatched"]
    assert [p.name for p in (box / "cur").iterdir()] == ["1.bounce:2,S"]
    assert (box / "new" / "2.human").read_bytes() == HUMAN_REPLY
    assert delivery(rt, sent.delivery_id).status == "bounced"

    again = ingest_path(processor(rt), box)
    assert (again.duplicates, again.bounced, len(events(rt))) == (1, 0, 1)
    assert [p.name for p in (box / "cur").iterdir()] == ["1.bounce:2,S"]


def test_maildir_keeps_existing_flags(rt: Runtime, tmp_path: Path) -> None:
    """A bounce already in cur/ with flags keeps them and gains S."""
    sent = send_to(rt, "gone@example.org")
    box = _maildir(tmp_path / "Maildir", {})
    (box / "cur" / "9.bounce:2,F").write_bytes(dsn(sent.email, to=verp(rt, sent.delivery_id)))

    ingest_path(processor(rt), box)

    assert [p.name for p in (box / "cur").iterdir()] == ["9.bounce:2,FS"]


def test_mbox_ingest_reads_every_message_and_leaves_the_file(rt: Runtime, tmp_path: Path) -> None:
    """An mbox of two bounces and a reply: both bounces recorded, the mbox unchanged."""
    first, second = send_to(rt, "a@example.org"), send_to(rt, "b@example.org")
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    for raw in (
        dsn(first.email, to=verp(rt, first.delivery_id)),
        HUMAN_REPLY,
        dsn(second.email, to=verp(rt, second.delivery_id)),
    ):
        box.add(raw)
    box.close()
    before = path.read_bytes()

    assert detect_source(path) is SourceKind.MBOX
    summary = ingest_path(processor(rt), path)

    assert (summary.processed, summary.bounced, summary.ignored) == (3, 2, 1)
    assert set(suppressions(rt)) == {("a@example.org", "*"), ("b@example.org", "*")}
    assert path.read_bytes() == before


def test_same_file_twice_records_once(rt: Runtime, tmp_path: Path) -> None:
    """Ingesting one .eml file twice records its bounce once and reports a duplicate."""
    sent = send_to(rt, "gone@example.org")
    file = tmp_path / "bounce.eml"
    file.write_bytes(dsn(sent.email, to=verp(rt, sent.delivery_id)))

    assert detect_source(file) is SourceKind.FILE
    assert ingest_path(processor(rt), file).bounced == 1
    assert ingest_path(processor(rt), file).duplicates == 1
    assert len(events(rt, sent.delivery_id)) == 1


def test_directory_of_eml_files_with_progress(rt: Runtime, tmp_path: Path) -> None:
    """A directory's .eml files are processed in name order with progress; other files are skipped."""
    sent = send_to(rt, "slow@example.org")
    (tmp_path / "a.eml").write_bytes(
        dsn(sent.email, to=verp(rt, sent.delivery_id), action="delayed", status="4.4.1", diagnostic="timed out")
    )
    (tmp_path / "b.eml").write_bytes(HUMAN_REPLY)
    (tmp_path / "notes.txt").write_text("not mail")
    seen: list[tuple[int, int]] = []

    summary = ingest_path(processor(rt), tmp_path, progress=lambda done, total: seen.append((done, total)))

    assert (summary.processed, summary.delayed, summary.ignored) == (2, 1, 1)
    assert seen == [(1, 2), (2, 2)]


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    """A path that does not exist is reported as bad input."""
    with pytest.raises(InputError, match="no such file"):
        detect_source(tmp_path / "nope")


class FakeImap:
    """The IMAPClient calls the poller makes, over an in-memory folder."""

    def __init__(self, messages: dict[int, bytes]) -> None:
        self.messages = messages
        self.flags: dict[int, set[bytes]] = {uid: set() for uid in messages}
        self.moved: dict[int, str] = {}
        self.fetched: list[int] = []

    def select_folder(self, folder: str, readonly: bool = False) -> dict[bytes, Any]:
        return {b"UIDVALIDITY": 7}

    def search(self, criteria: Any = None) -> Sequence[int]:
        assert criteria == ["UNSEEN"]
        return [uid for uid in self.messages if b"\\Seen" not in self.flags[uid] and uid not in self.moved]

    def fetch(self, messages: Sequence[int], data: Sequence[str]) -> dict[int, dict[bytes, Any]]:
        assert list(data) == ["BODY.PEEK[]"]
        self.fetched.extend(messages)
        return {uid: {b"BODY[]": self.messages[uid]} for uid in messages}

    def add_flags(self, messages: Sequence[int], flags: Sequence[bytes]) -> None:
        for uid in messages:
            self.flags[uid].update(flags)

    def move(self, messages: Sequence[int], folder: str) -> None:
        for uid in messages:
            self.moved[uid] = folder

    def logout(self) -> None:
        pass


def test_imap_flags_processed_bounces_seen_and_leaves_other_mail_unread(rt: Runtime) -> None:
    """Over IMAP a bounce is flagged \\Seen after commit; a reply stays unread and is not fetched again."""
    sent = send_to(rt, "gone@example.org")
    client = FakeImap({1: dsn(sent.email, to=verp(rt, sent.delivery_id)), 2: HUMAN_REPLY})
    poller = ImapPoller(processor(rt), ImapOptions(host="imap.example.org", username="u", password="p"))

    first = poller.poll_once(client)
    second = poller.poll_once(client)

    assert (first.bounced, first.ignored, second.processed) == (1, 1, 0)
    assert client.flags == {1: {b"\\Seen"}, 2: set()}
    assert client.fetched == [1, 2]
    assert delivery(rt, sent.delivery_id).status == "bounced"


def test_imap_moves_to_processed_folder_and_run_stops(rt: Runtime) -> None:
    """With processed_folder set, handled messages are moved there; run() polls until stopped."""
    sent = send_to(rt, "gone@example.org")
    client = FakeImap({5: dsn(sent.email, to=verp(rt, sent.delivery_id))})
    options = ImapOptions(
        host="imap.example.org", username="u", password="p", processed_folder="Processed", poll_seconds=0.01
    )
    stop = threading.Event()

    total = ImapPoller(processor(rt), options).run(stop=stop, connect=lambda _: client, on_poll=lambda _: stop.set())

    assert total.bounced == 1
    assert client.moved == {5: "Processed"}
    assert client.flags[5] == set()
