"""Heartbeats: each ``mailer run`` and inbound server process writes its last sign of
life to the database every ``ops.heartbeat_seconds`` (and pushes its counters for
GET /metrics, see :mod:`mailer.store.counters`).

``mailer run`` beats from its scheduler's event loop (a stuck loop stops beating);
the inbound server, whose SMTP loop runs in a thread of its own, beats from a
:class:`HeartbeatThread`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Literal

from mailer.domain.errors import MailerError
from mailer.runtime import Runtime
from mailer.store import counters
from mailer.store import heartbeats as heartbeat_store
from mailer.store.db import transaction

log = logging.getLogger("mailer.ops.heartbeat")

Kind = Literal["sender", "inbound"]


def process_name(kind: Kind) -> str:
    """``kind:host:pid``: unique to this process."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


def beat(rt: Runtime, kind: Kind, *, name: str | None = None) -> None:
    """Writes: this process's heartbeat and the counts since the last beat, in one
    transaction. Counts whose write fails are kept for the next beat."""
    pending = counters.take_pending()
    try:
        with transaction(rt.sessions) as session:
            now = rt.clock()
            heartbeat_store.beat(
                session, name=name or process_name(kind), kind=kind, host=socket.gethostname(), pid=os.getpid(), now=now
            )
            counters.add_counts(session, pending, now=now)
    except BaseException:
        counters.restore_pending(pending)
        raise


def forget(rt: Runtime, kind: Kind, *, name: str | None = None) -> None:
    """Writes: remove this process's heartbeat (it stops cleanly, so it is not "stale")."""
    with transaction(rt.sessions) as session:
        heartbeat_store.forget(session, name or process_name(kind))


class HeartbeatThread(threading.Thread):
    """Beats every ``ops.heartbeat_seconds`` until :meth:`stop`; a failed beat is logged
    and tried again at the next interval. Use as a context manager."""

    def __init__(self, rt: Runtime, kind: Kind) -> None:
        super().__init__(name=f"heartbeat-{kind}", daemon=True)
        self.rt = rt
        self.kind = kind
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                beat(self.rt, self.kind)
            except (MailerError, OSError, Exception):  # the next interval tries again
                log.warning("heartbeat of %s failed", self.kind, exc_info=True)
            self._stop_event.wait(self.rt.settings.ops.heartbeat_seconds)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
        try:
            beat(self.rt, self.kind)  # the last counts
            forget(self.rt, self.kind)
        except Exception:
            log.warning("last heartbeat of %s failed", self.kind, exc_info=True)

    def __enter__(self) -> HeartbeatThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
