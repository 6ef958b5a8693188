"""Releases: authoring (Markdown + TOML front matter), clients, workflow, content hash,
previews and proofs, and the send plan the delivery engine runs from.

A release file::

    +++
    title = "..."                     # required
    client = "client-slug"            # required
    subject = "..."                   # required; Jinja, single line
    template = "media_advisory"       # required; a file pair in templates/
    segments = ["seg-a", "seg-b"]     # required; order = position
    send_at = 2026-12-01T14:00:00Z    # optional; ISO 8601 with a zone (TOML datetime or string)
    not_after = 2026-12-01T20:00:00Z  # optional; not started by then: waits for a person
    embargo = "2026-12-01T05:00:00-05:00"
    dateline = "WASHINGTON, Nov. 30, 2026"
    intro = "Dear {{ first_name | default('colleague') }},"
    about = "**About ...**"
    booking_contact = "..."
    questions = ["...", "..."]
    [[speakers]]
    name = "..."; title = "..."; bio = "..."
    [variants.seg-b]                  # optional per-segment overrides
    subject = "..."; intro = "..."; template = "..."
    +++
    Markdown body (Jinja allowed)

Workflow (``mailer.domain.states`` holds the legal moves): ``draft → submitted`` runs
:func:`mailer.releases.compliance.check_release` and stores the content hash; ``submitted →
approved`` needs a second person (not the author, not anyone who edited the content, not
the submitter) and the same hash; editing a submitted or approved release returns it to
``draft``. An approved release that is late or that the send fence says was already
started waits for a person (:mod:`mailer.releases.holds`). Every move is a ``ReleaseEvent`` (from, to, actor, at,
note); so is every edit and schedule change.

The content hash is SHA-256 over, in segment order, each segment's slug and
:func:`mailer.message.fingerprint` of its :class:`VariantSpec`: everything that shapes the
bytes except the per-recipient fields (and the Date, Message-ID and unsubscribe token).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from mailer.audience.contacts import check_slug, normalize_email
from mailer.config import Settings
from mailer.domain.errors import InputError, NotFoundError, WorkflowError
from mailer.domain.states import Outcome, ReleaseStatus, require_release_move
from mailer.message import (
    IsolatedRenderer,
    Recipient,
    RenderedParts,
    Renderer,
    RenderLimits,
    Sender,
    Speaker,
    Variant,
    VariantSpec,
    check_header_value,
    fingerprint,
)
from mailer.releases import compliance, holds, workflow
from mailer.releases.compliance import BLANK_RECIPIENT, ComplianceReport
from mailer.smtp.factory import send_one
from mailer.store import contacts as contact_store
from mailer.store import deliveries as delivery_store
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.tables import Approval, Client, Contact, Release, ReleaseSegment

__all__ = [
    "ApprovalResult",
    "ClientFields",
    "Preview",
    "ProofResult",
    "ReleaseFile",
    "SendPlan",
    "VariantOverride",
    "approve_release",
    "build_send_plan",
    "cancel_release",
    "client_fields",
    "content_hash",
    "create_client",
    "create_release",
    "load_client_file",
    "parse_release",
    "preview_release",
    "read_text_file",
    "recipient_for",
    "release_content_hash",
    "render_limits",
    "renderer_for",
    "require_approved_plan",
    "schedule_release",
    "send_proof",
    "submit_release",
    "update_release",
    "variant_specs",
]

PROOF_SUBJECT_PREFIX = "[PROOF] "
PROOF_HEADER = b"X-Mailer-Proof: yes\r\n"
#: Statuses whose approval still stands (and from which the engine may send).
_APPROVED_STATES = frozenset(
    {ReleaseStatus.APPROVED, ReleaseStatus.SENDING, ReleaseStatus.PAUSED, ReleaseStatus.SENT, ReleaseStatus.PARTIAL}
)
#: Statuses in which the content may still be edited (it then returns to draft).
_EDITABLE = frozenset({ReleaseStatus.DRAFT, ReleaseStatus.SUBMITTED, ReleaseStatus.APPROVED})
_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def render_limits(settings: Settings) -> RenderLimits:
    """The ``[render]`` settings as the render process's limits."""
    r = settings.render
    return RenderLimits(
        time_limit=r.time_limit, max_message_bytes=r.max_message_bytes, memory_limit_mb=r.memory_limit_mb
    )


def renderer_for(settings: Settings) -> Renderer:
    """The renderer over ``settings.paths.templates_dir`` (read once, at construction);
    its variants compile and render in a render process under ``settings.render``."""
    return IsolatedRenderer(settings.paths.templates_dir, limits=render_limits(settings))


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


# ============================================================================ clients


@dataclass(frozen=True)
class ClientFields:
    """A validated client: addresses normalized, header fields single-line."""

    slug: str
    name: str
    from_name: str
    from_address: str
    reply_to: str | None
    postal_address: str
    disclosure: str | None

    def values(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_CLIENT_REQUIRED = ("slug", "name", "from_name", "from_address", "postal_address")
_CLIENT_OPTIONAL = ("reply_to", "disclosure")


def client_fields(data: Mapping[str, Any]) -> ClientFields:
    """Validate a client definition (from options or a TOML file).

    Raises InputError naming the key: unknown or missing keys, non-strings, a bad slug,
    an invalid address (email-validator, no DNS), CR/LF in a header field (name,
    from_name), an empty postal address.
    """
    unknown = sorted(set(data) - set(_CLIENT_REQUIRED) - set(_CLIENT_OPTIONAL))
    if unknown:
        raise InputError(f"{unknown[0]}: unknown key (known: {', '.join(_CLIENT_REQUIRED + _CLIENT_OPTIONAL)})")
    values: dict[str, str | None] = {}
    for key in _CLIENT_REQUIRED + _CLIENT_OPTIONAL:
        value = data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if key in _CLIENT_REQUIRED:
                raise InputError(f"{key}: required")
            values[key] = None
            continue
        if not isinstance(value, str):
            raise InputError(f"{key}: expected a string")
        values[key] = value.strip()
    slug = check_slug(str(values["slug"]), "client")
    name = check_header_value("name", str(values["name"]))
    from_name = check_header_value("from_name", str(values["from_name"]))
    if len(name) > 200 or len(from_name) > 200:
        raise InputError(f"{'name' if len(name) > 200 else 'from_name'}: at most 200 characters")
    from_address = _address("from_address", str(values["from_address"]))
    reply_to = _address("reply_to", values["reply_to"]) if values["reply_to"] else None
    return ClientFields(
        slug=slug,
        name=name,
        from_name=from_name,
        from_address=from_address,
        reply_to=reply_to,
        postal_address=str(values["postal_address"]),
        disclosure=values["disclosure"],
    )


def _address(key: str, value: str) -> str:
    try:
        return normalize_email(value)
    except InputError as exc:
        raise InputError(f"{key}: {exc}") from exc


def load_client_file(path: Path) -> dict[str, Any]:
    """The keys of a client TOML file (not yet validated); InputError when unreadable."""
    try:
        return tomllib.loads(read_text_file(path))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from exc


def create_client(session: Session, fields: ClientFields, *, now: datetime) -> Client:
    """Writes: a new client. Raises InputError when the slug is taken."""
    return release_store.insert_client(session, fields.values(), now=now)


# ====================================================================== release files


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
    embargo: datetime | None = None
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
    the client, segments and templates exist is checked by :func:`create_release`.
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
        embargo=_aware(data.get("embargo"), "embargo"),
        dateline=_string(data, "dateline", "dateline"),
        intro=_string(data, "intro", "intro"),
        about=_string(data, "about", "about"),
        booking_contact=_string(data, "booking_contact", "booking_contact"),
        questions=tuple(questions),
        speakers=tuple(speakers),
        topics=tuple(dict.fromkeys(topics)),
    )


def _check_template(renderer: Renderer, name: str, key: str) -> None:
    if (
        not _TEMPLATE_NAME.fullmatch(name)
        or name == "base"
        or not all(f"{name}{suffix}" in renderer.sources for suffix in (".html", ".txt"))
    ):
        have = sorted(
            n.removesuffix(".html")
            for n in renderer.sources
            if n.endswith(".html") and "/" not in n and n != "base.html"
        )
        raise InputError(f"{key}: no template {name!r} in {renderer.templates_dir} (have: {', '.join(have)})")


def _resolve(session: Session, parsed: ReleaseFile, renderer: Renderer) -> tuple[Client, list[ReleaseSegment]]:
    """Look up the client, segments and templates the file names; InputError naming the key."""
    client = release_store.find_client(session, parsed.client)
    if client is None:
        raise InputError(f"client: no client {parsed.client!r} (see `mailer clients list`)")
    _check_template(renderer, parsed.template, "template")
    found = release_store.find_segments(session, parsed.segments)
    rows: list[ReleaseSegment] = []
    for position, slug in enumerate(parsed.segments):
        if slug not in found:
            raise InputError(f"segments: no segment {slug!r} (see `mailer segments list`)")
        variant = parsed.variants.get(slug, VariantOverride())
        if variant.template is not None:
            _check_template(renderer, variant.template, f"variants.{slug}.template")
        rows.append(
            ReleaseSegment(
                segment_id=found[slug].id,
                position=position,
                subject=variant.subject,
                intro=variant.intro,
                template=variant.template,
            )
        )
    return client, rows


def _apply(release: Release, parsed: ReleaseFile, client: Client) -> None:
    release.client_id = client.id
    release.title = parsed.title
    release.subject = parsed.subject
    release.template = parsed.template
    release.body = parsed.body
    release.extra = parsed.extra()
    release.send_at = parsed.send_at.astimezone(UTC) if parsed.send_at else None
    release.not_after = parsed.not_after.astimezone(UTC) if parsed.not_after else None
    release.embargo_at = parsed.embargo.astimezone(UTC) if parsed.embargo else None


def check_actor(actor: str) -> str:
    """A user name for the history: non-empty, one line, at most 320 characters."""
    actor = actor.strip()
    if not actor:
        raise InputError("--as: a user name is required (or set MAILER_USER)")
    check_header_value("--as", actor)
    if len(actor) > 320:
        raise InputError("--as: at most 320 characters")
    return actor


def create_release(session: Session, text: str, *, author: str, renderer: Renderer, now: datetime) -> Release:
    """Writes: a new draft release from a release file, its segments and a creation event.

    Raises InputError (naming the key) for a bad file or an unknown client, segment or
    template.
    """
    author = check_actor(author)
    parsed = parse_release(text)
    client, rows = _resolve(session, parsed, renderer)
    release = Release(status=ReleaseStatus.DRAFT.value, author=author, created_at=now, updated_at=now)
    _apply(release, parsed, client)
    release_store.insert_release(session, release)
    for row in rows:
        row.release_id = release.id
    release_store.replace_release_segments(session, release.id, rows)
    release_store.add_editor(session, release.id, author, now=now)
    release_store.add_release_event(
        session, release.id, from_status=None, to_status=release.status, actor=author, note="created", now=now
    )
    return release


def update_release(
    session: Session, release_id: int, text: str, *, actor: str, renderer: Renderer, now: datetime
) -> Release:
    """Writes: replace the release's content with a release file.

    A submitted or approved release returns to draft (its stored hash is cleared and the
    approval no longer matches); the move is recorded. Releases that are sending or
    finished cannot be edited (WorkflowError). Raises InputError as :func:`create_release`.
    """
    actor = check_actor(actor)
    release = release_store.get_release(session, release_id, for_update=True)
    status = ReleaseStatus(release.status)
    if status not in _EDITABLE:
        raise WorkflowError(f"release {release_id} is {status.value}: it can no longer be edited")
    parsed = parse_release(text)
    client, rows = _resolve(session, parsed, renderer)
    _apply(release, parsed, client)
    for row in rows:
        row.release_id = release.id
    release_store.replace_release_segments(session, release.id, rows)
    release_store.add_editor(session, release.id, actor, now=now)
    note = "edited"
    if status is not ReleaseStatus.DRAFT:
        require_release_move(status, ReleaseStatus.DRAFT)
        note = f"edited while {status.value}: back to draft, approval needed again"
    _move(session, release, ReleaseStatus.DRAFT, actor=actor, note=note, now=now)
    release.content_hash = None
    holds.clear(release)
    return release


def _move(
    session: Session, release: Release, to: ReleaseStatus, *, actor: str, note: str | None, now: datetime
) -> None:
    """Move ``release`` (legality checked by the caller) through the workflow's one writer."""
    workflow.move(session, release.id, to, actor=actor, now=now, note=note, src=ReleaseStatus(release.status))


# ====================================================================== specs and hash


def _embargo_text(iso: str | None) -> str | None:
    """``2026-12-01T05:00:00-05:00`` → ``1 December 2026, 05:00 UTC-05:00`` (no locale)."""
    if not iso:
        return None
    dt = datetime.fromisoformat(iso)
    offset = dt.strftime("%z")
    zone = "UTC" if offset in ("+0000", "-0000", "") else f"UTC{offset[:3]}:{offset[3:5]}"
    return f"{dt.day} {_MONTHS[dt.month - 1]} {dt.year}, {dt:%H:%M} {zone}"


def spec_for(release: Release, client: Client, row: ReleaseSegment, settings: Settings) -> VariantSpec:
    """The VariantSpec of one segment of a release (the release with the segment's overrides)."""
    extra = release.extra or {}
    return VariantSpec(
        release_key=str(release.id),
        template=row.template or release.template,
        subject=row.subject or release.subject,
        title=release.title,
        dateline=extra.get("dateline"),
        intro=row.intro if row.intro is not None else extra.get("intro"),
        body_markdown=release.body,
        sender=Sender(client.from_name, client.from_address, client.reply_to, client.postal_address, client.disclosure),
        list_id=f"{client.name} <{client.slug}.{settings.sender.message_id_domain}>",
        feedback_id=f"{release.id}:{client.slug}:mailer",
        speakers=tuple(Speaker(s["name"], s.get("title", ""), s.get("bio", "")) for s in extra.get("speakers", [])),
        questions=tuple(extra.get("questions", [])),
        booking_contact=extra.get("booking_contact"),
        embargo=_embargo_text(extra.get("embargo")),
        about=extra.get("about"),
    )


def variant_specs(session: Session, release_id: int, settings: Settings) -> list[tuple[int, str, VariantSpec]]:
    """``(segment_id, segment_slug, spec)`` for each segment of the release, by position.

    Raises NotFoundError for an unknown release.
    """
    release = release_store.get_release(session, release_id)
    client = release_store.get_client_by_id(session, release.client_id)
    return [
        (seg.id, seg.slug, spec_for(release, client, row, settings))
        for row, seg in release_store.release_segments(session, release_id)
    ]


def content_hash(specs: list[tuple[int, str, VariantSpec]], renderer: Renderer, topics: tuple[str, ...] = ()) -> str:
    """SHA-256 hex over each segment's slug and the fingerprint of its spec, in order,
    and the release's topics (they decide who is left out).

    Raises TemplateError when a template is missing or does not parse.
    """
    digest = hashlib.sha256()
    if topics:
        digest.update(b"topics\x00" + "\x00".join(topics).encode("utf-8") + b"\n")
    for _, slug, spec in specs:
        digest.update(slug.encode("utf-8") + b"\x00" + fingerprint(spec, renderer).encode("ascii") + b"\n")
    return digest.hexdigest()


def release_content_hash(session: Session, release_id: int, renderer: Renderer, settings: Settings) -> str:
    """The content hash of the release as it would be sent now."""
    return content_hash(variant_specs(session, release_id, settings), renderer, release_topics(session, release_id))


def release_topics(session: Session, release_id: int) -> tuple[str, ...]:
    """The topics a release names in its front matter (for topic opt-outs)."""
    release = release_store.get_release(session, release_id)
    return tuple((release.extra or {}).get("topics") or ())


# ====================================================================== the send plan


@dataclass(frozen=True)
class SendPlan:
    """Everything the delivery engine needs to render a release, compiled once."""

    release_id: int
    client_slug: str
    sender_address: str  # client's from_address (the From header); envelope sender is VERP, not this
    content_hash: str
    variants: dict[int, Variant]  # segment_id -> compiled variant
    segment_order: tuple[int, ...]  # segment ids by position
    topics: tuple[str, ...] = ()  # journalists who opted out of one of these are left out


def build_send_plan(session: Session, release_id: int, renderer: Renderer, settings: Settings) -> SendPlan:
    """Compile every segment's variant and hash the release as it will be sent.

    Does not check approval (see :func:`require_approved_plan`). Raises NotFoundError,
    TemplateError, and InputError/HeaderInjectionError for sender fields unfit for a header.
    """
    release = release_store.get_release(session, release_id)
    client = release_store.get_client_by_id(session, release.client_id)
    specs = variant_specs(session, release_id, settings)
    topics = release_topics(session, release_id)
    return SendPlan(
        release_id=release_id,
        client_slug=client.slug,
        sender_address=client.from_address,
        topics=topics,
        content_hash=content_hash(specs, renderer, topics),
        variants={segment_id: renderer.compile(spec) for segment_id, _, spec in specs},
        segment_order=tuple(segment_id for segment_id, _, _ in specs),
    )


def require_approved_plan(session: Session, release_id: int, plan: SendPlan) -> None:
    """Raise WorkflowError unless the release stands approved (approved, sending, paused,
    sent or partial) and its newest approval's hash equals ``plan.content_hash``.

    Any edit returns a release to draft, so the status check voids approvals taken
    before an edit even if the content is later edited back to the same bytes.
    """
    release = release_store.get_release(session, release_id)
    if ReleaseStatus(release.status) not in _APPROVED_STATES:
        raise WorkflowError(f"release {release_id} is {release.status}, not approved: refusing to send")
    approval = release_store.latest_approval(session, release_id)
    if approval is None:
        raise WorkflowError(f"release {release_id} has no approval: refusing to send")
    if approval.content_hash != plan.content_hash:
        raise WorkflowError(
            f"release {release_id} changed since {approval.approver} approved it "
            f"(approved {approval.content_hash[:12]}, now {plan.content_hash[:12]}): refusing to send"
        )


def recipient_for(contact: Contact) -> Recipient:
    """The render recipient for a contact; attribute values become strings (None → "")."""
    attributes = {
        str(k): ("" if v is None else v if isinstance(v, str) else str(v))
        for k, v in (contact.attributes or {}).items()
    }
    return Recipient(
        email=contact.email or "",
        first_name=contact.first_name or "",
        last_name=contact.last_name or "",
        outlet=contact.outlet or "",
        attributes=attributes,
    )


# ========================================================================== workflow


def _sample_recipient(session: Session, rule: str) -> Recipient:
    contact = release_store.first_segment_contact(session, rule)
    return recipient_for(contact) if contact is not None else BLANK_RECIPIENT


def _check_smtputf8(
    session: Session, rules: list[str], settings: Settings, report: ComplianceReport
) -> ComplianceReport:
    """``report`` plus a failure when the audience holds addresses with a non-ASCII local
    part and the relay is not known to offer SMTPUTF8 (RFC 6531; issue 12): they would
    fail at send."""
    setting = settings.smtp.smtputf8
    if setting == "yes":
        return report
    count, sample = contact_store.addresses_needing_smtputf8(session, rules)
    if not count:
        return report
    shown = ", ".join(sample) + (", ..." if count > len(sample) else "")
    failure = (
        f"{count} recipient{'s have' if count > 1 else ' has'} a non-ASCII local part ({shown}), which needs a "
        f'relay offering SMTPUTF8 (RFC 6531), and smtp.smtputf8 is "{setting}": set it to "yes" if the relay '
        "offers SMTPUTF8, or leave these contacts out of the segments"
    )
    return dataclasses.replace(report, failures=(*report.failures, failure))


def submit_release(
    session: Session, release_id: int, *, actor: str, renderer: Renderer, settings: Settings, now: datetime
) -> ComplianceReport:
    """Writes: ``draft → submitted`` after the compliance checks; stores the content hash.

    Raises WorkflowError when the move is not allowed or when any check fails (all
    failures listed in one message); returns the report (its warnings) on success.
    """
    actor = check_actor(actor)
    release = release_store.get_release(session, release_id, for_update=True)
    require_release_move(ReleaseStatus(release.status), ReleaseStatus.SUBMITTED)
    specs = variant_specs(session, release_id, settings)
    segments = {seg.id: seg for _, seg in release_store.release_segments(session, release_id)}
    checks = [(slug, spec, _sample_recipient(session, segments[sid].rule)) for sid, slug, spec in specs]
    report = compliance.check_release(checks, renderer, settings)
    report = _check_smtputf8(session, [seg.rule for seg in segments.values()], settings, report)
    report.require_ok(f"release {release_id}")
    release.content_hash = content_hash(specs, renderer, release_topics(session, release_id))
    note = "checks passed" + "".join(f"; warning: {w}" for w in report.warnings)
    _move(session, release, ReleaseStatus.SUBMITTED, actor=actor, note=note, now=now)
    return report


@dataclass(frozen=True)
class ApprovalResult:
    """The outcome of :func:`approve_release`.

    ``approval`` is None when the approval was refused because the content changed
    since submission; the release was then returned to draft (``refused`` says why).
    The caller commits first, then reports the refusal.
    """

    approval: Approval | None
    content_hash: str
    refused: str | None = None


def approve_release(
    session: Session, release_id: int, *, approver: str, renderer: Renderer, settings: Settings, now: datetime
) -> ApprovalResult:
    """Writes: ``submitted → approved`` with an Approval bound to the content hash.

    Raises WorkflowError when the release is not submitted, or when the approver wrote
    it, edited its content or submitted it (two-person rule). When the content hash no
    longer matches the one stored at submission (templates or client changed), the
    release goes back to draft and the result says so (no exception: the move must be
    committed).
    """
    approver = check_actor(approver)
    release = release_store.get_release(session, release_id, for_update=True)
    require_release_move(ReleaseStatus(release.status), ReleaseStatus.APPROVED)
    _require_second_person(session, release, approver)
    current = release_content_hash(session, release_id, renderer, settings)
    if current != release.content_hash:
        reason = (
            f"release {release_id} changed since it was submitted "
            f"({(release.content_hash or '-')[:12]} → {current[:12]}): back to draft, submit it again"
        )
        _move(session, release, ReleaseStatus.DRAFT, actor=approver, note=reason, now=now)
        release.content_hash = None
        return ApprovalResult(None, current, reason)
    approval = release_store.add_approval(session, release_id, approver=approver, content_hash=current, now=now)
    holds.clear(release)
    # The identity must exist before any backup of an approved release can be taken (the
    # migration creates it; this covers a database whose meta row was lost).
    release_store.database_identity(session)
    _move(session, release, ReleaseStatus.APPROVED, actor=approver, note=f"approved {current[:12]}", now=now)
    return ApprovalResult(approval, current)


def _require_second_person(session: Session, release: Release, approver: str) -> None:
    """WorkflowError unless ``approver`` is none of: the author, anyone who edited the
    content, the person who submitted it (names compared case-insensitively)."""
    me = approver.casefold()
    roles = [("wrote", release.author)]
    roles += [("edited", editor) for editor in release_store.release_editors(session, release.id)]
    submitter = release_store.latest_submitter(session, release.id)
    if submitter is not None:
        roles.append(("submitted", submitter))
    done = [what for what, who in roles if who.strip().casefold() == me]
    if "wrote" in done and "edited" in done:
        done.remove("edited")  # the author is recorded as the first editor
    if done:
        raise WorkflowError(
            f"{approver} {' and '.join(dict.fromkeys(done))} release {release.id}: "
            "a second person, who did not write, edit or submit it, must approve it"
        )


def schedule_release(
    session: Session,
    release_id: int,
    *,
    at: datetime | None,
    actor: str,
    now: datetime,
    not_after: datetime | None = None,
) -> Release:
    """Writes: set ``send_at`` and/or ``not_after`` (recorded as an event that keeps the status).

    Allowed before sending starts (draft, submitted, approved) and while paused; a new
    time clears a late hold (it is a new decision, see :mod:`mailer.releases.holds`). A naive
    time, neither time given, or a ``not_after`` not after the send time is an
    InputError; other states raise WorkflowError.
    """
    actor = check_actor(actor)
    for name, value in (("--at", at), ("--not-after", not_after)):
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise InputError(f"{name}: give a time zone (e.g. 2026-12-01T09:00:00-05:00)")
    if at is None and not_after is None:
        raise InputError("--at or --not-after: give a time")
    release = release_store.get_release(session, release_id, for_update=True)
    status = ReleaseStatus(release.status)
    if status not in _EDITABLE | {ReleaseStatus.PAUSED}:
        raise WorkflowError(f"release {release_id} is {status.value}: its send time can no longer change")
    check_not_after(at or release.send_at, not_after or release.not_after, "--not-after" if not_after else "--at")
    notes = []
    if at is not None:
        release.send_at = at.astimezone(UTC)
        notes.append(f"send_at set to {at.isoformat()}")
    if not_after is not None:
        release.not_after = not_after.astimezone(UTC)
        notes.append(f"not_after set to {not_after.isoformat()}")
    holds.clear(release)
    release.updated_at = now
    release_store.add_release_event(
        session,
        release_id,
        from_status=status.value,
        to_status=status.value,
        actor=actor,
        note="; ".join(notes),
        now=now,
    )
    return release


def cancel_release(session: Session, release_id: int, *, actor: str, now: datetime, note: str | None = None) -> Release:
    """Writes: move the release to cancelled; WorkflowError when that is not allowed.

    A release cancelled while sending (or paused) has its queued and deferred rows
    cancelled at once; messages already in flight finish and are recorded.
    """
    actor = check_actor(actor)
    release = release_store.get_release(session, release_id, for_update=True)
    was = ReleaseStatus(release.status)
    require_release_move(was, ReleaseStatus.CANCELLED)
    _move(session, release, ReleaseStatus.CANCELLED, actor=actor, note=note or "cancelled", now=now)
    if was in (ReleaseStatus.SENDING, ReleaseStatus.PAUSED):
        delivery_store.cancel_pending(session, release_id, now)
    return release


# ================================================================== previews and proofs


@dataclass(frozen=True)
class Preview:
    """The message one recipient of one segment would get."""

    segment_id: int
    segment_slug: str
    to_addr: str
    parts: RenderedParts
    eml: bytes | None  # None when ``web.base_url`` cannot make a real unsubscribe link ...
    eml_problem: str | None = None  # ... and this says why


def _pick_segment(
    specs: list[tuple[int, str, VariantSpec]], segment_slug: str | None, release_id: int
) -> tuple[int, str, VariantSpec]:
    if not specs:
        raise InputError(f"release {release_id} has no segments")
    if segment_slug is None:
        return specs[0]
    for entry in specs:
        if entry[1] == segment_slug:
            return entry
    have = ", ".join(slug for _, slug, _ in specs)
    raise InputError(f"--segment: release {release_id} does not go to {segment_slug!r} (it goes to {have})")


def preview_release(
    session: Session,
    release_id: int,
    *,
    segment_slug: str,
    contact_email: str | None,
    renderer: Renderer,
    settings: Settings,
    now: datetime,
) -> Preview:
    """Render the exact message a recipient of ``segment_slug`` would get.

    The recipient is the contact ``contact_email``, else the segment's first contact,
    else a placeholder. The unsubscribe link has the real shape but reads as invalid
    (see :func:`mailer.releases.compliance.sample_unsubscribe_url`); when ``web.base_url`` is not
    https no real message can be built and ``eml`` is None. Raises NotFoundError,
    InputError, TemplateError.
    """
    specs = variant_specs(session, release_id, settings)
    segment_id, slug, spec = _pick_segment(specs, segment_slug, release_id)
    if contact_email is not None:
        email = normalize_email(contact_email)
        contact = release_store.find_contact(session, email)
        if contact is None:
            raise NotFoundError(f"no contact {email!r}")
        rcpt = recipient_for(contact)
    else:
        rule = next(seg.rule for _, seg in release_store.release_segments(session, release_id) if seg.id == segment_id)
        rcpt = _sample_recipient(session, rule)
    variant = renderer.compile(spec)
    try:
        unsubscribe_url = compliance.sample_unsubscribe_url(settings)
    except InputError as exc:
        parts = variant.render_parts(rcpt, to_addr=rcpt.email, unsubscribe_url="https://unsubscribe.invalid/u/preview")
        return Preview(segment_id, slug, rcpt.email, parts, None, str(exc))
    kwargs: dict[str, Any] = {
        "to_addr": rcpt.email,
        "message_id": compliance.sample_message_id(settings, f"preview.{release_id}.{segment_id}"),
        "unsubscribe_url": unsubscribe_url,
        "unsubscribe_mailto": None,
        "date": now,
    }
    parts = variant.render_parts(rcpt, **kwargs)
    return Preview(segment_id, slug, rcpt.email, parts, variant.render(rcpt, **kwargs))


@dataclass(frozen=True)
class ProofResult:
    """A proof that reached the SMTP server's reply (sent or refused), as recorded."""

    proof_id: int
    to_address: str
    segment_slug: str
    message_id: str
    sent: bool
    reply: str


def send_proof(
    sessions: sessionmaker[Session],
    release_id: int,
    *,
    to_address: str,
    segment_slug: str | None,
    renderer: Renderer,
    settings: Settings,
    now: datetime,
) -> ProofResult:
    """Writes (own transactions): send one proof through ``settings.smtp`` and record it.

    The message is the one the segment's first contact would get, addressed to
    ``to_address``, its subject prefixed ``[PROOF] `` and marked ``X-Mailer-Proof: yes``.
    It is recorded in ``proofs`` (never as a delivery). The envelope sender is
    ``bounces@{sender.bounce_domain}`` with no VERP token, so a bounce of a proof can
    suppress no one. No database transaction is held during SMTP. Raises
    TransportError when SMTP cannot be reached (nothing is recorded), InputError,
    NotFoundError, TemplateError; a refusal by the server is recorded and returned.
    """
    to = normalize_email(to_address)
    with transaction(sessions) as session:
        specs = variant_specs(session, release_id, settings)
        segment_id, slug, spec = _pick_segment(specs, segment_slug, release_id)
        rule = next(seg.rule for _, seg in release_store.release_segments(session, release_id) if seg.id == segment_id)
        rcpt = _sample_recipient(session, rule)
        digest = content_hash(specs, renderer, release_topics(session, release_id))
    proof_spec = dataclasses.replace(spec, subject=PROOF_SUBJECT_PREFIX + spec.subject)
    message_id = compliance.sample_message_id(settings, f"proof.{release_id}.{segment_id}.{uuid.uuid4().hex}")
    raw = renderer.compile(proof_spec).render(
        rcpt,
        to_addr=to,
        message_id=message_id,
        unsubscribe_url=compliance.sample_unsubscribe_url(settings),
        unsubscribe_mailto=None,
        date=now,
    )
    envelope_sender = f"bounces@{settings.sender.bounce_domain}"
    result = asyncio.run(send_one(settings.smtp, envelope_sender, to, PROOF_HEADER + raw))
    sent = result.outcome is Outcome.SENT
    with transaction(sessions) as session:
        proof = release_store.add_proof(
            session,
            release_id,
            segment_id=segment_id,
            to_address=to,
            content_hash=digest,
            message_id=message_id,
            result=f"{result.outcome.value}: {result.reply}",
            now=now,
        )
    return ProofResult(proof.id, to, slug, message_id, sent, result.reply)
