"""RFC 3464 delivery status notifications: every ``message/delivery-status`` part, even
outside ``multipart/report`` (OpenSMTPD sends ``multipart/mixed``). A block without a
``Diagnostic-Code`` borrows the human-readable text about its recipient."""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser

from mailer.bounces.notice import context, failure_area, header, parts
from mailer.bounces.report import RecipientStatus, classified
from mailer.domain.status import parse_code

_ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
# OpenSMTPD reports its final give-up with "Action: delayed"; RFC 3463 X.4.7 "Delivery
# time expired" means the message is gone, so such a block is a failure.
_GAVE_UP_RE = re.compile(r"envelope expired|delivery time expired", re.IGNORECASE)


def recipients(msg: Message, text: str) -> tuple[RecipientStatus, ...]:
    """The per-recipient blocks of every delivery-status part of ``msg``; ``text`` is
    the notice's human-readable text."""
    area = failure_area(text)
    found: list[RecipientStatus | None] = []
    for part in parts(msg):
        if part.get_content_type() == "message/delivery-status":
            found.extend(_block(block, area) for block in _status_blocks(part))
    return tuple(r for r in found if r is not None)


def _status_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status part (per-message block first)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = payload if isinstance(payload, str) else ""
    return [HeaderParser().parsestr(chunk) for chunk in re.split(r"\n\s*\n", text.strip())]


def _block(block: Message, area: str) -> RecipientStatus | None:
    """One per-recipient block as a status, or None for the per-message block."""
    address = _recipient_field(block, "Original-Recipient") or _recipient_field(block, "Final-Recipient")
    if address is None:
        return None
    status_text = header(block, "Status")
    code = parse_code(status_text)
    status = f"{code.klass}.{code.subject}.{code.detail}" if code is not None else None
    diagnostic = header(block, "Diagnostic-Code") or context(area, address)
    action = _action(header(block, "Action"), status)
    if action == "delayed" and (
        (code is not None and (code.subject, code.detail) == (4, 7)) or _GAVE_UP_RE.search(diagnostic or "")
    ):
        action = "failed"
    return classified(address, action, status, diagnostic)


def _recipient_field(block: Message, name: str) -> str | None:
    """The address of ``rfc822; user@example.org`` (RFC 3464 §2.3.1-2)."""
    value = header(block, name)
    if not value:
        return None
    address = value.split(";", 1)[-1].strip().strip("<>").strip()
    return address if "@" in address else None


def _action(value: str | None, status: str | None) -> str:
    """The RFC 3464 action, normalised; inferred from the status class when unusable."""
    word = (value or "").strip().lower().split(" ")[0]
    if word in _ACTIONS:
        return word
    if word == "error":  # old OpenSMTPD wrote "Action: error"
        return "failed"
    return {"4": "delayed", "2": "delivered"}.get((status or "5")[0], "failed")
