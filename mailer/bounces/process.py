"""Act on one returned message: match it to the delivery it is about, then apply the
bounce policy in one transaction.

Matching, most trustworthy first:

1. The signed VERP token of the envelope recipient (``bounces+TOKEN@``), or of the
   returned original's ``Return-Path`` / an ARF report's ``Original-Mail-From``: it
   names the delivery. A token that is present but fails the signature check makes the
   whole message untrusted: it is logged and counted as unmatched, and no weaker
   evidence is tried, because DESIGN.md promises that forged bounces cannot suppress
   anyone.
2. Without a token: the Message-ID of the returned original, else each reported
   address to the newest delivery sent to it. Both are guessable, so such a match is
   only **recorded for staff review** (``inbound_mail``, category ``review``,
   ``mailer bounces inbox``): it never changes a delivery, never scores, never
   suppresses. Only the signed token may suppress.

Acting on a token match (``BounceSettings``): every notice becomes one ``DeliveryEvent``
with the raw message, size-capped. The event carries a fingerprint of (delivery, kind,
status, the notice's own Message-ID or bytes), so the same notice processed twice is
recorded once and acted on once. What happens depends on the verdict's *fault*
(:mod:`mailer.domain.status`):

* recipient, hard (user or domain unknown) → delivery ``bounced``; address suppressed
  everywhere (``hard_bounce``) when ``suppress_hard``.
* sender (our envelope sender, IP, authentication, reputation: "Domain of sender
  address ... does not exist") → the recipient did not get it and it is not their
  fault: the delivery goes back to the queue (``requeued`` event "reason: detail",
  as the engine does when it hears the refusal itself; never bounced or failed), the
  recipient untouched (no score, no suppression), and the release paused at once if it
  is still sending, with a reason a person can act on; after ``resume`` the row gets
  one copy. A release that already finished is left as it is (the row shows as
  ``queued``; ``mailer releases retry ID --status queued`` sends such rows once the
  sending setup is fixed).
* message (size, spam, content) → delivery ``bounced``; nothing else.
* recipient soft, remote, network → delivery ``bounced``; the contact's soft score counts
  it (at most once a day; stale after ``soft_reset_days``), except for refusals that say
  nothing about the address (policy, rate limits). At ``soft_threshold`` the warn/disable
  flow starts: ``soft_warnings`` warnings (``bounce_warning`` events for staff), one per
  ``soft_warning_days`` while the address keeps bouncing, then ``soft_bounce``
  suppression. A stale score starts again with no warnings.
* delay → event only. ARF ``abuse``/``fraud``/``virus`` → ``complained`` event and
  suppression everywhere; ``auth-failure``/``not-spam``/``other`` → ``feedback`` event,
  nobody suppressed.
* auto-replies and anything that is not a notice → nothing, ever.
* ``unsubscribe+TOKEN@`` (a ``mailto:`` List-Unsubscribe) → suppressed for the release's
  client (``unsubscribed``, source ``mailto``).

Mail to ``postmaster@`` / ``abuse@`` the bounce domain or to the feedback-loop address
(RFC 5321 4.5.1) goes through the same steps; whatever they do not file is kept for
staff (category ``staff``), never dropped.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from enum import StrEnum

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailer.bounces.parse import BounceClass, BounceReport, Kind, RecipientStatus, parse_message
from mailer.config import BounceSettings
from mailer.domain.errors import StoreError
from mailer.domain.states import GLOBAL_SCOPE, ReleaseStatus, SuppressionReason, email_hash
from mailer.domain.status import Fault, Reason, parse_code
from mailer.message.tokens import Tokens
from mailer.releases import workflow
from mailer.store import bounces as bounce_store
from mailer.store import suppressions as suppression_store
from mailer.store.bounces import BounceTarget
from mailer.store.db import transaction
from mailer.store.tables import Release

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What processing one message came to."""

    BOUNCED = "bounced"
    DELAYED = "delayed"
    COMPLAINT = "complaint"
    FEEDBACK = "feedback"  # an ARF report that is not a complaint: recorded only
    SENDER_REFUSED = "sender_refused"  # a notice about our sender: recorded, release paused
    REVIEW = "review"  # matched without a signed token: kept for staff review only
    KEPT = "kept"  # mail to postmaster@/abuse@/the feedback address kept for staff
    UNSUBSCRIBED = "unsubscribed"
    IGNORED = "ignored"  # auto-reply, human mail, a notice reporting no failure
    UNMATCHED = "unmatched"  # a notice for no known delivery, or a forged token
    DUPLICATE = "duplicate"  # already recorded earlier


#: Outcomes after which a mailbox message may be acknowledged (flagged, moved): what it
#: says is in the database. Anything else is left where it is for a human.
HANDLED = frozenset(
    {
        Outcome.BOUNCED,
        Outcome.DELAYED,
        Outcome.COMPLAINT,
        Outcome.FEEDBACK,
        Outcome.SENDER_REFUSED,
        Outcome.REVIEW,
        Outcome.KEPT,
        Outcome.UNSUBSCRIBED,
        Outcome.DUPLICATE,
    }
)

#: Soft-bounce reasons that say nothing about the address: the receiver refused this
#: message (content, size), throttled us, or applies a policy (RFC 3463 §3.8: X.7.x is
#: security or policy status). Counting these would suppress live journalists because
#: our sending IP got listed somewhere. Sender-side reasons never count either.
UNSCORED_REASONS = frozenset(
    {
        Reason.POLICY_BLOCKED,
        Reason.SPAM_BLOCKED,
        Reason.MESSAGE_TOO_BIG,
        Reason.CONTENT_REJECTED,
        Reason.RATE_LIMITED,
        Reason.RELAY_DENIED,
    }
)

#: Local parts at the bounce domain that must always reach a person (RFC 5321 4.5.1).
STAFF_LOCALPARTS = frozenset({"postmaster", "abuse"})

# Where an envelope recipient survives in a delivered message's headers.
_ENVELOPE_HEADERS = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To")
_PRIORITY = (
    Outcome.COMPLAINT,
    Outcome.SENDER_REFUSED,
    Outcome.BOUNCED,
    Outcome.FEEDBACK,
    Outcome.DELAYED,
    Outcome.UNSUBSCRIBED,
    Outcome.REVIEW,
)
_REPLY_CODE_RE = re.compile(r"(?<![\d.])([245][0-5]\d)(?![\d.])")
_MAX_DETAIL = 1000


@dataclass(frozen=True)
class ProcessResult:
    """The outcome of one message, which deliveries it touched and which addresses it
    suppressed."""

    outcome: Outcome
    kind: Kind | None = None
    delivery_ids: tuple[int, ...] = ()
    suppressed: tuple[str, ...] = ()

    @property
    def handled(self) -> bool:
        """True when the message may be acknowledged: it is recorded in the ledger."""
        return self.outcome in HANDLED


def split_address(address: str, bounce_domain: str) -> tuple[str, str] | None:
    """``("bounces"|"unsubscribe", token)`` for ``bounces+TOKEN@bounce_domain`` or
    ``unsubscribe+TOKEN@bounce_domain`` (any case, optionally in ``<>``), else None."""
    local, at, domain = address.strip().strip("<>").strip().rpartition("@")
    if not at or domain.lower() != bounce_domain.lower():
        return None
    prefix, plus, token = local.partition("+")
    prefix = prefix.lower()
    if not plus or not token or prefix not in ("bounces", "unsubscribe"):
        return None
    return prefix, token


class BounceProcessor:
    """Matches returned messages to deliveries and applies the bounce policy.

    Safe to share between threads: each :meth:`process` call uses its own session.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        policy: BounceSettings,
        tokens: Tokens,
        bounce_domain: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._policy = policy
        self._tokens = tokens
        self._bounce_domain = bounce_domain
        self._clock = clock

    # --- the receiver's question ---------------------------------------------------

    def accepts_recipient(self, address: str) -> bool:
        """True for ``bounces+TOKEN@`` or ``unsubscribe+TOKEN@`` at the bounce domain
        whose token carries a genuine signature, and for the staff addresses
        (:meth:`is_staff_address`); the receiver refuses everything else."""
        if self.is_staff_address(address):
            return True
        parts = split_address(address, self._bounce_domain)
        if parts is None:
            return False
        prefix, token = parts
        purpose = "bounce" if prefix == "bounces" else "unsubscribe"
        return self._tokens.read_verp(token, purpose=purpose) is not None

    def is_staff_address(self, address: str) -> bool:
        """True for ``postmaster@`` and ``abuse@`` the bounce domain (RFC 5321 4.5.1,
        RFC 2142) and for the configured feedback-loop address, any case."""
        bare = address.strip().strip("<>").strip().lower()
        local, at, domain = bare.rpartition("@")
        if not at:
            return False
        if domain == self._bounce_domain.lower() and local in STAFF_LOCALPARTS:
            return True
        feedback = (self._policy.feedback_address or "").strip().strip("<>").lower()
        return bool(feedback) and bare == feedback

    # --- one message ---------------------------------------------------------------

    def process(self, raw: bytes, *, envelope_recipients: Sequence[str] = ()) -> ProcessResult:
        """Parse ``raw``, match it and act, committing before returning.

        ``envelope_recipients`` are the RCPT TO addresses when the message arrived over
        LMTP/SMTP; without them the envelope is read from ``Delivered-To`` and similar
        headers. Never raises for bad input.

        Raises:
            StoreError: the database failed; nothing of this message was written, and
                processing it again later is safe.
        """
        headers = _headers(raw)
        own_id = _header(headers, "Message-ID")
        fingerprint = own_id or "sha256:" + hashlib.sha256(raw).hexdigest()
        addresses = list(envelope_recipients) or _envelope_from_headers(headers)
        ours = [p for p in (split_address(a, self._bounce_domain) for a in addresses) if p is not None]

        unsubscribe = next((token for prefix, token in ours if prefix == "unsubscribe"), None)
        if unsubscribe is not None:
            return self._run(lambda session: self._unsubscribe(session, unsubscribe, raw, own_id))
        staff = next((a for a in envelope_recipients if self.is_staff_address(a)), None)

        report = parse_message(raw)
        result = self._file(report, ours, raw, fingerprint)
        if staff is not None and not result.handled:
            # RFC 5321 4.5.1: mail to postmaster@ (and abuse@, the feedback address)
            # reaches a person; nothing that arrives there is dropped.
            return self._run(lambda session: self._keep(session, staff, headers, report, raw, fingerprint))
        return result

    def _file(self, report: BounceReport, ours: list[tuple[str, str]], raw: bytes, fingerprint: str) -> ProcessResult:
        if report.kind in (Kind.AUTO_REPLY, Kind.NOT_BOUNCE):
            return ProcessResult(Outcome.IGNORED, report.kind)
        # The envelope the receiver saw is authoritative over tokens found in headers.
        token = next((token for prefix, token in ours if prefix == "bounces"), None) or report.token
        delivery_id: int | None = None
        if token is not None:
            delivery_id = self._tokens.read_verp(token)
            if delivery_id is None:
                log.warning("ignoring notice %s: forged or unsigned VERP token %r", fingerprint, token)
                return ProcessResult(Outcome.UNMATCHED, report.kind)
        return self._run(lambda session: self._act(session, report, delivery_id, raw, fingerprint))

    def _keep(
        self, session: Session, staff: str, headers: Message, report: BounceReport, raw: bytes, fingerprint: str
    ) -> ProcessResult:
        summary = f"{report.kind.value}" + (f" ({report.feedback_type})" if report.feedback_type else "")
        kept = bounce_store.keep_inbound(
            session,
            category="staff",
            envelope_to=staff,
            sender=_header(headers, "From"),
            subject=_header(headers, "Subject"),
            message_id=_header(headers, "Message-ID"),
            delivery_id=None,
            summary=summary,
            raw=self._kept(raw),
            dedupe_key=_dedupe_key(0, "staff", staff.lower(), fingerprint),
            now=self._clock(),
        )
        return ProcessResult(Outcome.KEPT if kept else Outcome.DUPLICATE, report.kind)

    def _run(self, work: Callable[[Session], ProcessResult]) -> ProcessResult:
        try:
            with transaction(self._sessions) as session:
                return work(session)
        except SQLAlchemyError as exc:
            raise StoreError(f"database error while recording a bounce: {exc.__class__.__name__}") from exc

    # --- matching ------------------------------------------------------------------

    def _match(
        self, session: Session, report: BounceReport, delivery_id: int | None
    ) -> list[tuple[BounceTarget, RecipientStatus | None]]:
        feedback = report.kind in (Kind.COMPLAINT, Kind.FEEDBACK)
        relevant = [r for r in report.recipients if feedback or r.action in ("failed", "delayed")]
        if delivery_id is not None:
            target = bounce_store.delivery_by_id(session, delivery_id)
            return [] if target is None else _paired(target, relevant, report.kind)
        if report.original_message_id:
            target = bounce_store.delivery_by_message_id(session, report.original_message_id)
            if target is not None:
                return _paired(target, relevant, report.kind)
        pairs: list[tuple[BounceTarget, RecipientStatus | None]] = []
        seen: set[int] = set()
        for recipient in relevant:
            target = bounce_store.latest_delivery_to(session, email_hash(recipient.address.strip().lower()))
            if target is not None and target.delivery_id not in seen:
                seen.add(target.delivery_id)
                pairs.append((target, recipient))
        return pairs

    # --- acting --------------------------------------------------------------------

    def _act(
        self, session: Session, report: BounceReport, delivery_id: int | None, raw: bytes, fingerprint: str
    ) -> ProcessResult:
        pairs = self._match(session, report, delivery_id)
        if not pairs:
            log.info("unmatched %s notice %s", report.kind.value, fingerprint)
            return ProcessResult(Outcome.UNMATCHED, report.kind)
        outcomes: list[Outcome] = []
        suppressed: list[str] = []
        for target, recipient in pairs:
            if delivery_id is None:
                # Issue 12 item 5: a Message-ID or an address can be guessed; only the
                # signed token may act on a delivery.
                outcomes.append(self._review(session, target, recipient, report, raw, fingerprint))
                continue
            outcome, address = self._act_on(session, target, recipient, report.kind, raw, fingerprint)
            outcomes.append(outcome)
            if address is not None:
                suppressed.append(address)
        recorded = [o for o in _PRIORITY if o in outcomes]
        final = recorded[0] if recorded else Outcome.DUPLICATE if Outcome.DUPLICATE in outcomes else Outcome.IGNORED
        return ProcessResult(final, report.kind, tuple(t.delivery_id for t, _ in pairs), tuple(suppressed))

    def _act_on(
        self,
        session: Session,
        target: BounceTarget,
        recipient: RecipientStatus | None,
        kind: Kind,
        raw: bytes,
        fingerprint: str,
    ) -> tuple[Outcome, str | None]:
        """Record one notice about one delivery and apply the policy; returns the
        outcome and the address it suppressed, if any."""
        now = self._clock()
        if kind is Kind.COMPLAINT:
            event, outcome = "complained", Outcome.COMPLAINT
        elif kind is Kind.FEEDBACK:
            event, outcome = "feedback", Outcome.FEEDBACK
        elif recipient is not None and recipient.action == "failed" and recipient.fault is Fault.SENDER:
            event, outcome = "requeued", Outcome.SENDER_REFUSED
        elif recipient is not None and recipient.action == "failed":
            event, outcome = "bounced", Outcome.BOUNCED
        elif recipient is not None and recipient.action == "delayed":
            event, outcome = "delayed", Outcome.DELAYED
        else:
            return Outcome.IGNORED, None
        status = recipient.status if recipient is not None else None
        diagnostic = recipient.diagnostic if recipient is not None else None
        detail = " ".join(p for p in (status, diagnostic) if p)[:_MAX_DETAIL] or None
        code = _reply_code(status, diagnostic)
        key = _dedupe_key(target.delivery_id, event, status, fingerprint)
        if outcome is Outcome.SENDER_REFUSED and recipient is not None:
            # Says whose fault it is, as the engine's requeued events do (the report counts it).
            event_detail: str | None = f"{recipient.reason.value}: {detail or ''}"[:_MAX_DETAIL]
        else:
            event_detail = detail
        if not bounce_store.record_delivery_event(
            session,
            delivery_id=target.delivery_id,
            contact_id=target.contact_id,
            kind=event,
            code=code,
            detail=event_detail,
            dedupe_key=key,
            raw=self._kept(raw),
            at=now,
        ):
            return Outcome.DUPLICATE, None

        source = f"{'complaint' if kind is Kind.COMPLAINT else 'bounce'} {fingerprint}"
        if outcome is Outcome.COMPLAINT:
            return outcome, self._suppress(session, target, SuppressionReason.COMPLAINT, source, now)
        if outcome in (Outcome.DELAYED, Outcome.FEEDBACK) or recipient is None:
            return outcome, None
        if outcome is Outcome.SENDER_REFUSED:
            # About us, not the address: back to the queue, never score or suppress; stop
            # the release (issue 11).
            bounce_store.requeue_refused(
                session, target.delivery_id, reason=recipient.reason.value, code=code, reply=detail, now=now
            )
            self._pause(session, target, detail or recipient.reason.value, now)
            return outcome, None
        bounce_store.mark_delivery_bounced(
            session, target.delivery_id, reason=recipient.reason.value, code=code, reply=detail, now=now
        )
        if recipient.bounce_class is BounceClass.HARD:
            if self._policy.suppress_hard:
                return outcome, self._suppress(session, target, SuppressionReason.HARD_BOUNCE, source, now)
            return outcome, None
        if recipient.fault is Fault.MESSAGE or recipient.reason in UNSCORED_REASONS or _is_policy_status(status):
            return outcome, None
        return outcome, self._score(session, target, source, now)

    def _score(self, session: Session, target: BounceTarget, source: str, now: datetime) -> str | None:
        """Count a soft bounce; run the warn/disable flow past the threshold. Returns the
        address when it is suppressed now."""
        policy = self._policy
        state = bounce_store.bump_soft_bounce_score(
            session, target.contact_id, now=now, reset_days=policy.soft_reset_days
        )
        if state.score < policy.soft_threshold:
            return None
        interval = timedelta(days=policy.soft_warning_days)
        due = state.warned_at is None or now - state.warned_at >= interval
        if state.warnings < policy.soft_warnings:
            if due and bounce_store.record_soft_warning(session, target.contact_id, warnings=state.warnings, now=now):
                number = state.warnings + 1
                bounce_store.record_delivery_event(
                    session,
                    delivery_id=target.delivery_id,
                    contact_id=target.contact_id,
                    kind="bounce_warning",
                    code=None,
                    detail=(
                        f"soft-bounce warning {number} of {policy.soft_warnings}: {state.score} soft bounces; "
                        f"suppressed if it still bounces {policy.soft_warning_days} days after the last warning"
                    ),
                    dedupe_key=_dedupe_key(target.delivery_id, "bounce_warning", str(number), str(target.contact_id)),
                    raw=None,
                    at=now,
                )
            return None
        if not due:
            return None
        return self._suppress(session, target, SuppressionReason.SOFT_BOUNCE, source, now)

    def _pause(self, session: Session, target: BounceTarget, detail: str, now: datetime) -> None:
        """Pause the release of ``target`` if it is still sending (lock the row first, so
        two notices at once pause it once)."""
        release = session.get(Release, target.release_id, with_for_update=True)
        if release is None or release.status != ReleaseStatus.SENDING.value:
            return
        workflow.pause(
            session,
            target.release_id,
            actor="bounce processor",
            now=now,
            reason=(
                f"a receiving server refuses our sender: {detail[:300]}; check the bounce domain's DNS "
                "and the sending setup (SPF, DKIM, IP reputation), then resume"
            ),
        )
        log.warning("paused release %s: a receiving server refuses our sender", target.release_id)

    def _review(
        self,
        session: Session,
        target: BounceTarget,
        recipient: RecipientStatus | None,
        report: BounceReport,
        raw: bytes,
        fingerprint: str,
    ) -> Outcome:
        """Keep a notice matched without a signed token for staff: nothing else."""
        headers = _headers(raw)
        parts = [report.kind.value]
        if report.feedback_type:
            parts.append(report.feedback_type)
        if recipient is not None:
            parts += [
                recipient.address,
                recipient.bounce_class.value,
                recipient.reason.value,
                " ".join(p for p in (recipient.status, recipient.diagnostic) if p),
            ]
        kept = bounce_store.keep_inbound(
            session,
            category="review",
            envelope_to=None,
            sender=_header(headers, "From"),
            subject=_header(headers, "Subject"),
            message_id=_header(headers, "Message-ID"),
            delivery_id=target.delivery_id,
            summary=" | ".join(parts)[:_MAX_DETAIL],
            raw=self._kept(raw),
            dedupe_key=_dedupe_key(target.delivery_id, "review", None, fingerprint),
            now=self._clock(),
        )
        return Outcome.REVIEW if kept else Outcome.DUPLICATE

    def _unsubscribe(self, session: Session, token: str, raw: bytes, own_id: str | None) -> ProcessResult:
        delivery_id = self._tokens.read_verp(token, purpose="unsubscribe")
        if delivery_id is None:
            log.warning("ignoring mailto unsubscribe %s: forged or unsigned token %r", own_id, token)
            return ProcessResult(Outcome.UNMATCHED)
        target = bounce_store.delivery_by_id(session, delivery_id)
        if target is None:
            return ProcessResult(Outcome.UNMATCHED)
        now = self._clock()
        recorded = bounce_store.record_delivery_event(
            session,
            delivery_id=target.delivery_id,
            contact_id=target.contact_id,
            kind="unsubscribed",
            code=None,
            detail="mailto unsubscribe",
            # One mailto unsubscribe per delivery counts; the journalist's client may
            # send it twice.
            dedupe_key=_dedupe_key(target.delivery_id, "unsubscribed", None, "mailto"),
            raw=self._kept(raw),
            at=now,
        )
        if not recorded:
            return ProcessResult(Outcome.DUPLICATE, None, (target.delivery_id,))
        suppressed = self._suppress(
            session, target, SuppressionReason.UNSUBSCRIBED, "mailto", now, scope=target.client_slug
        )
        return ProcessResult(
            Outcome.UNSUBSCRIBED, None, (target.delivery_id,), (suppressed,) if suppressed is not None else ()
        )

    def _suppress(
        self,
        session: Session,
        target: BounceTarget,
        reason: SuppressionReason,
        source: str,
        now: datetime,
        *,
        scope: str = GLOBAL_SCOPE,
    ) -> str | None:
        if target.email is None:
            # Erased contact: the erasure already suppressed the hash.
            return None
        suppression_store.add_suppression(session, target.email, reason=reason, source=source, now=now, scope=scope)
        return target.email

    def _kept(self, raw: bytes) -> str | None:
        limit = self._policy.keep_raw_bytes
        if limit == 0:
            return None
        # PostgreSQL text cannot hold NUL; a cut multi-byte character becomes U+FFFD.
        return raw[:limit].decode("utf-8", "replace").replace("\x00", "")


def _paired(
    target: BounceTarget, relevant: list[RecipientStatus], kind: Kind
) -> list[tuple[BounceTarget, RecipientStatus | None]]:
    """The one delivery a token or Message-ID names, with the recipient status about
    it: the one with its address, else the first (forwarding rewrites addresses)."""
    if not relevant:
        # An ARF report may redact the recipient; the token still names the delivery.
        return [(target, None)] if kind in (Kind.COMPLAINT, Kind.FEEDBACK) else []
    own = target.email.lower() if target.email else None
    chosen = next((r for r in relevant if r.address.strip().lower() == own), relevant[0])
    return [(target, chosen)]


def _dedupe_key(delivery_id: int, kind: str, status: str | None, fingerprint: str) -> str:
    text = "\x1f".join((str(delivery_id), kind, status or "", fingerprint))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _reply_code(status: str | None, diagnostic: str | None) -> int | None:
    """The basic SMTP reply code quoted in the diagnostic (``smtp; 550 5.1.1 ...``),
    else the class of the status (``5.1.1`` → 500), else None."""
    match = _REPLY_CODE_RE.search(diagnostic or "")
    if match:
        return int(match[1])
    code = parse_code(status)
    return code.klass * 100 if code is not None else None


def _is_policy_status(status: str | None) -> bool:
    code = parse_code(status)
    return code is not None and code.subject == 7


def _headers(raw: bytes) -> Message:
    try:
        return BytesHeaderParser(policy=compat32).parsebytes(raw)
    except Exception:
        # Untrusted bytes; an unparsable head just means no headers to use.
        return Message()


def _header(headers: Message, name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _envelope_from_headers(headers: Message) -> list[str]:
    values = [str(v) for name in _ENVELOPE_HEADERS for v in headers.get_all(name, [])]
    return [address for _, address in getaddresses(values) if "@" in address]
