"""Turn one returned message into a :class:`~mailer.bounces.report.BounceReport`.

Order of evidence, most authoritative first; each format has its own module:

1. RFC 3464 delivery status notifications (:mod:`mailer.bounces.dsn`).
2. RFC 5965 (ARF) feedback reports (:mod:`mailer.bounces.arf`): abuse, fraud or virus →
   ``complaint``; anything else → ``feedback``, a report to record that suppresses nobody.
3. RFC 3834 auto-replies (:mod:`mailer.bounces.autoreply`) → ``auto_reply``, never a
   bounce. This runs *before* the notice heuristics: an auto-reply with a notice-like
   subject or from postmaster@ is still an auto-reply. Only a message that carries a mail
   system's own failure evidence (``X-Failed-Recipients``, an enhanced status code, a
   failure transcript) is read as a notice despite such headers: Exim and Postfix mark
   their bounces ``Auto-Submitted: auto-replied`` too.
4. Legacy plain-text notices (:mod:`mailer.bounces.legacy`), recognised by their sender
   or subject.

Every recipient is classified by :func:`mailer.domain.status.classify_dsn`, the one
classifier the live SMTP path uses too (:func:`mailer.bounces.report.classified`).

The VERP token is read from the envelope recipient of the notice (the headers the final
delivery adds) and, failing that, from the ``Return-Path`` of the returned original.
Signature checks happen elsewhere; this module only extracts.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import Message

from mailer.bounces import arf, autoreply, dsn, legacy
from mailer.bounces.notice import failure_area, header, human_text, returned_original
from mailer.bounces.report import BounceReport, Kind, RecipientStatus

_TOKEN_HEADERS = ("X-Original-To", "Delivered-To", "Envelope-To", "To", "X-Envelope-To")
_TOKEN_RE = re.compile(r"(?:^|[\s<,:;\"'(])bounces\+([A-Za-z0-9._-]+)@[A-Za-z0-9.-]+", re.I)


def parse_message(raw: bytes) -> BounceReport:
    """Parse one returned message. Never raises: bytes that are not a message, or not a
    notice of any kind, give ``Kind.NOT_BOUNCE`` with no recipients."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        return _parse(msg)
    except Exception:
        # A notice is untrusted input from the internet; the email package and
        # flufl.bounce can both trip on malformed MIME. One bad notice must not stop
        # the ingest of the others.
        return BounceReport(Kind.NOT_BOUNCE, (), None, None)


def extract_token(value: str) -> str | None:
    """The VERP token of the first ``bounces+TOKEN@domain`` address in a header value
    (bare, in ``<>``, or with a display name), else None. Only ``bounces+`` counts:
    ``unsubscribe+TOKEN@...`` gives None."""
    match = _TOKEN_RE.search(value)
    return match[1] if match else None


def _parse(msg: Message) -> BounceReport:
    original = returned_original(msg)
    token = _find_token(msg, original)
    message_id = header(original, "Message-ID") if original is not None else None

    def report(
        kind: Kind, recipients: tuple[RecipientStatus, ...] = (), feedback_type: str | None = None
    ) -> BounceReport:
        return BounceReport(kind, recipients, token, message_id, feedback_type)

    text = human_text(msg)
    recipients = dsn.recipients(msg, text)
    if recipients:
        return report(_kind_of(recipients), recipients)
    if arf.is_feedback_report(msg):
        feedback_type = arf.feedback_type(msg)
        kind = Kind.COMPLAINT if feedback_type in arf.COMPLAINT_TYPES else Kind.FEEDBACK
        return report(kind, arf.complaint_recipients(msg, original, feedback_type), feedback_type)
    if autoreply.is_auto_reply(msg, failure_area(text)):
        return report(Kind.AUTO_REPLY)
    if legacy.looks_like_notice(msg):
        recipients = legacy.recipients(msg, text, original)
        if recipients:
            return report(_kind_of(recipients), recipients)
    return report(Kind.NOT_BOUNCE)


def _kind_of(recipients: tuple[RecipientStatus, ...]) -> Kind:
    actions = {r.action for r in recipients}
    if "failed" in actions:
        return Kind.BOUNCE
    if "delayed" in actions:
        return Kind.DELAY
    return Kind.NOT_BOUNCE


def _find_token(msg: Message, original: Message | None) -> str | None:
    """The VERP token from the envelope-recipient headers of the notice, else from the
    envelope sender of the original (its ``Return-Path``, or ARF ``Original-Mail-From``)."""
    values = [str(v) for name in _TOKEN_HEADERS for v in msg.get_all(name, [])]
    if original is not None:
        values += [str(v) for v in original.get_all("Return-Path", [])]
    values += [str(v) for v in arf.feedback_fields(msg).get_all("Original-Mail-From", [])]
    for value in values:
        token = extract_token(value)
        if token is not None:
            return token
    return None
