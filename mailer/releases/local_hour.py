"""Local-hour delivery of a release (``send_at_local`` in its front matter): the waves its
rows are planned with, one not-before per contact time zone (the rules are
:mod:`mailer.domain.localtime`)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from mailer.domain import localtime
from mailer.store import contacts as contact_store
from mailer.store.planned import Waves
from mailer.store.tables import Release

__all__ = ["waves_for"]


def waves_for(session: Session, release: Release) -> Waves | None:
    """The release's waves (None: not a local-hour release): for each valid time zone
    contacts have, the UTC instant of ``send_at_local`` there; for every other contact,
    that instant in the release's ``timezone`` (UTC when it has none)."""
    if not release.send_at_local:
        return None
    wall = localtime.parse_local(release.send_at_local)
    default = localtime.zone(release.timezone) or ZoneInfo("UTC")
    by_zone, other = localtime.wave_times(wall, contact_store.contact_timezones(session), default)
    return Waves(by_zone, other)
