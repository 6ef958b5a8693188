"""Helpers for delivery-engine tests: contacts, a client, an approved release, a runtime
pointed at a test SMTP server, a clock the test moves, and the environment of a worker
process the test starts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mailer import store
from mailer.audience import contacts
from mailer.config import Settings
from mailer.domain.embargo import Embargo
from mailer.domain.states import ReleaseStatus
from mailer.message import Renderer
from mailer.releases.plan import build_send_plan
from mailer.runtime import Runtime
from mailer.store import deliveries as delivery_store
from mailer.store.db import transaction
from mailer.store.tables import Approval, Client, Delivery, Release, ReleaseSegment, Segment
from tests.support.constants import FIXED_NOW, REPO, TEST_SECRET

BODY = """Dear {{ first_name | default("colleague") }},

The **Harbor Institute** publishes its annual report on maritime security on
Tuesday. Experts are available for interview. Details: <https://harbor.example.org/report>.
"""


class Clock:
    """A clock the test sets and advances."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def engine_runtime(rt: Runtime, port: int, clock: Clock, **overrides: Any) -> Runtime:
    """The test runtime with SMTP pointed at 127.0.0.1:port and settings overrides
    (``smtp__pool_size=2``, ``retry__batch_size=10``...)."""
    data = rt.settings.model_dump()
    data["smtp"].update(host="127.0.0.1", port=port, command_timeout=5, data_timeout=5, connect_timeout=5)
    data["secret_key"] = TEST_SECRET
    data["old_secret_keys"] = []
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        data[section][name] = value
    return replace(rt, settings=Settings.model_validate(data), clock=clock)


def add_contacts(
    rt: Runtime, tmp_path: Path, emails: list[str], *, list_slug: str = "press", beat: str = "politics"
) -> None:
    path = tmp_path / f"{list_slug}-{len(emails)}.csv"
    lines = ["email,first_name,beats"] + [f"{e},Name{i},{beat}" for i, e in enumerate(emails)]
    path.write_text("\n".join(lines) + "\n")
    result = contacts.import_csv(rt.sessions, path, list_slug=list_slug, now=FIXED_NOW)
    assert result.rejected == [], result.rejected


@dataclass
class Variant:
    segment: str
    rule: str
    subject: str | None = None
    intro: str | None = None


def approved_release(
    rt: Runtime,
    variants: list[Variant],
    *,
    subject: str = "Harbor Institute report: embargoed until Tuesday",
    body: str = BODY,
    send_at: datetime | None = None,
    client_slug: str = "harbor",
    embargo: Embargo | None = None,
) -> int:
    """An approved release of a test client to these segments (created as needed; a
    ``client_slug`` other than harbor must exist); ``embargo``: the release is embargoed until then.

    Without ``send_at`` it is due at once whatever the clock (as "approved without a send
    time" was before issue 21: now such a release waits to be scheduled): its send time
    is FIXED_NOW with no time limit, so a process on the real clock sends it too."""
    not_after = None
    if send_at is None:
        send_at, not_after = FIXED_NOW, FIXED_NOW + timedelta(days=3650)
    with transaction(rt.sessions) as session:
        client = session.scalar(select(Client).where(Client.slug == client_slug))
        if client is None:
            assert client_slug == "harbor", f"create client {client_slug} first"
            client = Client(
                slug="harbor",
                name="Harbor Institute",
                from_name="Harbor Institute Press Office",
                from_address="press@harbor.example.org",
                reply_to="media@harbor.example.org",
                postal_address="12 Quay Street, Portsmouth, NH 03801, USA",
                disclosure="Distributed by Example PR LLP on behalf of the Harbor Institute.",
                created_at=FIXED_NOW,
            )
            session.add(client)
            session.flush()
        release = Release(
            client_id=client.id,
            title="Annual maritime security report",
            subject=subject,
            template="press_release",
            body=body,
            extra={
                "dateline": "PORTSMOUTH, N.H., Nov. 25, 2026",
                **({"embargo": embargo.local().isoformat(), "embargo_zone": embargo.zone} if embargo else {}),
            },
            status=ReleaseStatus.APPROVED.value,
            send_at=send_at,
            not_after=not_after,
            embargo_at=embargo.at if embargo else None,
            author="author@example.com",
            created_at=FIXED_NOW,
            updated_at=FIXED_NOW,
        )
        session.add(release)
        session.flush()
        for position, v in enumerate(variants):
            segment = store.save_segment(session, v.segment, v.rule, description=None, now=FIXED_NOW)
            session.add(
                ReleaseSegment(
                    release_id=release.id,
                    segment_id=segment.id,
                    position=position,
                    subject=v.subject,
                    intro=v.intro,
                    template=None,
                )
            )
        session.flush()
        plan = build_send_plan(session, release.id, Renderer(REPO / "templates"), rt.settings)
        release.content_hash = plan.content_hash
        session.add(
            Approval(
                release_id=release.id,
                approver="approver@example.com",
                content_hash=plan.content_hash,
                approved_at=FIXED_NOW,
            )
        )
        return release.id


def plan_only(
    rt: Runtime,
    release_id: int,
    *,
    slug: str = "press-all",
    scopes: Sequence[str] = ("*", "harbor"),
    message_id_domain: str = "mail.example.com",
    now: datetime = FIXED_NOW,
) -> int:
    """Plan one segment of the release (its rows queued, nothing sent, the release's status
    untouched), as the planner's steps would; returns how many rows were added."""
    with transaction(rt.sessions) as session:
        segment = session.scalars(select(Segment).where(Segment.slug == slug)).one()
        return delivery_store.plan_segment(
            session,
            release_id=release_id,
            segment_id=segment.id,
            rule=segment.rule,
            scopes=scopes,
            message_id_domain=message_id_domain,
            now=now,
        )


def deliveries(rt: Runtime, release_id: int) -> dict[str, Delivery]:
    with transaction(rt.sessions) as session:
        rows = session.scalars(select(Delivery).where(Delivery.release_id == release_id)).all()
        return {r.email or f"erased-{r.id}": r for r in rows}


def release_status(rt: Runtime, release_id: int) -> str:
    with transaction(rt.sessions) as session:
        release = session.get(Release, release_id)
        assert release is not None
        return release.status


def worker_env(rt: Runtime, port: int, **extra: str) -> dict[str, str]:
    """The environment of a worker process on ``rt``'s database and the SMTP server at ``port``."""
    env = {
        "MAILER_SMTP__CLIENT": rt.settings.smtp.client,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MAILER_DATABASE__URL": rt.settings.database.url,
        "MAILER_SMTP__PORT": str(port),
        "MAILER_SMTP__HOST": "127.0.0.1",
        "MAILER_SECRET_KEY": TEST_SECRET,
        "MAILER_PATHS__TEMPLATES_DIR": str(REPO / "templates"),
        "MAILER_RETRY__LEASE_SECONDS": "30",
        "MAILER_RETRY__BATCH_SIZE": "10",
        "MAILER_SMTP__POOL_SIZE": "2",
        "PYTHONPATH": str(REPO),
    }
    if rt.settings.retry.journal_dir is not None:
        env["MAILER_RETRY__JOURNAL_DIR"] = str(rt.settings.retry.journal_dir)
    env.update(extra)
    return env
