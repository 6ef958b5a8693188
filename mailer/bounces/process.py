"""Act on one returned message: match it to the delivery it is about, then apply the
bounce policy in one transaction.

Matching, most trustworthy first:

1. The signed VERP token of the envelope recipient (``bounces+TOKEN@``): it names the
   delivery. A token that is present but fails the signature check makes the whole
   message untrusted: it is logged and counted as unmatched, and no weaker evidence is
   tried, because DESIGN.md promises that forged bounces cannot suppress anyone.
2. Without a token: the Message-ID of the returned original (stable per delivery).
3. Without either: each reported address, to the newest delivery sent to it.

Acting (``BounceSettings``): every matched notice becomes one ``DeliveryEvent``
(``bounced``, ``delayed`` or ``complained``) with the raw message, size-capped. The event
carries a fingerprint of (delivery, kind, status, the notice's own Message-ID or bytes),
so the same notice processed twice is recorded once and acted on once.

* hard bounce → delivery ``bounced`` with its reason; address suppressed everywhere
  (``hard_bounce``) when ``suppress_hard``.
* soft bounce → delivery ``bounced``; the contact's soft score counts it (at most once a
  day, restarting when stale) unless the refusal is about us or the message rather than
  the address (5.7.x policy, spam, size); at ``soft_threshold`` → ``soft_bounce``.
* delay → event only. complaint (ARF) → suppressed everywhere (``complaint``).
* auto-replies and anything that is not a notice → nothing, ever.
* ``unsubscribe+TOKEN@`` (a ``mailto:`` List-Unsubscribe) → suppressed for the release's
  client (``unsubscribed``, source ``mailto``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from enum import StrEnum

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailer.bounces.classify import BounceClass, Reason, parse_code
from mailer.bounces.parse import BounceReport, Kind, RecipientStatus, parse_message
from mailer.config import BounceSettings
from mailer.db import transaction
from mailer.domain import GLOBAL_SCOPE, SuppressionReason, email_hash
from mailer.errors import StoreError
from mailer.store import bounces as bounce_store
from mailer.store import suppressions as suppression_store
from mailer.store.bounces import BounceTarget
from mailer.tokens import Tokens

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What processing one message came to."""

    BOUNCED = "bounced"
    DELAYED = "delayed"
    COMPLAINT = "complaint"
    UNSUBSCRIBED = "unsubscribed"
    IGNORED = "ignored"  # auto-reply, human mail, a notice reporting no failure
    UNMATCHED = "unmatched"  # a notice for no known delivery, or a forged token
    DUPLICATE = "duplicate"  # already recorded earlier


#: Outcomes after which a mailbox message may be acknowledged (flagged, moved): what it
#: says is in the ledger. Anything else is left where it is for a human.
HANDLED = frozenset({Outcome.BOUNCED, Outcome.DELAYED, Outcome.COMPLAINT, Outcome.UNSUBSCRIBED, Outcome.DUPLICATE})

#: Soft-bounce reasons that say nothing about the address: the receiver refused us (our
#: IP, our domain's reputation) or this message (content, size). RFC 3463 §3.8: X.7.x is
#: security or policy status. Counting these would suppress live journalists because
#: our sending IP got listed somewhere.
UNSCORED_REASONS = frozenset({Reason.POLICY_BLOCKED, Reason.SPAM_REJECTED, Reason.MESSAGE_TOO_LARGE})

# Where an envelope recipient survives in a delivered message's headers.
_ENVELOPE_HEADERS = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To")
_PRIORITY = (Outcome.COMPLAINT, Outcome.BOUNCED, Outcome.DELAYED, Outcome.UNSUBSCRIBED)
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
        whose token carries a genuine signature; the receiver refuses everything else."""
        parts = split_address(address, self._bounce_domain)
        if parts is None:
            return False
        prefix, token = parts
        purpose = "bounce" if prefix == "bounces" else "unsubscribe"
        return self._tokens.read_verp(token, purpose=purpose) is not None

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

        report = parse_message(raw)
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
        relevant = [r for r in report.recipients if report.kind is Kind.COMPLAINT or r.action in ("failed", "delayed")]
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
        if not bounce_store.record_delivery_event(
            session,
            delivery_id=target.delivery_id,
            contact_id=target.contact_id,
            kind=event,
            code=code,
            detail=detail,
            dedupe_key=key,
            raw=self._kept(raw),
            at=now,
        ):
            return Outcome.DUPLICATE, None

        source = f"{'complaint' if kind is Kind.COMPLAINT else 'bounce'} {fingerprint}"
        if outcome is Outcome.COMPLAINT:
            return outcome, self._suppress(session, target, SuppressionReason.COMPLAINT, source, now)
        if outcome is Outcome.DELAYED or recipient is None:
            return outcome, None
        bounce_store.mark_delivery_bounced(
            session, target.delivery_id, reason=recipient.reason.value, code=code, reply=detail, now=now
        )
        if recipient.bounce_class is BounceClass.HARD:
            if self._policy.suppress_hard:
                return outcome, self._suppress(session, target, SuppressionReason.HARD_BOUNCE, source, now)
            return outcome, None
        if recipient.reason in UNSCORED_REASONS or _is_policy_status(status):
            return outcome, None
        score = bounce_store.bump_soft_bounce_score(
            session, target.contact_id, now=now, reset_days=self._policy.soft_reset_days
        )
        if score >= self._policy.soft_threshold:
            return outcome, self._suppress(session, target, SuppressionReason.SOFT_BOUNCE, source, now)
        return outcome, None

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
        return [(target, None)] if kind is Kind.COMPLAINT else []
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
