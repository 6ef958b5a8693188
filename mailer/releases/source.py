"""A release file: Markdown with TOML front matter, parsed and validated (no database).

A release file::

    +++
    title = "..."                     # required
    client = "client-slug"            # required
    subject = "..."                   # required; Jinja, single line
    template = "media_advisory"       # required; a file pair in templates/
    segments = ["seg-a", "seg-b"]     # required; order = position
    send_at = 2026-12-01T14:00:00Z    # optional; ISO 8601 with a zone (TOML datetime or string)
    not_after = 2026-12-01T20:00:00Z  # optional; not started by then: waits for a person
    embargo = "2026-12-01 09:00 America/New_York"   # optional; or ISO 8601 with an offset
    dateline = "WASHINGTON, Nov. 30, 2026"
    intro = "Dear {{ first_name | default('colleague') }},"
    about = "**About ...**"
    booking_contact = "..."
    questions = ["...", "..."]
    topics = ["foreign-policy"]       # optional; journalists who opted out of a topic are left out
    [[speakers]]
    name = "..."; title = "..."; bio = "..."
    [variants.seg-b]                  # optional per-segment overrides
    subject = "..."; intro = "..."; template = "..."
    +++
    Markdown body (Jinja allowed)
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from mailer.domain.embargo import check_embargo_after_send, parse_embargo
from mailer.domain.errors import InputError
from mailer.message import Speaker, check_header_value

__all__ = [
    "ReleaseFile",
    "VariantOverride",
    "check_not_after",
    "parse_release",
    "parse_time",
    "read_text_file",
]


def read_text_file(path: Path) -> str:
    """The UTF-8 text of ``path`` (a BOM is dropped); InputError when unreadable."""
    try:
        return path.read_text("utf-8-sig")
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc


@dataclass(frozen=True)
class VariantOverride:
    """A segment's overrides; None means "as the release"."""

    subject: str | None = None
    intro: str | None = None
    template: str | None = None


@dataclass(frozen=True)
class ReleaseFile:
    """A parsed, validated release file (before client/segment/template lookups)."""

    title: str
    client: str
    subject: str
    template: str
    segments: tuple[str, ...]
    body: str
    variants: Mapping[str, VariantOverride] = field(default_factory=dict)
    send_at: datetime | None = None
    not_after: datetime | None = None
    #: the embargo's lift, aware in the zone it was written in (a named zone or an offset)
    embargo: datetime | None = None
    #: that zone: an IANA name (``America/New_York``), ``UTC`` or an offset (``-05:00``)
    embargo_zone: str | None = None
    dateline: str | None = None
    intro: str | None = None
    about: str | None = None
    booking_contact: str | None = None
    questions: tuple[str, ...] = ()
    speakers: tuple[Speaker, ...] = ()
    topics: tuple[str, ...] = ()

    def extra(self) -> dict[str, Any]:
        """What goes into ``Release.extra`` (JSON)."""
        return {
            "dateline": self.dateline,
            "intro": self.intro,
            "about": self.about,
            "booking_contact": self.booking_contact,
            "questions": list(self.questions),
            "speakers": [dataclasses.asdict(s) for s in self.speakers],
            "embargo": self.embargo.isoformat() if self.embargo else None,
            "embargo_zone": self.embargo_zone,
            "topics": list(self.topics),
        }


_REQUIRED = ("title", "client", "subject", "template", "segments")
_OPTIONAL = (
    "variants",
    "send_at",
    "not_after",
    "embargo",
    "dateline",
    "intro",
    "about",
    "booking_contact",
    "questions",
    "speakers",
    "topics",
)
_VARIANT_KEYS = ("subject", "intro", "template")
_TOPIC = re.compile(r"[a-z0-9][a-z0-9\-]{0,63}")
_SPEAKER_KEYS = ("name", "title", "bio")
_FENCE = "+++"


def _split_front_matter(text: str) -> tuple[str, str]:
    """(front matter TOML, body) of a release file; InputError when the fences are wrong."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff").split("\n")
    if not lines or lines[0].strip() != _FENCE:
        raise InputError("front matter: the file must start with a '+++' line")
    for i, line in enumerate(lines[1:], 1):
        if line.strip() == _FENCE:
            return "\n".join(lines[1:i]), "\n".join(lines[i + 1 :]).strip("\n")
    raise InputError("front matter: no closing '+++' line")


def _string(data: Mapping[str, Any], key: str, name: str, *, max_len: int | None = None) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{name}: expected a string, got {type(value).__name__}")
    if max_len is not None and len(value) > max_len:
        raise InputError(f"{name}: at most {max_len} characters")
    return value


def _subject(value: str | None, name: str) -> str | None:
    """A subject template: single line (no header injection), at most 500 characters."""
    if value is None:
        return None
    check_header_value(name, value)
    if len(value) > 500:
        raise InputError(f"{name}: at most 500 characters")
    return value.strip()


def _aware(value: Any, name: str) -> datetime | None:
    """A TOML datetime or ISO 8601 string with a time zone; naive or bad → InputError."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise InputError(f"{name}: {value!r} is not an ISO 8601 time (e.g. 2026-12-01T09:00:00-05:00)") from exc
    if not isinstance(value, datetime):
        kind = "a date without a time" if isinstance(value, date) else type(value).__name__
        raise InputError(f"{name}: expected a date and time with a zone, got {kind}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{name}: {value.isoformat()} has no time zone (e.g. add Z or -05:00)")
    return value


def parse_time(value: str, name: str) -> datetime:
    """An ISO 8601 time with a zone, e.g. from ``--at``; InputError otherwise."""
    parsed = _aware(value, name)
    assert parsed is not None
    return parsed


def check_not_after(send_at: datetime | None, not_after: datetime | None, name: str) -> None:
    """InputError unless ``not_after`` (when given) comes after ``send_at`` (when given)."""
    if send_at is not None and not_after is not None and not_after <= send_at:
        raise InputError(f"{name}: not_after {not_after.isoformat()} is not after send_at {send_at.isoformat()}")


def parse_release(text: str) -> ReleaseFile:
    """Parse and validate a release file (see the module docstring).

    Raises InputError naming the key: missing fences, bad TOML, unknown or missing keys,
    wrong types, naive times, CR/LF in a subject, a duplicate segment, a variant for a
    segment that is not listed, an empty body. Names are checked for shape here; whether
    the client, segments and templates exist is checked by
    :func:`mailer.releases.authoring.create_release`.
    """
    head, body = _split_front_matter(text)
    try:
        data = tomllib.loads(head)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"front matter: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise InputError(f"{unknown[0]}: unknown key in the front matter")
    for key in _REQUIRED:
        if key not in data:
            raise InputError(f"{key}: required in the front matter")
    title = _string(data, "title", "title", max_len=300)
    client = _string(data, "client", "client", max_len=64)
    subject = _subject(_string(data, "subject", "subject"), "subject")
    template = _string(data, "template", "template", max_len=64)
    assert title is not None and client is not None and subject is not None and template is not None
    if not title.strip():
        raise InputError("title: empty")
    segments = data["segments"]
    if not isinstance(segments, list) or not segments or not all(isinstance(s, str) for s in segments):
        raise InputError("segments: expected a non-empty list of segment slugs")
    if len(set(segments)) != len(segments):
        dup = next(s for s in segments if segments.count(s) > 1)
        raise InputError(f"segments: {dup!r} is listed twice")
    variants: dict[str, VariantOverride] = {}
    raw_variants = data.get("variants", {})
    if not isinstance(raw_variants, dict):
        raise InputError("variants: expected one table per segment (variants.SEGMENT)")
    for slug, table in raw_variants.items():
        name = f"variants.{slug}"
        if slug not in segments:
            raise InputError(f"{name}: {slug!r} is not in segments")
        if not isinstance(table, dict):
            raise InputError(f"{name}: expected a table with subject, intro or template")
        bad = sorted(set(table) - set(_VARIANT_KEYS))
        if bad:
            raise InputError(f"{name}.{bad[0]}: unknown key (known: {', '.join(_VARIANT_KEYS)})")
        variants[slug] = VariantOverride(
            subject=_subject(_string(table, "subject", f"{name}.subject"), f"{name}.subject"),
            intro=_string(table, "intro", f"{name}.intro"),
            template=_string(table, "template", f"{name}.template", max_len=64),
        )
    questions = data.get("questions", [])
    if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
        raise InputError("questions: expected a list of strings")
    speakers: list[Speaker] = []
    raw_speakers = data.get("speakers", [])
    if not isinstance(raw_speakers, list):
        raise InputError("speakers: expected an array of tables (speakers), each with name, title and bio")
    for i, sp in enumerate(raw_speakers, 1):
        name = f"speakers[{i}]"
        if not isinstance(sp, dict):
            raise InputError(f"{name}: expected a table with name, title and bio")
        bad = sorted(set(sp) - set(_SPEAKER_KEYS))
        if bad:
            raise InputError(f"{name}.{bad[0]}: unknown key (known: {', '.join(_SPEAKER_KEYS)})")
        sp_name = _string(sp, "name", f"{name}.name")
        if not sp_name or not sp_name.strip():
            raise InputError(f"{name}.name: required")
        speakers.append(
            Speaker(
                name=sp_name.strip(),
                title=(_string(sp, "title", f"{name}.title") or "").strip(),
                bio=(_string(sp, "bio", f"{name}.bio") or "").strip(),
            )
        )
    if not body.strip():
        raise InputError("body: the release has no text after the front matter")
    send_at = _aware(data.get("send_at"), "send_at")
    not_after = _aware(data.get("not_after"), "not_after")
    check_not_after(send_at, not_after, "not_after")
    embargo = parse_embargo(data.get("embargo"), "embargo")
    if embargo is not None:
        problem = check_embargo_after_send(embargo.at, send_at)
        if problem is not None:
            raise InputError(f"embargo: {problem}")
    topics = data.get("topics", [])
    if not isinstance(topics, list) or not all(isinstance(t, str) and _TOPIC.fullmatch(t) for t in topics):
        raise InputError("topics: expected a list of beats like \"foreign-policy\" (lower-case letters, digits, '-')")
    return ReleaseFile(
        title=title.strip(),
        client=client.strip(),
        subject=subject,
        template=template.strip(),
        segments=tuple(segments),
        body=body,
        variants=variants,
        send_at=send_at,
        not_after=not_after,
        embargo=embargo.local() if embargo is not None else None,
        embargo_zone=embargo.zone if embargo is not None else None,
        dateline=_string(data, "dateline", "dateline"),
        intro=_string(data, "intro", "intro"),
        about=_string(data, "about", "about"),
        booking_contact=_string(data, "booking_contact", "booking_contact"),
        questions=tuple(questions),
        speakers=tuple(speakers),
        topics=tuple(dict.fromkeys(topics)),
    )
