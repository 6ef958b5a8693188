"""A press-release spec with every field set, and a recipient, for render and DKIM tests."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from mailer.message import Recipient, Sender, VariantSpec

UNSUB = "https://news.acme.example.com/u/tok123"


POSTAL = "1 Harbour Road\nSpringfield, ST 00001"


DISCLOSURE = "This material is distributed by Acme PR on behalf of the Republic of Examplia."


DATE = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)


SENDER = Sender(
    name="Zoë Ångström PR",
    address="press@acme.example.com",
    reply_to="desk@acme.example.com",
    postal_address=POSTAL,
    disclosure=DISCLOSURE,
)


BODY = """\
**What:** A briefing on the {{ outlet | default("press") }} results.

**When:** Tuesday, 10:00

Hello {{ first_name | default("there") }}, details on [the site](https://acme.example.com/r/42).
"""


def make_spec(**changes: object) -> VariantSpec:
    """A press-release spec with every field set; ``changes`` override fields."""
    spec = VariantSpec(
        release_key="42",
        template="press_release",
        subject="{{ first_name | default('Hello') }}, embargoed briefing",
        title="Acme announces results",
        dateline="SPRINGFIELD, March 3, 2025",
        intro="Dear {{ first_name | default('colleague') }},",
        body_markdown=BODY,
        sender=SENDER,
        list_id="Acme Advisories <acme.lists.example.com>",
        feedback_id="42:acme:mailer",
        booking_contact="Pat Doe, +1 555 0100",
        about="**About Acme**: Acme makes examples.",
    )
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


ANN = Recipient("ann@example.org", "Ann", "Lee", "Daily Planet", {"beat": "science"})
