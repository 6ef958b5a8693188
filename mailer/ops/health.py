"""Is this deployment ready to serve? The checks behind GET /readyz.

Ready means: the database answers, its schema is at the newest migration, and each
process kind in ``ops.ready_requires`` (``sender``: ``mailer run``; ``inbound``: the
bounce receiver) wrote a heartbeat within ``ops.heartbeat_stale_seconds``. The details
say ages and states only, never a URL, a host name or a secret: the endpoint has no auth.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from mailer.domain.errors import MailerError
from mailer.runtime import Runtime
from mailer.store import db
from mailer.store import heartbeats as heartbeat_store
from mailer.store.db import transaction


@dataclass(frozen=True)
class Check:
    """One readiness check: its name, whether it passed, and a short safe detail."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    checks: list[Check]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_json(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks},
        }


def readiness(rt: Runtime) -> Readiness:
    """Run the checks (see the module docstring); never raises for a failing check."""
    try:
        with transaction(rt.sessions) as session:
            heartbeat_store.ping(session)
            beats = heartbeat_store.latest_beats(session)
    except (MailerError, SQLAlchemyError, OSError) as exc:
        reason = type(exc).__name__
        return Readiness(
            [Check("database", False, f"unreachable ({reason})"), Check("migrations", False, "database unreachable")]
        )
    checks = [Check("database", True, "reachable")]
    try:
        have, head = db.current_revision(rt.engine), db.head_revision()
    except (SQLAlchemyError, OSError) as exc:
        checks.append(Check("migrations", False, f"cannot read the revision ({type(exc).__name__})"))
    else:
        current = have == head
        checks.append(Check("migrations", current, "current" if current else "behind: run `mailer db upgrade`"))
    ops = rt.settings.ops
    now = rt.clock()
    for kind in ops.ready_requires:
        at = beats.get(kind)
        if at is None:
            checks.append(Check(f"{kind}_heartbeat", False, "no heartbeat yet"))
            continue
        age = max((now - at).total_seconds(), 0.0)
        fresh = age <= ops.heartbeat_stale_seconds
        detail = f"{age:.0f} s ago" + ("" if fresh else f" (stale after {ops.heartbeat_stale_seconds:g} s)")
        checks.append(Check(f"{kind}_heartbeat", fresh, detail))
    return Readiness(checks)
