"""A release file: Markdown with TOML front matter, parsed and validated (no database).

A release file::

    +++
    title = "..."                     # required
    client = "client-slug"            # required
    subject = "..."                   # required; Jinja, single line
    template = "media_advisory"       # required; a file pair in templates/
    segments = ["seg-a", "seg-b"]     # required; order = position
    send_at = 2026-12-01T14:00:00Z    # optional; a TOML datetime with an offset, or a string:
                                      # "2026-12-01 09:00 America/New_York"; never in the past
    send_at_local = "2026-12-02 09:00"  # optional, instead of send_at: that hour in each contact's zone
    timezone = "Europe/London"        # optional; the zone of contacts without a valid one (default UTC)
    not_after = 2026-12-01T20:00:00Z  # optional; not started by then: waits for a person
    embargo = "2026-12-01 09:00 America/New_York"   # optional; or ISO 8601 with an offset
    dateline = "WASHINGTON, Nov. 30, 2026"
    intro = "Dear {{ first_name | default('colleague') }},"
    about = "**About ...**"
    booking_contact = "..."           # free text; or the table [booking] below (linked)
    questions = ["...", "..."]
    questions_heading = "Questions we suggest"   # optional; default "Suggested questions"
    preheader = "..."                 # optional; the line mail programs show after the subject
    disclosure_placement = "block"    # "footer" (default) or "block": the client's disclosure
                                      # also stands in a conspicuous block above the body
    topics = ["foreign-policy"]       # optional; journalists who opted out of a topic are left out
    reply_to = "pat@example.com"      # optional; who gets replies forwarded (else the client's reply_to)
    [[speakers]]                      # "Available for interview"; bios may have paragraphs
    name = "..."; title = "..."; bio = "..."
    [[speaker_groups]]                # more groups, each with its own heading
    heading = "Other speakers available"
    speakers = [{ name = "...", title = "..." }]      # bio optional
    [[related]]                       # related articles (https)
    title = "..."; url = "https://..."
    [booking]                         # email becomes mailto:, phone tel:
    name = "..."; email = "..."; phone = "..."; note = "..."
    [variants.seg-b]                  # optional per-segment overrides
    subject = "..."; intro = "..."; template = "..."; body = "..."
    +++
    Markdown body (Jinja allowed)

Over 400 lines on purpose: one noun (the release file format) and its validation; every
key's check sits beside the others so errors name keys the same way.
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

from mailer.domain import localtime
from mailer.domain.addresses import normalize_email
from mailer.domain.embargo import check_embargo_after_send, parse_embargo
from mailer.domain.errors import InputError
from mailer.domain.when import parse_when
from mailer.message import Booking, RelatedLink, Speaker, SpeakerGroup, check_header_value

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
    body: str | None = None


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
    preheader: str | None = None
    speaker_groups: tuple[SpeakerGroup, ...] = ()
    questions_heading: str | None = None
    related: tuple[RelatedLink, ...] = ()
    booking: Booking | None = None
    disclosure_placement: str = "footer"
    reply_to: str | None = None
    #: local-hour delivery: the wall-clock time, as written ("2026-12-02 09:00")
    send_at_local: str | None = None
    #: the release's zone (IANA name) for contacts without a valid one
    timezone: str | None = None

    def extra(self) -> dict[str, Any]:
        """What goes into ``Release.extra`` (JSON); keys of issue 21 only when used, so
        releases that do not use them keep their stored shape."""
        later: dict[str, Any] = {
            "preheader": self.preheader,
            "speaker_groups": [
                {"heading": g.heading, "speakers": [dataclasses.asdict(s) for s in g.speakers]}
                for g in self.speaker_groups
            ],
            "questions_heading": self.questions_heading,
            "related": [dataclasses.asdict(r) for r in self.related],
            "booking": dataclasses.asdict(self.booking) if self.booking else None,
            "disclosure_placement": None if self.disclosure_placement == "footer" else self.disclosure_placement,
        }
        return {**self._first_extra(), **{k: v for k, v in later.items() if v}}

    def _first_extra(self) -> dict[str, Any]:
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
            "preheader": self.preheader,
            "reply_to": self.reply_to,
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
    "preheader",
    "reply_to",
    "speaker_groups",
    "questions_heading",
    "related",
    "booking",
    "disclosure_placement",
    "send_at_local",
    "timezone",
)
_VARIANT_KEYS = ("subject", "intro", "template", "body")
_BOOKING_KEYS = ("name", "email", "phone", "note")
_PLACEMENTS = ("footer", "block")
#: Labels an author may have typed before a booking contact that the templates print
#: themselves ("To book an interview: To book an interview: ..." was issue 21's double prefix).
_BOOKING_PREFIX = re.compile(
    r"^\s*(?:to book an interview|to book|booking|bookings|media contact|contact)\s*:\s*", re.I
)
_PHONE = re.compile(r"\+?[0-9][0-9 ().\-]{3,30}")
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
    """A TOML datetime with an offset, or a string: ISO 8601 with an offset or a time in a
    named zone (``"2026-12-01 09:00 America/New_York"``, :mod:`mailer.domain.when`);
    naive or bad → InputError."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_when(value, name)
    if not isinstance(value, datetime):
        kind = "a date without a time" if isinstance(value, date) else type(value).__name__
        raise InputError(f"{name}: expected a date and time with a zone, got {kind}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{name}: {value.isoformat()} has no time zone (e.g. add Z or -05:00)")
    return value


def parse_time(value: str, name: str) -> datetime:
    """A time with a zone, e.g. from ``--at``: ISO 8601 with an offset or a wall-clock
    time in a named zone (:func:`mailer.domain.when.parse_when`); InputError otherwise."""
    return parse_when(value, name)


def check_not_after(send_at: datetime | None, not_after: datetime | None, name: str) -> None:
    """InputError unless ``not_after`` (when given) comes after ``send_at`` (when given)."""
    if send_at is not None and not_after is not None and not_after <= send_at:
        raise InputError(f"{name}: not_after {not_after.isoformat()} is not after send_at {send_at.isoformat()}")


def parse_release(text: str, *, defaults: Mapping[str, Any] | None = None) -> ReleaseFile:
    """Parse and validate a release file (see the module docstring). ``defaults`` fills
    keys the front matter leaves out (a correction's client, template and segments come
    from the release it corrects).

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
    for key, value in (defaults or {}).items():
        data.setdefault(key, value)
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
            raise InputError(f"{name}: expected a table with subject, intro, template or body")
        bad = sorted(set(table) - set(_VARIANT_KEYS))
        if bad:
            raise InputError(f"{name}.{bad[0]}: unknown key (known: {', '.join(_VARIANT_KEYS)})")
        variants[slug] = VariantOverride(
            subject=_subject(_string(table, "subject", f"{name}.subject"), f"{name}.subject"),
            intro=_string(table, "intro", f"{name}.intro"),
            template=_string(table, "template", f"{name}.template", max_len=64),
            body=_variant_body(table, name),
        )
    questions = data.get("questions", [])
    if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
        raise InputError("questions: expected a list of strings")
    speakers = _speakers(data.get("speakers", []), "speakers")
    if not body.strip():
        raise InputError("body: the release has no text after the front matter")
    send_at = _aware(data.get("send_at"), "send_at")
    not_after = _aware(data.get("not_after"), "not_after")
    send_at_local, zone_name = _local_hour(data)
    if send_at_local is not None:
        if send_at is not None:
            raise InputError("send_at_local: give send_at or send_at_local, not both")
        send_at = localtime.earliest(localtime.parse_local(send_at_local))
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
        booking_contact=_booking_contact(_string(data, "booking_contact", "booking_contact")),
        questions=tuple(questions),
        speakers=speakers,
        topics=tuple(dict.fromkeys(topics)),
        preheader=_one_line(_string(data, "preheader", "preheader", max_len=300), "preheader"),
        speaker_groups=_speaker_groups(data.get("speaker_groups", [])),
        questions_heading=_one_line(
            _string(data, "questions_heading", "questions_heading", max_len=120), "questions_heading"
        ),
        related=_related(data.get("related", [])),
        booking=_booking(data.get("booking")),
        disclosure_placement=_placement(data.get("disclosure_placement", "footer")),
        reply_to=_reply_to(_string(data, "reply_to", "reply_to", max_len=320)),
        send_at_local=send_at_local,
        timezone=zone_name,
    )


def _reply_to(value: str | None) -> str | None:
    """The person replies are forwarded to: one address, single line."""
    if value is None or not value.strip():
        return None
    check_header_value("reply_to", value)
    if "@" not in value or any(c.isspace() or c in "<>,;" for c in value.strip()):
        raise InputError(f"reply_to: {value!r} is not one email address")
    return value.strip()


def _variant_body(table: Mapping[str, Any], name: str) -> str | None:
    body = _string(table, "body", f"{name}.body")
    if body is not None and not body.strip():
        raise InputError(f"{name}.body: empty (leave it out to use the release's body)")
    return body.strip("\n") if body is not None else None


def _one_line(value: str | None, name: str) -> str | None:
    if value is None or not value.strip():
        return None
    if "\n" in value or "\r" in value:
        raise InputError(f"{name}: one line only")
    return value.strip()


def _speakers(raw: Any, key: str) -> tuple[Speaker, ...]:
    """An array of ``{name, title, bio}`` tables; name required, title and bio optional."""
    if not isinstance(raw, list):
        raise InputError(f"{key}: expected an array of tables, each with name, title and bio")
    speakers: list[Speaker] = []
    for i, sp in enumerate(raw, 1):
        name = f"{key}[{i}]"
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
    return tuple(speakers)


def _speaker_groups(raw: Any) -> tuple[SpeakerGroup, ...]:
    if not isinstance(raw, list):
        raise InputError("speaker_groups: expected an array of tables, each with heading and speakers")
    groups: list[SpeakerGroup] = []
    for i, group in enumerate(raw, 1):
        name = f"speaker_groups[{i}]"
        if not isinstance(group, dict):
            raise InputError(f"{name}: expected a table with heading and speakers")
        bad = sorted(set(group) - {"heading", "speakers"})
        if bad:
            raise InputError(f"{name}.{bad[0]}: unknown key (known: heading, speakers)")
        heading = _one_line(_string(group, "heading", f"{name}.heading", max_len=120), f"{name}.heading")
        if heading is None:
            raise InputError(f'{name}.heading: required (e.g. "Other speakers available")')
        speakers = _speakers(group.get("speakers", []), f"{name}.speakers")
        if not speakers:
            raise InputError(f"{name}.speakers: at least one speaker")
        groups.append(SpeakerGroup(heading, speakers))
    return tuple(groups)


def _related(raw: Any) -> tuple[RelatedLink, ...]:
    if not isinstance(raw, list):
        raise InputError("related: expected an array of tables, each with title and url")
    links: list[RelatedLink] = []
    for i, item in enumerate(raw, 1):
        name = f"related[{i}]"
        if not isinstance(item, dict):
            raise InputError(f"{name}: expected a table with title and url")
        bad = sorted(set(item) - {"title", "url"})
        if bad:
            raise InputError(f"{name}.{bad[0]}: unknown key (known: title, url)")
        title = _one_line(_string(item, "title", f"{name}.title", max_len=300), f"{name}.title")
        url = _one_line(_string(item, "url", f"{name}.url", max_len=2000), f"{name}.url")
        if title is None or url is None:
            raise InputError(f"{name}: title and url are required")
        if not url.startswith("https://") or any(ch in url for ch in ' "<>'):
            raise InputError(f"{name}.url: {url!r} is not an https link")
        links.append(RelatedLink(title, url))
    return tuple(links)


def _booking(raw: Any) -> Booking | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InputError("booking: expected a table with name, email, phone and note")
    bad = sorted(set(raw) - set(_BOOKING_KEYS))
    if bad:
        raise InputError(f"booking.{bad[0]}: unknown key (known: {', '.join(_BOOKING_KEYS)})")
    values = {k: _one_line(_string(raw, k, f"booking.{k}", max_len=320), f"booking.{k}") for k in _BOOKING_KEYS}
    if values["name"] is not None:
        values["name"] = _BOOKING_PREFIX.sub("", values["name"]).strip() or None
    if values["email"] is not None:
        try:
            values["email"] = normalize_email(values["email"])
        except InputError as exc:
            raise InputError(f"booking.{exc}") from None
    if values["phone"] is not None and not _PHONE.fullmatch(values["phone"]):
        raise InputError(f"booking.phone: {values['phone']!r} is not a phone number (digits, spaces, + - . ( ))")
    if not any(values.values()):
        return None
    return Booking(**values)


def _booking_contact(value: str | None) -> str | None:
    """The free-text booking contact without a label the templates print themselves."""
    if value is None:
        return None
    return _BOOKING_PREFIX.sub("", value).strip() or None


def _placement(value: Any) -> str:
    if value not in _PLACEMENTS:
        raise InputError(f"disclosure_placement: {value!r} is not one of: {', '.join(_PLACEMENTS)}")
    return str(value)


def _local_hour(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``send_at_local`` (checked, normalized "YYYY-MM-DD HH:MM") and ``timezone`` (an IANA
    zone name) of the front matter; InputError naming the key."""
    local = _string(data, "send_at_local", "send_at_local", max_len=16)
    name = _string(data, "timezone", "timezone", max_len=64)
    if name is not None and localtime.zone(name) is None:
        raise InputError(f"timezone: {name!r} is not an IANA time zone name (e.g. Europe/London)")
    if local is None:
        return None, name
    return localtime.parse_local(local).strftime("%Y-%m-%d %H:%M"), name
