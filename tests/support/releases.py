"""Release helpers shared by the release, compliance, CLI, IDN and render-limit tests:
two contacts and segments, the client ``acme``, a release file, create and submit."""

from __future__ import annotations

from pathlib import Path

from mailer import store
from mailer.audience import contacts
from mailer.message import Renderer
from mailer.releases.approval import submit_release
from mailer.releases.authoring import create_release
from mailer.releases.clients import client_fields, create_client
from mailer.runtime import Runtime
from mailer.store.db import transaction

BASE_URL = "https://news.example.com"
#: What the subject of a message of :data:`RELEASE` starts with (its embargo, for a
#: recipient without a time zone: in the zone it was written in, and UTC).
EMBARGO_PREFIX = "[EMBARGOED until 1 Dec 10:00 UTC-05:00 / 15:00 UTC] "


PEOPLE = """\
email,first_name,last_name,outlet,outlet_type,beats,desk
ann@daily.example.com,Ann,Lee,Daily Planet,print,foreign-policy,world
bob@tv.example.com,Bob,Ray,Channel Nine,tv,tv-booking,
"""


CLIENT = {
    "slug": "acme",
    "name": "Acme Institute",
    "from_name": "Acme Press Office",
    "from_address": "press@acme.example.com",
    "reply_to": "desk@acme.example.com",
    "postal_address": "1 Harbour Road\nSpringfield, ST 00001",
    "disclosure": "This material is distributed by Acme PR on behalf of the Republic of Examplia.",
}


RELEASE = """\
+++
title = "Acme briefing on harbour policy"
client = "acme"
subject = "Briefing for {{ first_name | default('you') }}"
template = "media_advisory"
segments = ["foreign-policy-print", "broadcast-bookers"]
send_at = "2027-12-01T09:00:00-05:00"
embargo = 2027-12-01T10:00:00-05:00
dateline = "SPRINGFIELD, December 1, 2026"
intro = "Dear {{ first_name | default('colleague') }},"
booking_contact = "Pat Doe, +1 555 0100"
questions = ["What changes at the harbour?"]

[[speakers]]
name = "Dr. Ada Example"
title = "Director"
bio = "Studies harbours."

[variants.broadcast-bookers]
subject = "Booking: harbour expert for {{ outlet | default('your show') }}"
intro = "For bookers: studio or remote."
+++
The institute publishes its [harbour report](https://acme.example.com/r/1) today.

Hello {{ first_name | default('there') }}.
"""


def seed(rt: Runtime, tmp_path: Path, *, client: dict[str, str] | None = None) -> None:
    """Two contacts, the two demo segment slugs plus an empty one, and the client ``acme``."""
    csv = tmp_path / "people.csv"
    csv.write_text(PEOPLE, "utf-8")
    contacts.import_csv(rt.sessions, csv, list_slug="press", now=rt.clock())
    with transaction(rt.sessions) as session:
        store.save_segment(session, "foreign-policy-print", "beat:foreign-policy", description=None, now=rt.clock())
        store.save_segment(session, "broadcast-bookers", "beat:tv-booking", description=None, now=rt.clock())
        store.save_segment(session, "nobody", "beat:astrology", description=None, now=rt.clock())
        create_client(session, client_fields(client or CLIENT), now=rt.clock())


def create(rt: Runtime, renderer: Renderer, text: str = RELEASE, *, author: str = "pat") -> int:
    with transaction(rt.sessions) as session:
        return create_release(session, text, author=author, renderer=renderer, now=rt.clock()).id


def submit(rt: Runtime, renderer: Renderer, release_id: int, *, actor: str = "pat") -> None:
    with transaction(rt.sessions) as session:
        submit_release(session, release_id, actor=actor, renderer=renderer, settings=rt.settings, now=rt.clock())
