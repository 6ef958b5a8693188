"""The inbound receiver's one processor: replies (``reply+TOKEN@`` the reply domain) go
to the :class:`~mailer.inbound.capture.ReplyDesk`; everything else to the
:class:`~mailer.bounces.process.BounceProcessor`, and what it finds to be no bounce at
all — an auto-reply or a person writing to ``bounces+TOKEN@`` — comes back to the reply
desk, so out-of-office and "I have left" messages sent to the envelope sender (RFC 3834
section 4) are classified and acted on too. Used by ``mailer bounces serve`` (LMTP and
SMTP, commit before 250), ``ingest`` and ``poll``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from email.utils import getaddresses

from mailer.bounces import inbox
from mailer.bounces.policy import BounceOutcome
from mailer.bounces.process import BounceProcessor, ProcessResult, split_address
from mailer.bounces.report import Kind
from mailer.inbound.capture import Captured, ReplyDesk
from mailer.message.tokens import Tokens

log = logging.getLogger(__name__)

# Where an envelope recipient survives in a delivered message's headers.
_ENVELOPE_HEADERS = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To")


class InboundProcessor:
    """Bounces and replies behind one :class:`~mailer.bounces.process.MessageProcessor`
    face; without a reply desk (replies not configured) it is the bounce processor."""

    def __init__(
        self, bounces: BounceProcessor, replies: ReplyDesk | None, *, tokens: Tokens, bounce_domain: str
    ) -> None:
        self._bounces = bounces
        self._replies = replies
        self._tokens = tokens
        self._bounce_domain = bounce_domain

    def accepts_recipient(self, address: str) -> bool:
        """Genuine ``reply+TOKEN@`` addresses, and whatever the bounce processor takes."""
        if self._replies is not None and self._replies.accepts_recipient(address):
            return True
        return self._bounces.accepts_recipient(address)

    def process(self, raw: bytes, *, envelope_recipients: Sequence[str] = ()) -> ProcessResult:
        """Record ``raw`` as a reply or a bounce, committed before returning.

        Raises:
            StoreError: the database failed; processing it again later is safe.
        """
        addresses = list(envelope_recipients) or _envelope_from_headers(raw)
        if self._replies is not None:
            for address in addresses:
                if self._replies.reply_token(address) is None:
                    continue
                delivery_id = self._replies.delivery_of(address)
                if delivery_id is None:
                    log.warning("ignoring a reply to %s: forged or unsigned token", address)
                    return ProcessResult(BounceOutcome.UNMATCHED)
                return _result(self._replies.take(raw, delivery_id=delivery_id, envelope_to=address, channel="reply"))
        result = self._bounces.process(raw, envelope_recipients=envelope_recipients)
        if self._replies is None or result.outcome is not BounceOutcome.IGNORED:
            return result
        if result.kind not in (Kind.AUTO_REPLY, Kind.NOT_BOUNCE):
            return result
        for address in addresses:
            parts = split_address(address, self._bounces.is_bounce_domain)
            token = parts[1] if parts is not None and parts[0] == "bounces" else None
            delivery_id = self._tokens.read_verp(token) if token else None
            if delivery_id is not None:
                return _result(self._replies.take(raw, delivery_id=delivery_id, envelope_to=address, channel="bounce"))
        return result


def _result(captured: Captured) -> ProcessResult:
    if captured.delivery_id is None:
        return ProcessResult(BounceOutcome.UNMATCHED)
    outcome = BounceOutcome.DUPLICATE if captured.duplicate else BounceOutcome.REPLY
    return ProcessResult(outcome, None, (captured.delivery_id,))


def _envelope_from_headers(raw: bytes) -> list[str]:
    """Envelope recipients a delivered message's headers keep (for files and mailboxes)."""
    headers = inbox.read_headers(raw)
    values = [str(v) for name in _ENVELOPE_HEADERS for v in headers.get_all(name, [])]
    return [address for _, address in getaddresses(values) if "@" in address]
