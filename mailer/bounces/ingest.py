"""Feed returned messages from files and mailboxes to a :class:`BounceProcessor`.

Sources: one message file (``.eml``), a directory of ``.eml`` files, an mbox file, a
Maildir (a directory with ``cur``, ``new`` and ``tmp``), and an IMAP folder.

The rule everywhere: a message is acknowledged only after what it says is committed,
and only when it was ours (:data:`~mailer.bounces.process.HANDLED`). In a Maildir that
means moving it to ``cur`` with the ``S`` (seen) flag; over IMAP, flagging it ``\\Seen``
or moving it to a folder. Human replies, auto-replies and notices about no delivery
of ours stay exactly where they were, unread. Files, directories and mboxes are only
read. Processing is idempotent, so a crash between the commit and the move, or the
same mailbox ingested twice, records every notice once.
"""

from __future__ import annotations

import imaplib
import logging
import mailbox
import os
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from mailer.bounces.policy import BounceOutcome
from mailer.bounces.process import MessageProcessor, ProcessResult
from mailer.domain.errors import InputError, TransportError

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class SourceKind(StrEnum):
    """What ``mailer bounces ingest PATH`` found at PATH."""

    FILE = "file"
    DIRECTORY = "directory"
    MBOX = "mbox"
    MAILDIR = "maildir"


@dataclass
class IngestSummary:
    """Counts over one ingest run; every message lands in exactly one of the outcome
    counters, and ``processed`` is their total."""

    processed: int = 0
    bounced: int = 0
    delayed: int = 0
    complaints: int = 0
    feedback: int = 0
    sender_refused: int = 0
    review: int = 0
    kept: int = 0
    unsubscribed: int = 0
    ignored: int = 0
    unmatched: int = 0
    duplicates: int = 0
    replies: int = 0

    def add(self, result: ProcessResult) -> None:
        """Count one message's outcome."""
        self.processed += 1
        attribute = {
            BounceOutcome.BOUNCED: "bounced",
            BounceOutcome.DELAYED: "delayed",
            BounceOutcome.COMPLAINT: "complaints",
            BounceOutcome.FEEDBACK: "feedback",
            BounceOutcome.SENDER_REFUSED: "sender_refused",
            BounceOutcome.REVIEW: "review",
            BounceOutcome.KEPT: "kept",
            BounceOutcome.UNSUBSCRIBED: "unsubscribed",
            BounceOutcome.IGNORED: "ignored",
            BounceOutcome.UNMATCHED: "unmatched",
            BounceOutcome.DUPLICATE: "duplicates",
            BounceOutcome.REPLY: "replies",
        }[result.outcome]
        setattr(self, attribute, getattr(self, attribute) + 1)

    def merge(self, other: IngestSummary) -> None:
        """Add another run's counts to these."""
        for key, value in other.as_json().items():
            setattr(self, key, getattr(self, key) + value)

    def as_json(self) -> dict[str, int]:
        """The counts as ``{"processed": N, "bounced": N, ...}``."""
        return {
            "processed": self.processed,
            "bounced": self.bounced,
            "delayed": self.delayed,
            "complaints": self.complaints,
            "feedback": self.feedback,
            "sender_refused": self.sender_refused,
            "review": self.review,
            "kept": self.kept,
            "unsubscribed": self.unsubscribed,
            "ignored": self.ignored,
            "unmatched": self.unmatched,
            "duplicates": self.duplicates,
            "replies": self.replies,
        }


@dataclass(frozen=True)
class _Item:
    """One message of a source: how to read it and, for mailboxes, how to mark it done."""

    label: str
    read: Callable[[], bytes]
    acknowledge: Callable[[], None] | None = None


# --- files and local mailboxes -------------------------------------------------------


def detect_source(path: Path) -> SourceKind:
    """What kind of source ``path`` is.

    Raises:
        InputError: ``path`` does not exist or is neither a file nor a directory.
    """
    if path.is_dir():
        if all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            return SourceKind.MAILDIR
        return SourceKind.DIRECTORY
    if path.is_file():
        try:
            with path.open("rb") as fh:
                head = fh.read(5)
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
        # An mbox starts with a "From " separator line (RFC 4155); a message never does.
        return SourceKind.MBOX if head == b"From " else SourceKind.FILE
    raise InputError(f"{path}: no such file or directory")


def ingest_path(processor: MessageProcessor, path: Path, *, progress: Progress | None = None) -> IngestSummary:
    """Process every message at ``path`` (see :func:`detect_source`), committing each
    before acknowledging it; ``progress(done, total)`` is called after each message.

    Raises:
        InputError: ``path`` is missing or unreadable.
        StoreError: the database failed; messages before it are committed (and moved),
            the failing one and those after it are untouched, and a re-run is safe.
    """
    items = list(_items(path, detect_source(path)))
    summary = IngestSummary()
    for done, item in enumerate(items, start=1):
        try:
            raw = item.read()
        except FileNotFoundError:
            # Another ingest of the same Maildir moved it first.
            continue
        except OSError as exc:
            raise InputError(f"{item.label}: cannot read: {exc.strerror}") from exc
        result = processor.process(raw)
        if result.handled and item.acknowledge is not None:
            item.acknowledge()
        summary.add(result)
        if progress is not None:
            progress(done, len(items))
    return summary


def _items(path: Path, kind: SourceKind) -> Iterator[_Item]:
    if kind is SourceKind.FILE:
        yield _Item(str(path), path.read_bytes)
    elif kind is SourceKind.DIRECTORY:
        for file in sorted(p for p in path.iterdir() if p.suffix.lower() == ".eml" and p.is_file()):
            yield _Item(str(file), file.read_bytes)
    elif kind is SourceKind.MBOX:
        yield from _mbox_items(path)
    else:
        yield from _maildir_items(path)


def _mbox_items(path: Path) -> Iterator[_Item]:
    box = mailbox.mbox(path, create=False)
    try:
        # Read everything up front: the mbox is left as it is, and the run must not
        # depend on the file staying unchanged while the database is written.
        messages = [(key, box.get_bytes(key)) for key in box.iterkeys()]
    finally:
        box.close()
    for key, raw in messages:
        yield _Item(f"{path}#{key}", partial(bytes, raw))


def _maildir_items(root: Path) -> Iterator[_Item]:
    for sub in ("new", "cur"):
        names = sorted(
            entry.name for entry in os.scandir(root / sub) if entry.is_file() and not entry.name.startswith(".")
        )
        for name in names:
            file = root / sub / name
            yield _Item(str(file), file.read_bytes, partial(_mark_seen, root, file))


def _mark_seen(root: Path, file: Path) -> None:
    """Move a Maildir message to ``cur`` with the ``S`` flag (the Maildir convention
    for "seen": ``cur/<unique>:2,<flags>``), keeping its other flags."""
    unique, _, info = file.name.partition(":")
    flags = set(info[2:]) if info.startswith("2,") else set()
    flags.add("S")
    target = root / "cur" / f"{unique}:2,{''.join(sorted(flags))}"
    if target != file:
        os.replace(file, target)


# --- IMAP ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImapOptions:
    """Where to poll for returned messages over IMAP (RFC 9051).

    With ``processed_folder`` set, handled messages are moved there (needs the MOVE
    extension, RFC 6851); otherwise they are flagged ``\\Seen``. Either way only after
    the commit, and only messages that were ours.
    """

    host: str
    username: str
    password: str = field(repr=False)
    port: int = 993
    ssl: bool = True
    folder: str = "INBOX"
    processed_folder: str | None = None
    poll_seconds: float = 60.0
    timeout: float = 60.0
    batch_size: int = 100


class ImapConnection(Protocol):
    """The part of :class:`imapclient.IMAPClient` the poller uses (tests pass a fake)."""

    def select_folder(self, folder: str, readonly: bool = ...) -> dict[bytes, Any]: ...

    def search(self, criteria: Any = ...) -> Sequence[int]: ...

    def fetch(self, messages: Sequence[int], data: Sequence[str]) -> dict[int, dict[bytes, Any]]: ...

    def add_flags(self, messages: Sequence[int], flags: Sequence[bytes]) -> Any: ...

    def move(self, messages: Sequence[int], folder: str) -> Any: ...

    def logout(self) -> Any: ...


SEEN = b"\\Seen"


def connect_imap(options: ImapOptions) -> ImapConnection:
    """Log in to the IMAP server of ``options``.

    Raises:
        TransportError: the server cannot be reached or refuses the login.
    """
    from imapclient import IMAPClient

    try:
        context = ssl.create_default_context() if options.ssl else None
        client = IMAPClient(
            options.host, port=options.port, ssl=options.ssl, ssl_context=context, timeout=options.timeout
        )
        client.login(options.username, options.password)
    except Exception as exc:
        # imapclient raises its own errors, socket errors and ssl errors alike.
        raise TransportError(f"IMAP {options.host}:{options.port}: {exc}") from exc
    connection: ImapConnection = client
    return connection


class ImapPoller:
    """Polls one IMAP folder. Remembers (per UIDVALIDITY) the unread messages it left
    alone, so that a human's mail is fetched once per process, not at every poll."""

    def __init__(self, processor: MessageProcessor, options: ImapOptions) -> None:
        self._processor = processor
        self._options = options
        self._left_alone: set[int] = set()
        self._validity: object = None

    def poll_once(self, client: ImapConnection) -> IngestSummary:
        """Process the folder's unread messages once.

        Raises:
            StoreError: the database failed; the failing message stays unread.
            TransportError: the IMAP server failed.
        """
        summary = IngestSummary()
        try:
            selected = client.select_folder(self._options.folder)
            validity = selected.get(b"UIDVALIDITY")
            if validity != self._validity:
                self._validity, self._left_alone = validity, set()
            uids = [uid for uid in client.search(["UNSEEN"]) if uid not in self._left_alone]
            for start in range(0, len(uids), self._options.batch_size):
                batch = uids[start : start + self._options.batch_size]
                # BODY.PEEK reads without setting \Seen (RFC 9051 §6.4.5): fetching
                # must not mark anything.
                fetched = client.fetch(batch, ["BODY.PEEK[]"])
                for uid in batch:
                    raw = fetched.get(uid, {}).get(b"BODY[]")
                    if not isinstance(raw, bytes):
                        continue
                    result = self._processor.process(raw)
                    summary.add(result)
                    if result.handled:
                        self._acknowledge(client, uid)
                    else:
                        self._left_alone.add(uid)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise TransportError(f"IMAP {self._options.host}: {exc}") from exc
        return summary

    def _acknowledge(self, client: ImapConnection, uid: int) -> None:
        if self._options.processed_folder:
            client.move([uid], self._options.processed_folder)
        else:
            client.add_flags([uid], [SEEN])

    def run(
        self,
        *,
        stop: threading.Event,
        connect: Callable[[ImapOptions], ImapConnection] = connect_imap,
        on_poll: Callable[[IngestSummary], None] | None = None,
    ) -> IngestSummary:
        """Poll every ``poll_seconds`` until ``stop`` is set; returns the total counts.

        One connection is kept while it works and opened again after a failure of
        the server (the next poll retries; nothing unacknowledged was lost).

        Raises:
            StoreError: the database failed.
            TransportError: the first connection cannot be made.
        """
        total = IngestSummary()
        client: ImapConnection | None = connect(self._options)
        try:
            while not stop.is_set():
                try:
                    if client is None:
                        client = connect(self._options)
                    summary = self.poll_once(client)
                except TransportError as exc:
                    log.warning("%s; reconnecting at the next poll", exc)
                    _close(client)
                    client = None
                else:
                    total.merge(summary)
                    if on_poll is not None:
                        on_poll(summary)
                stop.wait(self._options.poll_seconds)
        finally:
            _close(client)
        return total


def _close(client: ImapConnection | None) -> None:
    if client is None:
        return
    try:
        client.logout()
    except Exception:
        # The connection is being dropped because it already failed; nothing to save.
        log.debug("IMAP logout failed", exc_info=True)
