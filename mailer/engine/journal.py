"""The heard-results journal: what the server answered to a message's data, kept until
the result is recorded in the database.

A worker records results in groups (one transaction every ~100 results or 0.5 s, in its
database writer thread, :mod:`mailer.engine.writer`). A
result heard but not yet recorded would be lost by ``kill -9``, and its row — marked as
in the data exchange — would become ``unknown`` although the server's answer was known.
So the moment the reply to a message's data is heard, one line goes to an append-only
file of this worker process (``<dir>/<owner>.heard``) with a single ``os.write``: once
``write`` returns the kernel holds it, and killing the process loses nothing (no fsync:
a crash of the *machine* may lose the tail, and those rows stay ``unknown`` as before).
When a recording covers every line written so far, the file is truncated (lines of
results already recorded are harmless: a replay records only rows the dead worker still
held). A later worker on the same host replays the
file of a dead worker (:func:`dead_journals`), before that worker's leases are swept.

One line: ``id TAB outcome TAB code TAB stage TAB fault TAB reason TAB hard TAB reply``.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from mailer.config import Settings
from mailer.domain.states import Outcome
from mailer.domain.status import Fault, Reason
from mailer.smtp.transport import SendResult

SUFFIX = ".heard"
_CLEAN = str.maketrans({"\t": " ", "\r": " ", "\n": " "})


def directory_for(settings: Settings) -> Path:
    """Where this database's journals live: ``retry.journal_dir`` (default beside an
    SQLite file, else ``var/heard``), in a folder named after the database URL so that
    workers of different databases never read each other's journals."""
    url = make_url(settings.database.url)
    tag = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:12]
    base = settings.retry.journal_dir
    if base is None:
        db_file = url.database if url.get_backend_name() == "sqlite" else None
        base = Path(f"{db_file}.heard") if db_file and db_file != ":memory:" else Path("var/heard")
    return base / tag


@dataclass(frozen=True)
class Heard:
    """One journal line: a delivery and the result the server gave for it."""

    delivery_id: int
    result: SendResult


def _line(delivery_id: int, res: SendResult) -> bytes:
    fields = (
        str(delivery_id),
        res.outcome.value,
        "" if res.code is None else str(res.code),
        res.stage,
        res.fault.value if res.fault else "",
        res.reason.value if res.reason else "",
        "1" if res.hard else "",
        res.reply[:1000].translate(_CLEAN),
    )
    return ("\t".join(fields) + "\n").encode("utf-8", "replace")


def _parse(line: str) -> Heard | None:
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 8 or not line.endswith("\n"):
        return None  # a line cut short by the kill: its result was not fully heard
    try:
        delivery_id, outcome, code, stage, fault, reason, hard, reply = parts
        return Heard(
            int(delivery_id),
            SendResult(
                Outcome(outcome),
                int(code) if code else None,
                reply,
                stage,
                Fault(fault) if fault else None,
                Reason(reason) if reason else None,
                hard == "1",
            ),
        )
    except ValueError:
        return None


class Journal:
    """This worker's journal file, opened on the first result."""

    def __init__(self, directory: Path, owner: str) -> None:
        self.path = directory / f"{owner}{SUFFIX}"
        self._fd: int | None = None
        self._unsettled = False
        #: lines appended since this journal was opened
        self.lines = 0

    def heard(self, delivery_id: int, res: SendResult) -> None:
        """Append one result (one ``write`` system call)."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.write(self._fd, _line(delivery_id, res))
        self.lines += 1
        self._unsettled = True

    def settled(self, upto: int | None = None) -> None:
        """The first ``upto`` lines (default all) are recorded in the database: empty the
        file if no line was appended since."""
        if upto is not None and upto != self.lines:
            return
        if self._fd is not None and self._unsettled:
            os.ftruncate(self._fd, 0)
            self._unsettled = False

    def close(self) -> None:
        """Close; remove the file unless it holds results not yet recorded."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.close(fd)
        if not self._unsettled:
            self.path.unlink(missing_ok=True)


def read(path: Path) -> list[Heard]:
    """The complete lines of a journal file (a partial last line is left out)."""
    try:
        text = path.read_text("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [h for h in map(_parse, text.splitlines(keepends=True)) if h is not None]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def dead_journals(directory: Path) -> list[tuple[str, Path]]:
    """(owner, path) of the journals in ``directory`` left by worker processes of this host
    that are no longer running (owner names are ``host:pid:tag``, see
    :func:`mailer.engine.dispatch.worker_name`)."""
    if not directory.is_dir():
        return []
    host = socket.gethostname()
    found: list[tuple[str, Path]] = []
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        owner = path.name.removesuffix(SUFFIX)
        parts = owner.rsplit(":", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        if not _alive(int(parts[1])):
            found.append((owner, path))
    return found
