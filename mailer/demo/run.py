"""`make demo`: the main job end to end on the embedded defaults.

Creates the schema, imports the sample lists, saves the demo segments, creates the demo
client and its media advisory (embargoed until the next morning in New York, with a
photo and a PDF fact sheet in its press kit), previews it per segment, submits and approves it (two
different people), sends it through a local capture SMTP server that files every message
in a Maildir, and returns the delivery report.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from mailer import store
from mailer.audience import contacts
from mailer.audience.contacts import ImportResult
from mailer.engine.dispatch import Dispatcher
from mailer.releases import workflow
from mailer.releases.approval import approve_release, submit_release
from mailer.releases.assets import attach_asset
from mailer.releases.authoring import create_release
from mailer.releases.clients import client_fields, create_client
from mailer.releases.plan import renderer_for
from mailer.releases.preview import preview_release
from mailer.releases.storage import storage_for
from mailer.runtime import Runtime
from mailer.smtp.capture import CaptureServer
from mailer.smtp.factory import make_transport
from mailer.store import db
from mailer.store.db import transaction
from mailer.store.ledger.report import release_report
from mailer.store.tables import Client

SAMPLE_LISTS = {
    "national-press": "national-press.csv",
    "foreign-desk": "foreign-desk.csv",
    "broadcast-bookers": "broadcast-bookers.csv",
}

DEMO_SEGMENTS = {
    "foreign-policy-print": (
        "(list:national-press OR list:foreign-desk) AND beat IN (foreign-policy, national-security)"
        " AND NOT outlet_type IN (tv, radio, podcast)",
        "Print, online and wire reporters on foreign policy and national security",
    ),
    "broadcast-bookers": (
        "list:broadcast-bookers AND (beat:tv-booking OR beat:radio-production)",
        "TV bookers and radio producers",
    ),
}

#: The demo release's press kit: (file in mailer/demo/data, caption, alt text).
PRESS_KIT = (
    (
        "port-sarrent-harbour.png",
        "Port Sarrent at dusk, where 40 vessels are held (illustration)",
        "Cranes and a quay at Port Sarrent at dusk, a red cargo ship at anchor",
    ),
    ("kessar-strait-fact-sheet.pdf", "Fact sheet: the Kessar Strait talks", None),
)

PUBLICIST = "mara.lindqvist@harbourlight.example.com"
APPROVER = "owen.achterberg@harbourlight.example.com"


@dataclass
class DemoImport:
    slug: str
    file: Path
    result: ImportResult


@dataclass
class DemoResult:
    imports: list[DemoImport]
    release_id: int
    previews: list[Path]
    maildir: Path
    captured: int
    report: dict[str, Any]


def import_samples(rt: Runtime, lists_dir: Path) -> list[DemoImport]:
    """Create the schema, import the sample lists and save the demo segments."""
    db.upgrade(rt.engine)
    done = []
    for slug, name in SAMPLE_LISTS.items():
        path = lists_dir / name
        done.append(
            DemoImport(
                slug,
                path,
                contacts.import_csv(
                    rt.sessions, path, list_slug=slug, now=rt.clock(), outlet_types=rt.settings.contacts.outlet_types
                ),
            )
        )
    with transaction(rt.sessions) as session:
        for slug, (rule, description) in DEMO_SEGMENTS.items():
            store.save_segment(session, slug, rule, description=description, now=rt.clock())
    return done


def _demo_text(name: str) -> str:
    return resources.files("mailer.demo.data").joinpath(name).read_text(encoding="utf-8")


def _release_text(now: datetime) -> str:
    """The demo release, sent ``now`` and embargoed until 09:00 New York time the day
    after (the file's own times would soon lie in the past, and an embargo before the
    send time is refused)."""
    lift = (now + timedelta(days=1)).astimezone(ZoneInfo("America/New_York"))
    text = re.sub(
        r"(?m)^send_at = .*$", f"send_at = {now.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}", _demo_text("release.md")
    )
    return re.sub(r"(?m)^embargo = .*$", f'embargo = "{lift:%Y-%m-%d} 09:00 America/New_York"', text, count=1)


def prepare_release(rt: Runtime, preview_dir: Path) -> tuple[int, list[Path]]:
    """Create the demo client (once) and a new demo release; preview it per segment;
    submit it as the publicist and approve it as a second person, due now."""
    import tomllib

    renderer = renderer_for(rt.settings)
    now = rt.clock()
    with transaction(rt.sessions) as session:
        data = tomllib.loads(_demo_text("client.toml"))
        if session.scalar(select(Client.id).where(Client.slug == data["slug"])) is None:
            create_client(session, client_fields(data), now=now)
        release = create_release(session, _release_text(now), author=PUBLICIST, renderer=renderer, now=now)
        release_id = release.id
        storage = storage_for(rt.settings)
        for name, caption, alt in PRESS_KIT:
            content = resources.files("mailer.demo.data").joinpath(name).read_bytes()
            attach_asset(
                session, release_id, content, name, caption=caption, alt=alt, actor=PUBLICIST,
                storage=storage, settings=rt.settings, now=now,
            )  # fmt: skip
        workflow.schedule(session, release_id, at=None, send_now=True, actor=PUBLICIST, now=now)
    previews: list[Path] = []
    preview_dir.mkdir(parents=True, exist_ok=True)
    with transaction(rt.sessions) as session:
        for slug in DEMO_SEGMENTS:
            preview = preview_release(
                session,
                release_id,
                segment_slug=slug,
                contact_email=None,
                renderer=renderer,
                settings=rt.settings,
                now=now,
            )
            html = preview_dir / f"release-{release_id}-{slug}.html"
            html.write_text(preview.parts.html, encoding="utf-8")
            (preview_dir / f"release-{release_id}-{slug}.txt").write_text(preview.parts.text, encoding="utf-8")
            previews.append(html)
            if preview.eml is not None:
                eml = preview_dir / f"release-{release_id}-{slug}.eml"
                eml.write_bytes(preview.eml)
                previews.append(eml)
    with transaction(rt.sessions) as session:
        submit_release(session, release_id, actor=PUBLICIST, renderer=renderer, settings=rt.settings, now=now)
    with transaction(rt.sessions) as session:
        approve_release(session, release_id, approver=APPROVER, renderer=renderer, settings=rt.settings, now=now)
    return release_id, previews


async def _send(rt: Runtime) -> None:
    pool = make_transport(rt.settings.smtp)
    try:
        await Dispatcher(rt, pool).run_once()
    finally:
        await pool.close()


def run_demo(rt: Runtime, lists_dir: Path, work_dir: Path) -> DemoResult:
    """The whole demo; messages land in the configured capture Maildir."""
    imports = import_samples(rt, lists_dir)
    release_id, previews = prepare_release(rt, work_dir / "previews")
    maildir = rt.settings.paths.capture_maildir
    with CaptureServer(maildir, host="127.0.0.1", port=0) as capture:
        smtp = rt.settings.smtp.model_copy(update={"host": "127.0.0.1", "port": capture.port, "tls": "none"})
        sending = replace(rt, settings=rt.settings.model_copy(update={"smtp": smtp}))
        asyncio.run(_send(sending))
        captured = capture.count
    with transaction(rt.sessions) as session:
        report = asdict(release_report(session, release_id))
    return DemoResult(imports, release_id, previews, maildir, captured, report)
