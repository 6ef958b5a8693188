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
   only **recorded for staff review** (:mod:`mailer.bounces.inbox`, category
   ``review``, ``mailer bounces inbox``): it never changes a delivery, never scores, never
   suppresses. Only the signed token may suppress.

Acting on a token match: the policy (:mod:`mailer.bounces.policy`) decides, and
:mod:`mailer.bounces.filing` records it. A ``mailto:`` List-Unsubscribe
(``unsubscribe+TOKEN@``) suppresses the address for the release's client
(``unsubscribed``, source ``mailto``).

Mail to ``postmaster@`` / ``abuse@`` the bounce domain or to the feedback-loop address
(RFC 5321 4.5.1) goes through the same steps; whatever they do not file is kept for
staff (category ``staff``), never dropped.

Over 400 lines on purpose: one noun (the bounce processor: match, decide, record in
one transaction before the receiver's 250); splitting would cut that transaction's steps apart.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.utils import getaddresses
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailer.bounces import filing, inbox
from mailer.bounces.parse import parse_message
from mailer.bounces.policy import BounceOutcome, decide, overall
from mailer.bounces.report import BounceReport, Kind, RecipientStatus
from mailer.config import BounceSettings
from mailer.domain.errors import StoreError
from mailer.domain.states import DeliveryStatus, email_hash
from mailer.message.tokens import Tokens
from mailer.store import bounces as bounce_store
from mailer.store import proofs as proof_store
from mailer.store.bounces import BounceTarget
from mailer.store.db import transaction

log = logging.getLogger(__name__)

#: Outcomes after which a mailbox message may be acknowledged (flagged, moved): what it
#: says is in the database. Anything else is left where it is for a human.
HANDLED = frozenset(
    {
        BounceOutcome.BOUNCED,
        BounceOutcome.DELAYED,
        BounceOutcome.COMPLAINT,
        BounceOutcome.FEEDBACK,
        BounceOutcome.SENDER_REFUSED,
        BounceOutcome.REVIEW,
        BounceOutcome.KEPT,
        BounceOutcome.UNSUBSCRIBED,
        BounceOutcome.DUPLICATE,
        BounceOutcome.PROOF,
        BounceOutcome.REPLY,
    }
)

#: Local parts at the bounce domain that must always reach a person (RFC 5321 4.5.1).
STAFF_LOCALPARTS = frozenset({"postmaster", "abuse"})

# Where an envelope recipient survives in a delivered message's headers.
_ENVELOPE_HEADERS = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To")


class SendResultPending(StoreError):
    """A notice about a delivery whose send result is not recorded yet (still
    ``sending``): nothing was written; process the message again later."""


@dataclass(frozen=True)
class ProcessResult:
    """The outcome of one message, which deliveries it touched and which addresses it
    suppressed."""

    outcome: BounceOutcome
    kind: Kind | None = None
    delivery_ids: tuple[int, ...] = ()
    suppressed: tuple[str, ...] = ()

    @property
    def handled(self) -> bool:
        """True when the message may be acknowledged: it is recorded in the ledger."""
        return self.outcome in HANDLED


class MessageProcessor(Protocol):
    """What the receiver and the ingest need: :class:`BounceProcessor`, or
    :class:`mailer.inbound.desk.InboundProcessor`, which adds replies to it."""

    def accepts_recipient(self, address: str) -> bool:
        """True when mail to ``address`` is taken (the receiver refuses the rest)."""
        ...

    def process(self, raw: bytes, *, envelope_recipients: Sequence[str] = ()) -> ProcessResult:
        """Record what ``raw`` says, committed before returning (StoreError otherwise)."""
        ...


def split_address(address: str, bounce_domain: str | Callable[[str], bool]) -> tuple[str, str] | None:
    """``("bounces"|"unsubscribe", token)`` for ``bounces+TOKEN@`` or ``unsubscribe+TOKEN@``
    a bounce domain (any case, optionally in ``<>``), else None. ``bounce_domain`` is the
    one domain, or a predicate saying whether a (lower-case) domain is ours."""
    local, at, domain = address.strip().strip("<>").strip().rpartition("@")
    ours = bounce_domain if callable(bounce_domain) else (lambda d: d == bounce_domain.lower())
    if not at or not ours(domain.lower().rstrip(".")):
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
        client_domains: Callable[[str], bool] | None = None,
    ) -> None:
        """``bounce_domain`` is the instance's own return-path domain; ``client_domains``
        says whether a domain is one of the clients' (see
        :class:`mailer.bounces.domains.ClientBounceDomains`)."""
        self._sessions = sessions
        self._policy = policy
        self._tokens = tokens
        self._bounce_domain = bounce_domain.lower()
        self._client_domains = client_domains
        self._clock = clock

    def is_bounce_domain(self, domain: str) -> bool:
        """True for the instance's return-path domain and every client's."""
        domain = domain.lower().rstrip(".")
        return domain == self._bounce_domain or (self._client_domains is not None and self._client_domains(domain))

    # --- the receiver's question ---------------------------------------------------

    def accepts_recipient(self, address: str) -> bool:
        """True for ``bounces+TOKEN@`` or ``unsubscribe+TOKEN@`` at the bounce domain
        whose token carries a genuine signature, and for the staff addresses
        (:meth:`is_staff_address`); the receiver refuses everything else."""
        if self.is_staff_address(address):
            return True
        parts = split_address(address, self.is_bounce_domain)
        if parts is None:
            return False
        prefix, token = parts
        if prefix == "bounces" and self._tokens.read_proof_verp(token) is not None:
            return True
        purpose = "bounce" if prefix == "bounces" else "unsubscribe"
        return self._tokens.read_verp(token, purpose=purpose) is not None

    def is_staff_address(self, address: str) -> bool:
        """True for ``postmaster@`` and ``abuse@`` the bounce domain (RFC 5321 4.5.1,
        RFC 2142) and for the configured feedback-loop address, any case."""
        bare = address.strip().strip("<>").strip().lower()
        local, at, domain = bare.rpartition("@")
        if not at:
            return False
        if local in STAFF_LOCALPARTS and self.is_bounce_domain(domain):
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
            StoreError: the database failed, or (:class:`SendResultPending`) the notice is
                about a delivery whose send result is not recorded yet; nothing of this
                message was written, and processing it again later is safe.
        """
        headers = inbox.read_headers(raw)
        own_id = inbox.header_text(headers, "Message-ID")
        fingerprint = own_id or "sha256:" + hashlib.sha256(raw).hexdigest()
        addresses = list(envelope_recipients) or _envelope_from_headers(headers)
        ours = [p for p in (split_address(a, self.is_bounce_domain) for a in addresses) if p is not None]

        unsubscribe = next((token for prefix, token in ours if prefix == "unsubscribe"), None)
        if unsubscribe is not None:
            return self._run(lambda session: self._unsubscribe(session, unsubscribe, raw, own_id))
        staff = next((a for a in envelope_recipients if self.is_staff_address(a)), None)

        report = parse_message(raw)
        proof_token = next((t for prefix, t in ours if prefix == "bounces" and t.lower().startswith("p")), None)
        proof_token = proof_token or (report.token if report.token and report.token.lower().startswith("p") else None)
        if proof_token is not None:
            return self._proof_returned(proof_token, report, fingerprint)
        result = self._file(report, ours, raw, fingerprint)
        if staff is not None and not result.handled:
            # RFC 5321 4.5.1: mail to postmaster@ (and abuse@, the feedback address)
            # reaches a person; nothing that arrives there is dropped.
            return self._run(lambda session: self._keep(session, staff, report, raw, fingerprint))
        return result

    def _file(self, report: BounceReport, ours: list[tuple[str, str]], raw: bytes, fingerprint: str) -> ProcessResult:
        if report.kind in (Kind.AUTO_REPLY, Kind.NOT_BOUNCE):
            return ProcessResult(BounceOutcome.IGNORED, report.kind)
        # The envelope the receiver saw is authoritative over tokens found in headers.
        token = next((token for prefix, token in ours if prefix == "bounces"), None) or report.token
        delivery_id: int | None = None
        if token is not None:
            delivery_id = self._tokens.read_verp(token)
            if delivery_id is None:
                log.warning("ignoring notice %s: forged or unsigned VERP token %r", fingerprint, token)
                return ProcessResult(BounceOutcome.UNMATCHED, report.kind)
        return self._run(lambda session: self._act(session, report, delivery_id, raw, fingerprint))

    def _proof_returned(self, token: str, report: BounceReport, fingerprint: str) -> ProcessResult:
        """A returned proof: recorded on the proof, never against a contact (a proof goes
        to a person on staff; its bounce must suppress no one)."""
        proof_id = self._tokens.read_proof_verp(token)
        if proof_id is None:
            log.warning("ignoring notice %s: forged or unsigned proof token %r", fingerprint, token)
            return ProcessResult(BounceOutcome.UNMATCHED, report.kind)
        if report.kind in (Kind.AUTO_REPLY, Kind.NOT_BOUNCE):
            return ProcessResult(BounceOutcome.IGNORED, report.kind)
        said = "; ".join(
            f"{r.address}: {r.action} {r.status or ''} {r.diagnostic or ''}".strip() for r in report.recipients
        )
        summary = f"{report.kind.value}: {said or 'no recipient reported'}"[:2000]
        recorded = self._run(
            lambda session: ProcessResult(
                BounceOutcome.PROOF
                if proof_store.record_proof_bounce(session, proof_id, summary, now=self._clock())
                else BounceOutcome.DUPLICATE,
                report.kind,
            )
        )
        log.info("proof %s returned: %s", proof_id, summary)
        return recorded

    def _keep(self, session: Session, staff: str, report: BounceReport, raw: bytes, fingerprint: str) -> ProcessResult:
        outcome = inbox.keep_for_staff(
            session, staff, report, raw=raw, raw_kept=self._kept(raw), fingerprint=fingerprint, now=self._clock()
        )
        return ProcessResult(outcome, report.kind)

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
            return ProcessResult(BounceOutcome.UNMATCHED, report.kind)
        pending = [t.delivery_id for t, _ in pairs if t.status == DeliveryStatus.SENDING.value]
        if delivery_id is not None and pending:
            # A relay can return its DSN before the worker records the relay's 250 (the
            # Postfix end-to-end test catches this within a second): filing it now would
            # be overwritten by "sent". Nothing is written; the MTA (451) or the next poll
            # brings it again once the send result is in the ledger.
            raise SendResultPending(f"delivery {pending[0]}: its send result is not recorded yet; try again later")
        outcomes: list[BounceOutcome] = []
        suppressed: list[str] = []
        for target, recipient in pairs:
            if delivery_id is None:
                # Issue 12 item 5: a Message-ID or an address can be guessed; only the
                # signed token may act on a delivery.
                outcomes.append(
                    inbox.keep_for_review(
                        session,
                        target,
                        recipient,
                        report,
                        raw=raw,
                        raw_kept=self._kept(raw),
                        fingerprint=fingerprint,
                        now=self._clock(),
                    )
                )
                continue
            outcome, address = self._act_on(session, target, recipient, report.kind, raw, fingerprint)
            outcomes.append(outcome)
            if address is not None:
                suppressed.append(address)
        return ProcessResult(overall(outcomes), report.kind, tuple(t.delivery_id for t, _ in pairs), tuple(suppressed))

    def _act_on(
        self,
        session: Session,
        target: BounceTarget,
        recipient: RecipientStatus | None,
        kind: Kind,
        raw: bytes,
        fingerprint: str,
    ) -> tuple[BounceOutcome, str | None]:
        """Record one notice about one delivery and apply the policy; returns the
        outcome and the address it suppressed, if any."""
        now = self._clock()
        decision = decide(kind, recipient, suppress_hard=self._policy.suppress_hard)
        if decision is None:
            return BounceOutcome.IGNORED, None
        return filing.file_notice(
            session,
            target,
            recipient,
            kind,
            decision,
            settings=self._policy,
            raw_kept=self._kept(raw),
            fingerprint=fingerprint,
            now=now,
        )

    def _unsubscribe(self, session: Session, token: str, raw: bytes, own_id: str | None) -> ProcessResult:
        delivery_id = self._tokens.read_verp(token, purpose="unsubscribe")
        if delivery_id is None:
            log.warning("ignoring mailto unsubscribe %s: forged or unsigned token %r", own_id, token)
            return ProcessResult(BounceOutcome.UNMATCHED)
        target = bounce_store.delivery_by_id(session, delivery_id)
        if target is None:
            return ProcessResult(BounceOutcome.UNMATCHED)
        outcome, address = filing.unsubscribe(session, target, raw_kept=self._kept(raw), now=self._clock())
        if outcome is BounceOutcome.DUPLICATE:
            return ProcessResult(outcome, None, (target.delivery_id,))
        return ProcessResult(outcome, None, (target.delivery_id,), (address,) if address is not None else ())

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


def _envelope_from_headers(headers: Message) -> list[str]:
    values = [str(v) for name in _ENVELOPE_HEADERS for v in headers.get_all(name, [])]
    return [address for _, address in getaddresses(values) if "@" in address]
