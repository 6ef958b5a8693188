"""The return-path domains the bounce receiver answers for: the instance's own
(``[sender] bounce_domain``) and every client's (:mod:`mailer.releases.identity`).

Clients come and go while ``mailer bounces serve`` runs, so the set is read from the
database and kept for a while (``ttl`` seconds); an address at a domain not in it reads
the database again (at most once every ``miss_interval`` seconds), so a client created a
minute ago is answered for at once, and a flood of foreign domains costs one query per
interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from mailer.config import Settings
from mailer.domain.errors import MailerError
from mailer.releases.identity import identity_for
from mailer.store import releases as release_store
from mailer.store.db import transaction

__all__ = ["ClientBounceDomains"]


class ClientBounceDomains:
    """Callable: is this (lower-case) domain one of ours? Thread-safe."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        ttl: float = 60.0,
        miss_interval: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._ttl = ttl
        self._miss_interval = miss_interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._domains: frozenset[str] = frozenset()
        self._read_at: float | None = None

    def domains(self) -> frozenset[str]:
        """Every client's return-path domain (read again when older than ``ttl``)."""
        with self._lock:
            if self._read_at is None or self._monotonic() - self._read_at >= self._ttl:
                self._reload()
            return self._domains

    def __call__(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        if domain in self.domains():
            return True
        with self._lock:
            if self._read_at is not None and self._monotonic() - self._read_at < self._miss_interval:
                return False
            self._reload()
            return domain in self._domains

    def _reload(self) -> None:
        found: set[str] = set()
        with transaction(self._sessions) as session:
            for client in release_store.all_clients(session):
                try:
                    found.add(identity_for(client, self._settings).bounce_domain.lower())
                except MailerError:
                    continue  # a client whose From domain cannot be read has no return path
        self._domains = frozenset(found)
        self._read_at = self._monotonic()
