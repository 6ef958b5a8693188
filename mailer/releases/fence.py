"""The send fence: a record, outside the database, of every release this machine started
and of how far each one's send ledger had got.

A backup of the database restored after the sends it does not know about says "these
rows are still queued": the sender would mail them again. Rows in the database cannot
guard against that, since the restore puts them back. So ``mailer run`` appends lines to
an append-only file in the data folder (``paths.data_dir``) and flushes each to disk:

* before the first message of a release goes out::

    v1 <database identity> <release id> <content hash> <started at> <worker>

* after each commit that records send results of a release (batched: every
  ``FLUSH_RESULTS`` results or ``FLUSH_SECONDS``), the release's new ledger sequence::

    v2 <database identity> <release id> <ledger key> <sequence>

The database identity is a random value stored in the database itself (``mailer_meta``),
so a restored copy has the same identity as the original, while another database (a
test, a new installation) never matches. The **ledger sequence** (``releases.ledger_seq``)
is a counter the engine raises in the same transaction that records send results
(``UPDATE ... SET ledger_seq = ledger_seq + k RETURNING ledger_seq``); it never goes down
in a live database, so every sequence in a fence was once a committed value, and a
database whose sequence is *lower* than the fence's highest one for it has lost recorded
sends: it is a restored copy (or a PostgreSQL server crash lost commits made with
``synchronous_commit = off`` — sends it forgot, which the hold rightly stops too). The
line is written only after the commit, so a crash between the two only makes the fence
lag (a missed check at worst, never a false alarm). The **ledger key** (``-`` until then)
is a random token a person's ``--resend-after-restore`` decision gives the release, so
the fence lines of the history the person chose to ignore no longer match.

The engine checks (see :mod:`mailer.releases.holds`): before starting an approved release (v1: a
start with the same content; v2: a sequence above the database's), and before each batch
of a ``sending`` release is claimed (v2). The fence is read before the database, so the
database's value is never older than what the fence was seen to hold.

The fence is per machine: with PostgreSQL and several machines running ``mailer run``,
each machine's fence knows the releases it started and the sequences it recorded; the
counter is one per release in the database, so the machines' fences never disagree with
each other, only lag. Keep the data folder out of the database's backups (restoring both
together restores the fence too).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mailer.domain.errors import StoreError

FENCE_FILE = "send-fence.log"
_VERSION = "v1"
_LEDGER_VERSION = "v2"
#: the ledger key of a release no person has let resend after a restore
NO_LEDGER_KEY = "-"

#: (database identity, release id, ledger key) → highest ledger sequence in the fence
LedgerMarks = Mapping[tuple[str, int, str], int]


@dataclass(frozen=True)
class FenceEntry:
    """One release start recorded in the fence."""

    database_id: str
    release_id: int
    content_hash: str
    started_at: str
    worker: str


class SendFence:
    """The fence file of one machine (``data_dir/send-fence.log``)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FENCE_FILE
        # The ledger lines read so far: the file is only appended to, so each read takes
        # only what was added since (a replaced or truncated file is read again).
        self._marks: dict[tuple[str, int, str], int] = {}
        self._offset = 0
        self._file_id: tuple[int, int] | None = None

    def started(self, database_id: str, release_id: int, content_hash: str) -> FenceEntry | None:
        """The first recorded start of this release with this content by this database,
        or None. A missing file is an empty fence; an unreadable one raises StoreError
        (starting blind would defeat the fence)."""
        try:
            with self.path.open("r", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    entry = _parse(line)
                    if (
                        entry is not None
                        and entry.database_id == database_id
                        and entry.release_id == release_id
                        and entry.content_hash == content_hash
                    ):
                        return entry
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"send fence {self.path}: cannot read: {exc.strerror}") from exc
        return None

    def record(self, database_id: str, release_id: int, content_hash: str, *, at: datetime, worker: str) -> None:
        """Append one start and flush it to disk before returning; StoreError when the
        fence cannot be written (the caller must then not start the release)."""
        self._append((_VERSION, database_id, str(release_id), content_hash, at.isoformat(), _token(worker)))

    def record_ledger(self, database_id: str, release_id: int, key: str | None, sequence: int) -> None:
        """Append a release's ledger sequence just committed and flush it to disk;
        StoreError when the fence cannot be written."""
        self._append((_LEDGER_VERSION, database_id, str(release_id), _token(key or NO_LEDGER_KEY), str(sequence)))

    def ledger(self) -> LedgerMarks:
        """The highest ledger sequence the fence holds per (database identity, release,
        ledger key), read now (only the lines added since the last read). A missing file
        is an empty fence; an unreadable one raises StoreError."""
        try:
            with self.path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                file_id = (st.st_dev, st.st_ino)
                if file_id != self._file_id or st.st_size < self._offset:
                    self._marks, self._offset, self._file_id = {}, 0, file_id
                fh.seek(self._offset)
                added = fh.read()
        except FileNotFoundError:
            self._marks, self._offset, self._file_id = {}, 0, None
            return dict(self._marks)
        except OSError as exc:
            raise StoreError(f"send fence {self.path}: cannot read: {exc.strerror}") from exc
        complete = added.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += complete
        for raw in added[:complete].splitlines():
            parts = raw.decode("utf-8", errors="replace").split()
            if len(parts) != 5 or parts[0] != _LEDGER_VERSION or not parts[2].isdigit() or not parts[4].isdigit():
                continue  # a start line, a torn line (power loss mid-write) or a foreign one
            key = (parts[1], int(parts[2]), parts[3])
            self._marks[key] = max(self._marks.get(key, 0), int(parts[4]))
        return dict(self._marks)

    def _append(self, fields: tuple[str, ...]) -> None:
        line = " ".join(fields) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND: concurrent writers on this machine never interleave a line.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"send fence {self.path}: cannot write: {exc.strerror}") from exc


def _token(text: str) -> str:
    """``text`` as one space-free field of a fence line."""
    return "".join(ch if ch.isprintable() and not ch.isspace() else "_" for ch in text) or "-"


def _parse(line: str) -> FenceEntry | None:
    parts = line.split()
    if len(parts) != 6 or parts[0] != _VERSION or not parts[2].isdigit():
        return None  # a torn last line (power loss mid-write) or a foreign line
    return FenceEntry(parts[1], int(parts[2]), parts[3], parts[4], parts[5])
