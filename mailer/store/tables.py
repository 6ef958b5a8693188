"""SQLAlchemy 2.0 models. The database is the queue and the ledger.

Constraints here protect the guarantees of DESIGN.md: one delivery per (release,
contact), one contact per normalized address, a stable unique Message-ID per delivery,
one suppression per (address hash, scope).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC without a zone (same text order on SQLite, same type on PostgreSQL);
    hands back aware UTC datetimes. Naive input is taken as UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


Stamp = UTCDateTime()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: Stamp}


class Client(Base):
    __tablename__ = "clients"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    from_name: Mapped[str] = mapped_column(String(200))
    from_address: Mapped[str] = mapped_column(String(320))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    postal_address: Mapped[str] = mapped_column(Text)
    disclosure: Mapped[str | None] = mapped_column(Text)
    #: its newsroom pages ask search engines not to index them
    newsroom_noindex: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime]


class Contact(Base):
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL once erased; the hash keeps the address suppressed without keeping it.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    outlet: Mapped[str | None] = mapped_column(String(200))
    outlet_type: Mapped[str | None] = mapped_column(String(20), index=True)
    region: Mapped[str | None] = mapped_column(String(64), index=True)
    country: Mapped[str | None] = mapped_column(String(8))
    language: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    #: False: left out of embargoed releases (e.g. after breaking an embargo); None: not marked
    embargo_ok: Mapped[bool | None] = mapped_column(Boolean)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    soft_bounce_score: Mapped[int] = mapped_column(default=0)
    soft_bounce_last_at: Mapped[datetime | None]
    #: warnings issued since the soft-bounce score reached the threshold, and the last one
    soft_bounce_warnings: Mapped[int] = mapped_column(default=0, server_default="0")
    soft_bounce_warned_at: Mapped[datetime | None]
    # Which import last wrote the row, and from which line: finds duplicates in one file
    # without holding the whole file's addresses in memory.
    import_batch: Mapped[str | None] = mapped_column(String(40))
    import_line: Mapped[int | None]
    erased_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ContactBeat(Base):
    __tablename__ = "contact_beats"
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    beat: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class ContactTag(Base):
    __tablename__ = "contact_tags"
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class MailingList(Base):
    __tablename__ = "lists"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class ListMember(Base):
    __tablename__ = "list_members"
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True)
    added_at: Mapped[datetime]


class Segment(Base):
    __tablename__ = "segments"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    rule: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Release(Base):
    __tablename__ = "releases"
    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    title: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(500))
    template: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    # dateline, intro, speakers, questions, booking contact...: the rest of the front matter
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), index=True)
    send_at: Mapped[datetime | None] = mapped_column(index=True)
    embargo_at: Mapped[datetime | None]
    author: Mapped[str] = mapped_column(String(320))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    pause_reason: Mapped[str | None] = mapped_column(Text)
    # The latest moment the release may start without a person confirming (None: the
    # configured window after its send time); see mailer.releases.holds.
    not_after: Mapped[datetime | None]
    # Why an approved release waits for a person (late, or already started per the send
    # fence); None when it does not wait.
    hold_reason: Mapped[str | None] = mapped_column(Text)
    late_confirmed_at: Mapped[datetime | None]
    resend_confirmed_at: Mapped[datetime | None]
    # The circuit breaker's state over all worker processes (mailer.engine.breaker): the last
    # results as "0"/"1" marks ("1": a counted refusal), and the refusals in a row.
    breaker_window: Mapped[str] = mapped_column(String(500), default="", server_default="")
    breaker_streak: Mapped[int] = mapped_column(default=0, server_default="0")
    # The send ledger (mailer.releases.fence): raised in every transaction that records send
    # results, never lowered, so a database below the fence's value is a restored copy;
    # the key is renewed when a person lets a restored copy send again (None: never).
    ledger_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    ledger_key: Mapped[str | None] = mapped_column(String(32))
    planned_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ReleaseSegment(Base):
    """A segment a release goes to, with that segment's variant overrides."""

    __tablename__ = "release_segments"
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id"), primary_key=True)
    position: Mapped[int]
    subject: Mapped[str | None] = mapped_column(String(500))
    intro: Mapped[str | None] = mapped_column(Text)
    template: Mapped[str | None] = mapped_column(String(64))


class ReleaseAsset(Base):
    """A photo or document of a release's press kit (the bytes are in the asset storage,
    :mod:`mailer.releases.storage`, under ``storage_key``)."""

    __tablename__ = "release_assets"
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    #: "image" or "document"
    kind: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int | None]
    height: Mapped[int | None]
    caption: Mapped[str | None] = mapped_column(Text)
    alt: Mapped[str | None] = mapped_column(Text)
    #: also travels as a true attachment of every message (small documents only)
    attached: Mapped[bool] = mapped_column(Boolean, default=False)
    storage_key: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime]


class Approval(Base):
    __tablename__ = "approvals"
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), index=True)
    approver: Mapped[str] = mapped_column(String(320))
    content_hash: Mapped[str] = mapped_column(String(64))
    approved_at: Mapped[datetime]


class ReleaseEditor(Base):
    """Everyone who wrote or changed a release's content (two-person approval)."""

    __tablename__ = "release_editors"
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    actor_key: Mapped[str] = mapped_column(String(320), primary_key=True)  # the actor, case-folded
    actor: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime]


class MailerMeta(Base):
    """Facts about this database itself (its random identity: the send fence's key)."""

    __tablename__ = "mailer_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ReleaseEvent(Base):
    """Every workflow transition, with who and when."""

    __tablename__ = "release_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(320))
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]


class Delivery(Base):
    """One row per (release, contact): the unit of sending and the ledger staff read."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("release_id", "contact_id", name="uq_deliveries_release_contact"),
        Index("ix_deliveries_claim", "release_id", "status", "next_attempt_at"),
        Index("ix_deliveries_lease", "status", "lease_expires_at"),
        # the staff log's filters, paged by id (keyset)
        Index("ix_deliveries_domain_status_id", "domain", "status", "id"),
        Index("ix_deliveries_release_status_id", "release_id", "status", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    email_hash: Mapped[str] = mapped_column(String(64), index=True)
    domain: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    attempts: Mapped[int] = mapped_column(default=0)
    first_attempt_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    # True only while the message data is being handed to the server (crash precision).
    in_data: Mapped[bool] = mapped_column(Boolean, default=False)
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_reply: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(40))
    sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class DeliveryEvent(Base):
    """Append-only history of a delivery or a contact."""

    __tablename__ = "delivery_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    code: Mapped[int | None]
    detail: Mapped[str | None] = mapped_column(Text)
    # For bounces: a fingerprint so the same bounce ingested twice is recorded once.
    dedupe_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    raw: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(index=True)


class InboundMail(Base):
    """Mail kept for staff: anything sent to postmaster@, abuse@ or the feedback-loop
    address that was not filed as a bounce or complaint (``staff``), and notices matched
    without a signed VERP token (``review``), which never suppress or score."""

    __tablename__ = "inbound_mail"
    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(20), index=True)
    envelope_to: Mapped[str | None] = mapped_column(String(320))
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"))
    summary: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime]


class Suppression(Base):
    """An address that must never be mailed again (in its scope)."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("email_hash", "scope", name="uq_suppressions_hash_scope"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    email_hash: Mapped[str] = mapped_column(String(64))
    # "*" for every client, else a client slug
    scope: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class SuppressionLog(Base):
    """Removals (and other changes) of suppressions: who, why, when."""

    __tablename__ = "suppression_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime]


class Proof(Base):
    """A proof sent to a publicist: recorded, never counted as a delivery."""

    __tablename__ = "proofs"
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), index=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"))
    to_address: Mapped[str] = mapped_column(String(320))
    content_hash: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(255))
    result: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime]


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(Text)
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: "read" or "write" (mailer.accounts.users.TokenScope); None with no token
    api_token_scope: Mapped[str | None] = mapped_column(String(8))
    #: the token is refused from this time on; None: it does not expire
    api_token_expires_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class WebSession(Base):
    """A staff sign-in. The browser holds the random id; only its SHA-256 is stored."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
