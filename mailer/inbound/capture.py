"""Capture one reply: match it to its delivery, classify it, record it, act on it and
queue its forward — all in one transaction, committed before the receiver answers 250.

A reply reaches ``reply+TOKEN@`` the reply domain (the ``Reply-To`` of every message,
:mod:`mailer.releases.replyto`), or ``bounces+TOKEN@`` the bounce domain (auto-replies
answer the envelope sender, RFC 3834 section 4). Only a genuine signed token names a
delivery; the receiver refuses anything else. The same message processed twice (an MTA
retrying after a lost 250) is recorded once: its key is the delivery and the message's
own Message-ID (else a hash of its bytes).
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from email.message import Message

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailer.bounces import inbox
from mailer.config import Settings
from mailer.domain.errors import MailerError, StoreError
from mailer.domain.replies import ReplyAction, ReplyKind
from mailer.inbound import act
from mailer.inbound.classify import Reading, classify
from mailer.inbound.forward import build_forward
from mailer.inbound.text import sender_address, subject
from mailer.message.tokens import Tokens
from mailer.releases.replyto import REPLY_PREFIX, forward_sender, forward_target, is_reply_domain, reply_domain
from mailer.store import bounces as bounce_store
from mailer.store import replies as reply_store
from mailer.store import webhooks
from mailer.store.db import transaction
from mailer.store.replies import ReplyContext

log = logging.getLogger(__name__)

#: the delivery event a captured reply adds to the ledger (the contact's history shows it)
REPLY_EVENT = "replied"


@dataclass(frozen=True)
class Captured:
    """What capturing one message came to: the reply's id (None when it was recorded
    before, or names no delivery), its reading, and what was done."""

    reply_id: int | None
    delivery_id: int | None
    kind: ReplyKind | None
    action: ReplyAction | None = None
    duplicate: bool = False
    forwarded_to: str | None = None


class ReplyDesk:
    """Takes replies for deliveries; safe to share between threads (a session per call)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        settings: Settings,
        tokens: Tokens,
        clock: Callable[[], datetime],
        client_domains: Callable[[str], bool] | None = None,
    ) -> None:
        """``client_domains`` says whether a domain is a client's return-path domain (e.g.
        :meth:`mailer.bounces.process.BounceProcessor.is_bounce_domain`): with ``[replies]
        per_client`` replies are taken there too."""
        self._sessions = sessions
        self._client_domains = client_domains
        self._settings = settings
        self._tokens = tokens
        self._clock = clock
        domains = {reply_domain(settings), settings.sender.bounce_domain.lower()}
        self._own_domains = frozenset(d for d in domains if d)

    # --- the receiver's questions ----------------------------------------------------

    def reply_token(self, address: str) -> str | None:
        """The token of ``reply+TOKEN@`` a reply domain (any case, ``<>`` allowed): the
        configured one, and with ``per_client`` every client's return-path domain; else None."""
        local, at, domain = address.strip().strip("<>").strip().rpartition("@")
        prefix, plus, token = local.partition("+")
        if not at or not plus or not token or prefix.lower() != REPLY_PREFIX:
            return None
        return token if is_reply_domain(self._settings, domain, self._client_domains) else None

    def delivery_of(self, address: str) -> int | None:
        """The delivery a ``reply+TOKEN@`` address names when its signature is genuine."""
        token = self.reply_token(address)
        return None if token is None else self._tokens.read_verp(token, purpose=REPLY_PREFIX)

    def accepts_recipient(self, address: str) -> bool:
        """True for a ``reply+TOKEN@`` address with a genuine token."""
        return self.delivery_of(address) is not None

    # --- one message -------------------------------------------------------------------

    def take(self, raw: bytes, *, delivery_id: int, envelope_to: str | None, channel: str) -> Captured:
        """Record, classify, act and queue the forward, committed before returning.

        Raises:
            StoreError: the database failed; nothing was written and taking it again is safe.
        """
        now = self._clock()
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        try:
            reading = classify(msg, received=now.date(), own_domains=self._own_domains)
        except Exception:
            # Untrusted bytes: a message the classifier trips on is still a reply a person must see.
            log.exception("could not classify a reply to delivery %s; kept as human", delivery_id)
            reading = Reading(ReplyKind.HUMAN, "", "")
        own_id = inbox.header_text(msg, "Message-ID")
        fingerprint = own_id or "sha256:" + hashlib.sha256(raw).hexdigest()
        key = hashlib.sha256(f"{delivery_id}\x1f{fingerprint}".encode("utf-8", "surrogateescape")).hexdigest()
        try:
            with transaction(self._sessions) as session:
                return self._record(session, raw, msg, reading, delivery_id, envelope_to, channel, key, now)
        except SQLAlchemyError as exc:
            raise StoreError(f"database error while recording a reply: {exc.__class__.__name__}") from exc

    def _record(
        self,
        session: Session,
        raw: bytes,
        msg: Message,
        reading: Reading,
        delivery_id: int,
        envelope_to: str | None,
        channel: str,
        key: str,
        now: datetime,
    ) -> Captured:
        ctx = reply_store.reply_context(session, delivery_id)
        if ctx is None:
            return Captured(None, None, None)
        settings = self._settings.replies
        reply_id = reply_store.record_reply(
            session,
            {
                "delivery_id": ctx.delivery_id,
                "release_id": ctx.release_id,
                "contact_id": ctx.contact_id,
                "channel": channel,
                "envelope_to": envelope_to,
                "sender": sender_address(msg),
                "subject": subject(msg)[:2000] or None,
                "message_id": inbox.header_text(msg, "Message-ID"),
                "text": reading.text[: settings.keep_text_chars] or None,
                "raw": self._kept(raw),
                "kind": reading.kind.value,
                "evidence": reading.evidence or None,
                "return_date": (
                    datetime.combine(reading.return_date, time(0), tzinfo=UTC) if reading.return_date else None
                ),
                "new_email": reading.new_email,
                "new_outlet": reading.new_outlet,
                "action": ReplyAction.NONE.value,
                "dedupe_key": key,
                "received_at": now,
            },
        )
        if reply_id is None:
            return Captured(None, ctx.delivery_id, reading.kind, duplicate=True)
        try:
            # A savepoint: a reply the actions trip on is still recorded and forwarded.
            with session.begin_nested():
                action, detail = act.act(session, reply_id, ctx, reading, settings=settings, now=now)
        except (MailerError, ValueError, LookupError) as exc:
            log.exception("reply #%s: could not act on it; recorded only", reply_id)
            action, detail = ReplyAction.NONE, f"not acted on: {exc}"[:500]
        reply_store.set_reply_action(session, reply_id, action.value, detail)
        bounce_store.record_delivery_event(
            session,
            delivery_id=ctx.delivery_id,
            contact_id=ctx.contact_id,
            kind=REPLY_EVENT,
            code=None,
            detail=f"{reading.kind.value}: reply #{reply_id}" + (f" — {detail}" if detail else ""),
            dedupe_key=hashlib.sha256(f"reply\x1f{key}".encode()).hexdigest(),
            raw=None,
            at=now,
        )
        # Outgoing webhooks (mailer.ops): queued in this transaction, so none is lost.
        webhooks.reply_received(
            session,
            delivery_id=ctx.delivery_id,
            release_id=ctx.release_id,
            from_address=sender_address(msg) or "",
            subject=subject(msg)[:500] or None,
            now=now,
            extra={"reply_id": reply_id, "kind": reading.kind.value, "action": action.value},
        )
        target = self._queue_forward(session, raw, msg, reading, reply_id, ctx, now)
        return Captured(reply_id, ctx.delivery_id, reading.kind, action, forwarded_to=target)

    def _queue_forward(
        self,
        session: Session,
        raw: bytes,
        msg: Message,
        reading: Reading,
        reply_id: int,
        ctx: ReplyContext,
        now: datetime,
    ) -> str | None:
        if reading.kind.value not in self._settings.replies.forward_kinds:
            return None
        target = forward_target(ctx.release_reply_to, ctx.client_reply_to, self._settings)
        sender = forward_sender(self._settings)
        if target is None or sender is None:
            log.info("reply #%s kept in the inbox: nobody to forward it to", reply_id)
            return None
        message = build_forward(
            raw,
            msg,
            ctx=ctx,
            reading=reading,
            reply_id=reply_id,
            sender=sender,
            recipient=target,
            settings=self._settings,
            now=now,
        )
        reply_store.enqueue_forward(
            session, reply_id=reply_id, sender=sender, recipient=target, message=message, now=now
        )
        return target

    def _kept(self, raw: bytes) -> str | None:
        limit = self._settings.bounces.keep_raw_bytes
        if limit == 0:
            return None
        return raw[:limit].decode("utf-8", "replace").replace("\x00", "")
