"""A release as a release file (Markdown with TOML front matter): the inverse of
:func:`mailer.releases.source.parse_release`.

The web editor turns its fields into this text and saves it through
:mod:`mailer.releases.authoring` (one code path, the CLI's validation); an approval keeps
it as the snapshot the approval page diffs against; ``releases show --file`` could print
it. ``parse_release(release_file(...))`` gives back the same release.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from mailer.store import releases as release_store

__all__ = ["release_fields", "release_file", "render_file"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_\-]+")

#: Keys written as ``key = value`` lines, in this order; tables come after.
_SCALARS = (
    "title",
    "client",
    "subject",
    "template",
    "segments",
    "topics",
    "send_at",
    "send_at_local",
    "timezone",
    "not_after",
    "embargo",
    "reply_to",
    "dateline",
    "preheader",
    "intro",
    "about",
    "booking_contact",
    "questions_heading",
    "questions",
    "disclosure_placement",
)


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        if "\n" in value and "'''" not in value and not value.endswith("'"):
            return "'''\n" + value + "'''"
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _lines(table: Mapping[str, Any], keys: Sequence[str] | None = None) -> list[str]:
    return [f"{_key(k)} = {_value(table[k])}" for k in (keys or list(table)) if table.get(k) not in (None, "", [], ())]


def render_file(fields: Mapping[str, Any], body: str) -> str:
    """The release file for ``fields`` (the front matter keys of
    :mod:`mailer.releases.source`; empty values left out) and ``body``."""
    out = ["+++", *_lines(fields, [k for k in _SCALARS if k in fields])]
    booking = {k: v for k, v in (fields.get("booking") or {}).items() if v}
    if booking:
        out += ["", "[booking]", *_lines(booking)]
    for speaker in fields.get("speakers") or []:
        out += ["", "[[speakers]]", *_lines(speaker, ["name", "title", "bio"])]
    for group in fields.get("speaker_groups") or []:
        out += ["", "[[speaker_groups]]", *_lines(group, ["heading"])]
        for speaker in group.get("speakers") or []:
            out += ["[[speaker_groups.speakers]]", *_lines(speaker, ["name", "title", "bio"])]
    for link in fields.get("related") or []:
        out += ["", "[[related]]", *_lines(link, ["title", "url"])]
    for slug, variant in (fields.get("variants") or {}).items():
        shown = {k: v for k, v in variant.items() if v}
        if shown:
            out += ["", f"[variants.{_key(slug)}]", *_lines(shown, ["subject", "intro", "template", "body"])]
    out += ["+++", body.strip("\n"), ""]
    return "\n".join(out)


def release_fields(session: Session, release_id: int) -> tuple[dict[str, Any], str]:
    """``(front matter fields, body)`` of a stored release. Raises NotFoundError."""
    release = release_store.get_release(session, release_id)
    client = release_store.get_client_by_id(session, release.client_id)
    extra = release.extra or {}
    rows = release_store.release_segments(session, release_id)
    fields: dict[str, Any] = {
        "title": release.title,
        "client": client.slug,
        "subject": release.subject,
        "template": release.template,
        "segments": [seg.slug for _, seg in rows],
        "topics": extra.get("topics") or [],
        # local-hour delivery keeps its wall-clock time; send_at is then derived from it
        "send_at": None if release.send_at_local else release.send_at,
        "send_at_local": release.send_at_local,
        "timezone": release.timezone,
        "not_after": release.not_after,
        "embargo": _embargo(release.embargo_at, extra),
        "reply_to": extra.get("reply_to"),
        "dateline": extra.get("dateline"),
        "preheader": extra.get("preheader"),
        "intro": extra.get("intro"),
        "about": extra.get("about"),
        "booking_contact": extra.get("booking_contact"),
        "questions_heading": extra.get("questions_heading"),
        "questions": extra.get("questions") or [],
        "disclosure_placement": extra.get("disclosure_placement"),
        "booking": extra.get("booking") or {},
        "speakers": extra.get("speakers") or [],
        "speaker_groups": extra.get("speaker_groups") or [],
        "related": extra.get("related") or [],
        "variants": {
            seg.slug: {"subject": row.subject, "intro": row.intro, "template": row.template, "body": row.body}
            for row, seg in rows
        },
    }
    return fields, release.body


def _embargo(at: datetime | None, extra: Mapping[str, Any]) -> str | None:
    """The embargo as written: in its named zone when it had one (``2026-12-01 09:00
    America/New_York``, so each recipient still sees the zone's name), else as stored."""
    zone = extra.get("embargo_zone")
    if at is None or not isinstance(zone, str) or ("/" not in zone and zone != "UTC"):
        return extra.get("embargo")
    try:
        local = at.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return extra.get("embargo")
    return f"{local:%Y-%m-%d %H:%M} {zone}"


def release_file(session: Session, release_id: int) -> str:
    """The stored release as a release file. Raises NotFoundError."""
    fields, body = release_fields(session, release_id)
    return render_file(fields, body)
