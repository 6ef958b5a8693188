"""The send fence: a record, outside the database, of every release this machine started.

A backup of the database taken while a release was approved, restored after the release
went out, says "approved, nothing sent": the sender would mail every recipient again.
Rows in the database cannot guard against that, since the restore puts them back. So
before the first message of a release goes out, ``mailer run`` appends one line to an
append-only file in the data folder (``paths.data_dir``)::

    v1 <database identity> <release id> <content hash> <started at> <worker>

and flushes it to disk. The database identity is a random value stored in the database
itself (``mailer_meta``), so a restored copy has the same identity as the original, while
another database (a test, a new installation) never matches. When ``mailer run`` is about
to start an approved release whose (identity, release, content hash) is already in the
fence, it does not send: the release waits for a person
(``mailer releases confirm-late ID --resend-after-restore``).

The fence is per machine: with PostgreSQL and several machines running ``mailer run``,
each machine's fence knows the releases it started. Keep the data folder out of the
database's backups (restoring both together restores the fence too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mailer.domain.errors import StoreError

FENCE_FILE = "send-fence.log"
_VERSION = "v1"


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
        fields = (_VERSION, database_id, str(release_id), content_hash, at.isoformat(), _token(worker))
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
