"""SQLAlchemy 2.0 models. The database is the queue and the ledger.

Constraints here protect the guarantees of DESIGN.md: one delivery per (release,
contact), one contact per normalized address, a stable unique Message-ID per delivery,
one suppression per (address hash, scope).

Over 400 lines on purpose: the schema, one declarative class per table in one metadata
(what Alembic and the layer test read); columns only, no behaviour.
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
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
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
    # The sending identity (mailer.releases.identity); NULL means the default.
    dkim_domain: Mapped[str | None] = mapped_column(String(253))
    dkim_selector: Mapped[str | None] = mapped_column(String(63))
    dkim_key_file: Mapped[str | None] = mapped_column(Text)
    #: selector -> key file of keys published but not signing (key rotation)
    dkim_other_keys: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    bounce_domain: Mapped[str | None] = mapped_column(String(253))
    message_id_domain: Mapped[str | None] = mapped_column(String(253))
    #: why submit may skip the DMARC alignment check (e.g. the relay signs), who said so, when
    alignment_override: Mapped[str | None] = mapped_column(Text)
    alignment_override_by: Mapped[str | None] = mapped_column(String(320))
    alignment_override_at: Mapped[datetime | None]


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_sort_name", "sort_name", "id"),
        Index("ix_contacts_sort_outlet", "sort_outlet", "id"),
        # a page filtered by outlet type or region walks only those contacts, in order
        # (mailer.store.contact_search; migration 0017_contact_search)
        *(
            Index(f"ix_contacts_{facet}_{key}", facet, key, "id")
            for facet in ("outlet_type", "region")
            for key in ("sort_name", "sort_outlet", "email", "updated_at")
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL once erased; the hash keeps the address suppressed without keeping it.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    outlet: Mapped[str | None] = mapped_column(String(200))
    outlet_type: Mapped[str | None] = mapped_column(String(20))
    region: Mapped[str | None] = mapped_column(String(64))
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
    updated_at: Mapped[datetime] = mapped_column(index=True)
    # Sort keys of the staff contact list (mailer.domain.search_terms): folded "last first"
    # and outlet, kept by mailer.store.contact_search.reindex_contacts.
    sort_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    sort_outlet: Mapped[str] = mapped_column(String(200), default="", server_default="")


# Byte order on PostgreSQL too (as SQLite's BINARY), so a prefix is one range scan.
_TERM = String(64).with_variant(String(64, collation="C"), "postgresql")


class ContactTerm(Base):
    """A word a contact is found by in the staff search (mailer.domain.search_terms)."""

    __tablename__ = "contact_terms"
    # WITHOUT ROWID on SQLite (migration 0019_import_terms): the key holds the rows, two
    # B-trees instead of three for the ~15 words an imported contact writes
    __table_args__ = (Index("ix_contact_terms_contact_term", "contact_id", "term"), {"sqlite_with_rowid": False})
    term: Mapped[str] = mapped_column(_TERM, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)


class FormerAddress(Base):
    """An address hash a contact had before its current one (erasure replaces it with
    ``erased-<id>``): its delivery rows still carry it, and an address's rows are found
    through the contacts that have or had it (mailer.store.address_rows)."""

    __tablename__ = "former_addresses"
    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), primary_key=True)


class ContactBeat(Base):
    __tablename__ = "contact_beats"
    __table_args__ = (Index("ix_contact_beats_beat_contact", "beat", "contact_id"),)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    beat: Mapped[str] = mapped_column(String(64), primary_key=True)


class ContactTag(Base):
    __tablename__ = "contact_tags"
    __table_args__ = (Index("ix_contact_tags_tag_contact", "tag", "contact_id"),)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)


class ContactNote(Base):
    """A staff note on a contact: what was said, by whom, when (erased with the contact)."""

    __tablename__ = "contact_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(320))
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class ContactChange(Base):
    """One field of a contact changed by a person (contact edit): who, when, from what to what."""

    __tablename__ = "contact_changes"
    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    actor: Mapped[str] = mapped_column(String(320))
    field: Mapped[str] = mapped_column(String(80))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]


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
    # Planning in steps (mailer.engine.planner): contacts with an id up to this one are
    # planned; None when no planning is under way (not started, or its last step done).
    plan_cursor: Mapped[int | None] = mapped_column(BigInteger)
    finished_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Conversations (mailer.releases.threads): a correction, withdrawal or follow-up of
    # ``parent_id``, whose audience is the parent's ledger; ``follow_up_filter`` says who a
    # follow-up leaves out (mailer.domain.conversations.FollowUpFilter).
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"), index=True)
    kind: Mapped[str | None] = mapped_column(String(20))
    follow_up_filter: Mapped[str | None] = mapped_column(String(20))
    # An approver lifted the cadence cap for this release (mailer.releases.cadence).
    cap_lifted_by: Mapped[str | None] = mapped_column(String(320))
    cap_lifted_at: Mapped[datetime | None]
    # Local-hour delivery: the wall-clock time ("2026-12-02 09:00") each contact gets it in
    # their own time zone, and the release's zone for contacts without a valid one.
    send_at_local: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))


class ReleaseSegment(Base):
    """A segment a release goes to, with that segment's variant overrides."""

    __tablename__ = "release_segments"
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id"), primary_key=True)
    position: Mapped[int]
    subject: Mapped[str | None] = mapped_column(String(500))
    intro: Mapped[str | None] = mapped_column(Text)
    template: Mapped[str | None] = mapped_column(String(64))
    #: the segment's own body (Markdown), replacing the release's (issue 21)
    body: Mapped[str | None] = mapped_column(Text)


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
    #: the send time approved (None: approved without one); moving it earlier needs approval again
    send_at: Mapped[datetime | None]
    #: SHA-256 over sample renders of every segment (mailer.releases.plan.render_digest):
    #: the bytes approved; None for approvals taken before issue 21
    render_digest: Mapped[str | None] = mapped_column(String(64))
    #: the release as a release file when approved (the approval page's diff)
    snapshot: Mapped[str | None] = mapped_column(Text)


class ReleaseComment(Base):
    """A note on a release: a comment, or an approver's request for changes."""

    __tablename__ = "release_comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(320))
    #: "comment" or "changes" (changes requested: the release went back to draft)
    kind: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


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
        # claiming (mailer.store.queue.claim_batch): the due rows of a release, each kind
        # from the first due one on; partial, so sent rows and other releases' pending
        # rows are not in them (the WHERE must match the claim's SQL text exactly)
        Index(
            "ix_deliveries_due_queued",
            "release_id",
            "not_before",
            "id",
            sqlite_where=text("status = 'queued'"),
            postgresql_where=text("status = 'queued'"),
        ),
        Index(
            "ix_deliveries_due_deferred",
            "release_id",
            "next_attempt_at",
            "id",
            sqlite_where=text("status = 'deferred'"),
            postgresql_where=text("status = 'deferred'"),
        ),
        # the leased rows (renewal, hand-back, the sweep of dead workers' leases:
        # mailer.store.leases): partial, so planning and recording do not maintain an entry
        # for every row (the WHERE must match those queries' SQL text exactly)
        Index(
            "ix_deliveries_lease",
            "lease_expires_at",
            sqlite_where=text("status = 'sending'"),
            postgresql_where=text("status = 'sending'"),
        ),
        # the staff log's filters, paged by id (keyset); its domain filter has no index of
        # its own (one by domain takes each planned row at one of thousands of places:
        # migration 0018_deliveries_lookup)
        Index("ix_deliveries_release_status_id", "release_id", "status", "id"),
        # a contact's history: the cadence cap and the history segments (bounced, received)
        Index("ix_deliveries_contact_status", "contact_id", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    # (a contact's rows: ix_deliveries_contact_status; the exact address: its hash)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"))
    email: Mapped[str | None] = mapped_column(String(320))
    # The contact's hash when the row was planned. Not indexed: an address's rows are
    # found through the contacts that have or had it (mailer.store.address_rows).
    email_hash: Mapped[str] = mapped_column(String(64))
    domain: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20))
    # Unique, and kept in order by planning: a planned Message-ID begins with a random
    # tag of its planning step (mailer.store.deliveries.planned_message_id), so a step's
    # rows go into the index side by side, not at random places over the whole index.
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
    # Not claimed before this instant (local-hour delivery; None: as soon as planned).
    not_before: Mapped[datetime | None]
    # The Message-ID this message answers (a correction, withdrawal or follow-up: the
    # parent's delivery to the same contact); In-Reply-To and References carry it.
    in_reply_to: Mapped[str | None] = mapped_column(String(255))


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
    __table_args__ = (
        UniqueConstraint("email_hash", "scope", name="uq_suppressions_hash_scope"),
        # the domain suppressions only (mailer.store.suppression_match; its queries carry
        # the same "domain IS NOT NULL" so SQLite uses it): partial, so statistics taken
        # while every suppression is an address (all NULL) cannot make it look useless
        Index(
            "ix_suppressions_domain",
            "domain",
            sqlite_where=text("domain IS NOT NULL"),
            postgresql_where=text("domain IS NOT NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    email_hash: Mapped[str] = mapped_column(String(64))
    # "*" for every client, else a client slug
    scope: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    # A domain suppression (``email`` is "@domain" or "*.domain", ``email_hash`` its hash):
    # the domain, and whether its subdomains are covered too. NULL for one address.
    domain: Mapped[str | None] = mapped_column(String(255))
    subdomains: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


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
    #: a returned proof (its tokenized return path), as the notice said; never a suppression
    bounced_at: Mapped[datetime | None]
    bounce: Mapped[str | None] = mapped_column(Text)


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
    #: IANA zone the pages show times in; None: the firm's (web.time_zone)
    time_zone: Mapped[str | None] = mapped_column(String(64))
    #: False: no notification mail (mailer.releases.notify)
    notify: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


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


class Heartbeat(Base):
    """The last sign of life of one long-running process (``mailer run``, the inbound
    server): GET /readyz reads the newest per kind."""

    __tablename__ = "heartbeats"
    #: kind:host:pid, unique per process
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime]


class OpsCounter(Base):
    """Counters pushed by the sender and inbound processes (summed over all processes,
    never lowered), served by GET /metrics of ``mailer web``."""

    __tablename__ = "ops_counters"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: the labels as sorted ``key=value`` pairs joined by ``,`` ("" for none)
    labels: Mapped[str] = mapped_column(String(400), primary_key=True)
    value: Mapped[float]
    updated_at: Mapped[datetime]


class AuditEntry(Base):
    """A staff action: who did what to what, when and from where (append-only)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    #: the staff address (or the name given to the command line)
    actor: Mapped[str] = mapped_column(String(320), index=True)
    #: what was done, e.g. ``signin``, ``signin_failed``, ``export``, ``user.add``, ``release.approve``
    action: Mapped[str] = mapped_column(String(40), index=True)
    #: what it was done to (a release, an address, an export's path), if anything
    target: Mapped[str | None] = mapped_column(Text)
    #: the client's address for web requests; None on the command line
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)


class WebhookEndpoint(Base):
    """A URL an admin registered to receive events (signed POSTs, see mailer.ops.webhooks)."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    #: event types or patterns, space-separated: ``delivery.sent release.*``
    events: Mapped[str] = mapped_column(Text)
    #: the HMAC-SHA256 key of the signatures (shown to the admin once, at registration)
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]


class WebhookOutbox(Base):
    """One event for one endpoint: written in the transaction of what it reports (so
    nothing is lost), POSTed and retried with backoff until delivered or given up."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (Index("ix_webhook_outbox_due", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(60))
    #: the same for every endpoint the event goes to (receivers deduplicate on it)
    event_id: Mapped[str] = mapped_column(String(40))
    #: the exact bytes POSTed (JSON), so a retry sends, and signs, the same body
    body: Mapped[str] = mapped_column(Text)
    #: pending, delivered or failed (given up)
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One POST of an outbox row: the delivery log."""

    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("webhook_outbox.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int]


class Reply(Base):
    """One inbound message about a delivery that is not a bounce: a reply to
    ``reply+TOKEN@``, or an auto-reply that reached ``bounces+TOKEN@`` (``channel``),
    with its classification (:class:`mailer.domain.replies.ReplyKind`), the evidence (the
    matched phrase) and what was done (:class:`mailer.domain.replies.ReplyAction`)."""

    __tablename__ = "replies"
    __table_args__ = (Index("ix_replies_release_id_id", "release_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"))
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    envelope_to: Mapped[str | None] = mapped_column(String(320))
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    text: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    evidence: Mapped[str | None] = mapped_column(Text)
    return_date: Mapped[datetime | None]
    new_email: Mapped[str | None] = mapped_column(String(320))
    new_outlet: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(20))
    action_detail: Mapped[str | None] = mapped_column(Text)
    undone_at: Mapped[datetime | None]
    undone_by: Mapped[str | None] = mapped_column(String(320))
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime]


class ReplyForward(Base):
    """The outbox of forwarded replies: the complete message, committed with the reply
    and sent (and retried) by :mod:`mailer.inbound.forward`; never dropped."""

    __tablename__ = "reply_forwards"
    __table_args__ = (Index("ix_reply_forwards_due", "sent_at", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    reply_id: Mapped[int] = mapped_column(ForeignKey("replies.id", ondelete="CASCADE"), unique=True)
    sender: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))
    message: Mapped[bytes] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class ContactHold(Base):
    """A contact not to be mailed until ``until`` (an out-of-office reply); releases
    planned or claimed before then record the delivery as ``held``."""

    __tablename__ = "contact_holds"
    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("replies.id", ondelete="SET NULL"))
    until: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(String(200))
    lifted_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class ResearchItem(Base):
    """The research queue: a new outlet or address to confirm as a contact, or a topic
    suppression to confirm, each from a reply (:class:`mailer.domain.replies.ResearchKind`)."""

    __tablename__ = "research_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("replies.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), index=True)
    old_email: Mapped[str | None] = mapped_column(String(320))
    new_email: Mapped[str | None] = mapped_column(String(320))
    new_outlet: Mapped[str | None] = mapped_column(String(200))
    topics: Mapped[str | None] = mapped_column(String(500))
    note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime]


class PasswordReset(Base):
    """A one-time password reset link; only the SHA-256 of its token is stored."""

    __tablename__ = "password_resets"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class Notification(Base):
    """A notification mail to a staff user, queued in the transaction of what it reports
    and sent through the configured SMTP relay (never the bulk path)."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    to_address: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(40))
    release_id: Mapped[int | None] = mapped_column(Integer, index=True)
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class EditorDraft(Base):
    """What the web editor saved as the publicist typed (the release file's text), before
    it is saved to the release; one per (user, release), release None for a new one."""

    __tablename__ = "editor_drafts"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]
