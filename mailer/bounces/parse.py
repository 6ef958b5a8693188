"""Turn one returned message into a ``BounceReport``.

Order of evidence, most authoritative first:

1. RFC 3464 delivery status notifications: every ``message/delivery-status`` part, even
   outside ``multipart/report`` (OpenSMTPD sends ``multipart/mixed``). A block without a
   ``Diagnostic-Code`` borrows the human-readable text about its recipient.
2. RFC 5965 (ARF) feedback reports: ``Feedback-Type`` abuse, fraud or virus →
   ``complaint``; auth-failure, not-spam, other (or anything else) → ``feedback``, a
   report to record that suppresses nobody.
3. RFC 3834 auto-replies (``Auto-Submitted: auto-replied``, ``X-Autoreply``,
   ``X-Autorespond``, ``Precedence: auto_reply``, out-of-office subjects in English,
   German, French, Spanish, Japanese and more) → ``auto_reply``, never a bounce. This runs
   *before* the notice heuristics: an auto-reply with a notice-like subject or from
   postmaster@ is still an auto-reply. Only a message that carries a mail system's own
   failure evidence (``X-Failed-Recipients``, an enhanced status code, a failure
   transcript) is read as a notice despite such headers: Exim and Postfix mark their
   bounces ``Auto-Submitted: auto-replied`` too.
4. Legacy plain-text notices (qmail, Exchange, Yahoo, old Postfix/Sendmail/Exim, Apache
   James, KDDI/au, docomo...): recipients from ``flufl.bounce`` and from the failure
   text, classified by that text. Message-IDs, the notice's own addresses, the returned
   original's sender and postmaster/mailer-daemon addresses are never recipients.

Every recipient is classified by :func:`mailer.domain.status.classify_dsn`, the one classifier
the live SMTP path uses too.

The VERP token is read from the envelope recipient of the notice (the headers the final
delivery adds) and, failing that, from the ``Return-Path`` of the returned original.
Signature checks happen elsewhere; this module only extracts.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from enum import StrEnum

from flufl.bounce import all_failures

from mailer.domain.status import Fault, Reason, classify_dsn, parse_code, reason_from_text


class BounceClass(StrEnum):
    """Whether the address should be suppressed (hard) or merely retried later (soft)."""

    HARD = "hard"
    SOFT = "soft"


class Kind(StrEnum):
    """What a returned message is."""

    BOUNCE = "bounce"
    DELAY = "delay"
    COMPLAINT = "complaint"  # ARF abuse, fraud, virus
    FEEDBACK = "feedback"  # ARF auth-failure, not-spam, other: recorded, never acted on
    AUTO_REPLY = "auto_reply"
    NOT_BOUNCE = "not_bounce"


#: ARF feedback types (RFC 5965 7.3) that are a recipient's complaint about our mail.
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus"})


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's outcome. ``action`` is one of the RFC 3464 actions: failed,
    delayed, delivered, relayed, expanded."""

    address: str
    action: str
    status: str | None
    diagnostic: str | None
    bounce_class: BounceClass
    reason: Reason
    fault: Fault | None = None


@dataclass(frozen=True)
class BounceReport:
    """Everything a returned message says: its kind, the recipients it reports on, the
    raw VERP token it came back to, and the Message-ID of the original it returns."""

    kind: Kind
    recipients: tuple[RecipientStatus, ...]
    token: str | None
    original_message_id: str | None
    feedback_type: str | None = None


_ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
_MAX_DIAGNOSTIC = 500
_TOKEN_HEADERS = ("X-Original-To", "Delivered-To", "Envelope-To", "To", "X-Envelope-To")
_TOKEN_RE = re.compile(r"(?:^|[\s<,:;\"'(])bounces\+([A-Za-z0-9._-]+)@[A-Za-z0-9.-]+", re.I)
_ADDRESS_RE = re.compile(r"[A-Za-z0-9._%+'=-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_DAEMON_LOCALPARTS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})

# Lines after which a legacy notice quotes the original message.
_COPY_MARKER_RE = re.compile(
    r"^.*(?:below this line is a copy of the message|this is a copy of (?:your|the) message"
    r"|original message headers|original message follows|-{2,} ?original message ?-{2,}|below is a copy of the"
    r" original message|unsent message below|text of (?:the|your) returned message"
    r"|the headers? of (?:your|the original) message|message headers follow).*$",
    re.IGNORECASE | re.MULTILINE,
)
_HEADER_LINE_RE = re.compile(r"^[A-Za-z0-9-]+:[ \t]", re.MULTILINE)
_BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|returned mail|returned to sender|delivery (?:status notification|failure"
    r"|failed|has failed|problem|notification)|mail delivery failed|failure notice"
    r"|could not be delivered|non-?delivery|not delivered|mail failure|delayed mail"
    r"|^warning: message|delivery delayed|message delayed",
    re.IGNORECASE,
)
_DAEMON_NAME_RE = re.compile(r"mail delivery (?:system|subsystem)|mailer.?daemon", re.I)
# Out-of-office subjects (after any "Re:"-like prefix or an opening bracket): English,
# German, French, Spanish, Japanese, Italian, Dutch.
_AUTO_REPLY_SUBJECT_RE = re.compile(
    r"^\s*(?:(?:re|aw|antw|sv|fw|wg|tr)\s*:\s*)*[\[【(（「]?\s*(?:out of (?:the )?office|automatic reply"
    r"|auto(?:matic)?[- ]?(?:reply|response|respond)|auto:|autoreply|autoresponse|vacation|on vacation|on leave"
    r"|away from (?:the|my) office|i am (?:away|out)|ooo\b"
    r"|abwesenheit|abwesend|automatische antwort|nicht im büro|au(?:ß|ss)er haus|urlaub"
    r"|réponse automatique|reponse automatique|absence|absent|message d'absence|en congés?"
    r"|respuesta automática|respuesta automatica|fuera de (?:la )?oficina|ausente|de vacaciones"
    r"|自動応答|自動返信|自動送信|不在|休暇|外出"
    r"|risposta automatica|fuori (?:sede|ufficio)|automatisch antwoord|afwezig)",
    re.IGNORECASE,
)
# What a mail system's own failure notice says and an out-of-office text does not.
_FAILURE_EVIDENCE_RE = re.compile(
    r"(?<![\d.])[45]\.\d{1,3}\.\d{1,3}(?![\d.]*\d)|mail delivery (?:software|system|subsystem)"
    r"|qmail-send program|permanent (?:fatal )?error|i(?:'m| am) afraid i wasn't able to deliver"
    r"|could not be delivered to (?:one or more|the following)|delivery to the following recipients? failed"
    r"|the following addresses had|message could not be delivered to the following|(?:was|were) not delivered"
    r"|(?:has|have) not been delivered|could not be delivered|delivery (?:has )?failed|longer than the maximum size"
    r"|undeliverable|returned to sender",
    re.IGNORECASE,
)
_DELAY_RE = re.compile(
    r"delay|not yet been delivered|still undelivered|will (?:keep|continue to) tr(?:y|ying)"
    r"|will be retried|only a temporary failure|warning message only|this is a warning",
    re.IGNORECASE,
)
_PERMANENT_RE = re.compile(r"permanent (?:error|failure|fatal)|giving up|gave up", re.I)
# OpenSMTPD reports its final give-up with "Action: delayed"; RFC 3463 X.4.7 "Delivery
# time expired" means the message is gone, so such a block is a failure.
_GAVE_UP_RE = re.compile(r"envelope expired|delivery time expired", re.IGNORECASE)


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


def report_to_json(report: BounceReport, *, file: str | None = None) -> dict[str, object]:
    """A JSON-ready dict of ``report`` (``file`` names where it came from, if known)."""
    return {
        "file": file,
        "kind": report.kind.value,
        "recipients": [
            {
                "address": r.address,
                "action": r.action,
                "status": r.status,
                "diagnostic": r.diagnostic,
                "class": r.bounce_class.value,
                "reason": r.reason.value,
                "fault": r.fault.value if r.fault is not None else None,
            }
            for r in report.recipients
        ],
        "token": report.token,
        "original_message_id": report.original_message_id,
    }


def extract_token(value: str) -> str | None:
    """The VERP token of the first ``bounces+TOKEN@domain`` address in a header value
    (bare, in ``<>``, or with a display name), else None. Only ``bounces+`` counts:
    ``unsubscribe+TOKEN@...`` gives None."""
    match = _TOKEN_RE.search(value)
    return match[1] if match else None


# --- the decision --------------------------------------------------------------------


def _parse(msg: Message) -> BounceReport:
    original = _returned_original(msg)
    token = _find_token(msg, original)
    message_id = _header(original, "Message-ID") if original is not None else None

    def report(
        kind: Kind, recipients: tuple[RecipientStatus, ...] = (), feedback_type: str | None = None
    ) -> BounceReport:
        return BounceReport(kind, recipients, token, message_id, feedback_type)

    text = _human_text(msg)
    recipients = _dsn_recipients(msg, text)
    if recipients:
        return report(_kind_of(recipients), recipients)
    if _is_feedback_report(msg):
        feedback_type = _feedback_type(msg)
        kind = Kind.COMPLAINT if feedback_type in COMPLAINT_TYPES else Kind.FEEDBACK
        return report(kind, _complaint_recipients(msg, original, feedback_type), feedback_type)
    if _is_auto_reply(msg, _failure_area(text)):
        return report(Kind.AUTO_REPLY)
    if _looks_like_notice(msg):
        recipients = _legacy_recipients(msg, text, original)
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


# --- RFC 3464 delivery status notifications ------------------------------------------


def _dsn_recipients(msg: Message, text: str) -> tuple[RecipientStatus, ...]:
    area = _failure_area(text)
    found: list[RecipientStatus | None] = []
    for part in _parts(msg):
        if part.get_content_type() == "message/delivery-status":
            found.extend(_dsn_block(block, area) for block in _status_blocks(part))
    return tuple(r for r in found if r is not None)


def _status_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status part (per-message block first)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = payload if isinstance(payload, str) else ""
    return [HeaderParser().parsestr(chunk) for chunk in re.split(r"\n\s*\n", text.strip())]


def _dsn_block(block: Message, area: str) -> RecipientStatus | None:
    """One per-recipient block as a status, or None for the per-message block."""
    address = _recipient_field(block, "Original-Recipient") or _recipient_field(block, "Final-Recipient")
    if address is None:
        return None
    status_text = _header(block, "Status")
    code = parse_code(status_text)
    status = f"{code.klass}.{code.subject}.{code.detail}" if code is not None else None
    diagnostic = _header(block, "Diagnostic-Code") or _context(area, address)
    action = _action(_header(block, "Action"), status)
    if action == "delayed" and (
        (code is not None and (code.subject, code.detail) == (4, 7)) or _GAVE_UP_RE.search(diagnostic or "")
    ):
        action = "failed"
    return _recipient(address, action, status, diagnostic)


def _recipient_field(block: Message, name: str) -> str | None:
    """The address of ``rfc822; user@example.org`` (RFC 3464 §2.3.1-2)."""
    value = _header(block, name)
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


def _recipient(address: str, action: str, status: str | None, diagnostic: str | None) -> RecipientStatus:
    verdict = classify_dsn(status, diagnostic, action=action)
    bounce_class = BounceClass.HARD if verdict.hard else BounceClass.SOFT
    reason = verdict.reason or Reason.OTHER
    return RecipientStatus(address, action, status, diagnostic, bounce_class, reason, verdict.fault)


# --- RFC 5965 feedback reports --------------------------------------------------------


def _is_feedback_report(msg: Message) -> bool:
    report_type = str(msg.get_param("report-type") or "").lower()
    if msg.get_content_type() == "multipart/report" and report_type == "feedback-report":
        return True
    return any(p.get_content_type() == "message/feedback-report" for p in _parts(msg))


def _feedback_type(msg: Message) -> str:
    """The report's ``Feedback-Type`` (RFC 5965 3.1), lower case; ``abuse`` when missing
    (the most common and the one RFC 5965 7.3 lists first)."""
    value = _header(_feedback_fields(msg), "Feedback-Type") or "abuse"
    return value.split(";")[0].strip().lower() or "abuse"


def _complaint_recipients(msg: Message, original: Message | None, feedback_type: str) -> tuple[RecipientStatus, ...]:
    """The reported recipient: ``Original-Rcpt-To`` (RFC 5965 §3.5), else the original
    message's ``To``."""
    fields = _feedback_fields(msg)
    addresses = [a for _, a in getaddresses(fields.get_all("Original-Rcpt-To", []))]
    if not addresses and original is not None:
        addresses = [a for _, a in getaddresses(original.get_all("To", []))]
    reason = Reason.SPAM_BLOCKED if feedback_type in COMPLAINT_TYPES else Reason.OTHER
    return tuple(
        RecipientStatus(a, "delivered", None, f"feedback: {feedback_type}", BounceClass.SOFT, reason)
        for a in addresses
        if "@" in a
    )


def _feedback_fields(msg: Message) -> Message:
    for part in _parts(msg):
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            return HeaderParser().parsestr(_decoded(part))
    return Message()


# --- RFC 3834 auto-replies ------------------------------------------------------------


def _is_auto_reply(msg: Message, area: str) -> bool:
    """An RFC 3834 auto-reply (or one with an out-of-office subject), whatever its From
    or the rest of its subject says, unless it carries a mail system's own failure
    evidence: Exim and Postfix mark their bounces ``Auto-Submitted: auto-replied`` too,
    and Exim adds ``X-Failed-Recipients``."""
    if msg.get("X-Failed-Recipients") is not None or _FAILURE_EVIDENCE_RE.search(area):
        return False
    auto_submitted = (_header(msg, "Auto-Submitted") or "").lower()
    precedence = (_header(msg, "Precedence") or "").lower()
    return (
        auto_submitted.startswith("auto-replied")
        or precedence == "auto_reply"
        or any(msg.get(name) is not None for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"))
        or bool(_AUTO_REPLY_SUBJECT_RE.search(_subject(msg)))
    )


def _subject(msg: Message) -> str:
    """The subject, RFC 2047 encoded words decoded (Japanese subjects always are)."""
    value = msg.get("Subject")
    if value is None:
        return ""
    try:
        return " ".join(str(make_header(decode_header(str(value)))).split())
    except (LookupError, ValueError, UnicodeError):
        return " ".join(str(value).split())


def _looks_like_notice(msg: Message) -> bool:
    """True when the sender or subject is that of a mail system's delivery notice."""
    name, address = parseaddr(_header(msg, "From") or "")
    local = address.split("@")[0].lower()
    return (
        local in _DAEMON_LOCALPARTS
        or bool(_DAEMON_NAME_RE.search(name))
        or bool(_BOUNCE_SUBJECT_RE.search(_subject(msg)))
    )


# --- legacy plain-text notices ----------------------------------------------------------


def _legacy_recipients(msg: Message, text: str, original: Message | None) -> tuple[RecipientStatus, ...]:
    """Recipients of a notice without a delivery-status part, classified by its text."""
    area = _failure_area(text)
    addresses = _legacy_addresses(msg, area, original)
    action = _legacy_action(msg, area)
    summary = _squash(area)
    found: list[RecipientStatus] = []
    for address in addresses:
        context = _context(area, address)
        diagnostic = context
        if len(addresses) == 1 and (not context or _uninformative(context)):
            # One recipient: the whole failure text is about it.
            diagnostic = summary or context
        code = parse_code(diagnostic)
        status = f"{code.klass}.{code.subject}.{code.detail}" if code and not code.generic else None
        found.append(_recipient(address, action, status, diagnostic))
    return tuple(found)


def _legacy_addresses(msg: Message, area: str, original: Message | None) -> list[str]:
    """flufl.bounce's answer when it has one, ordered as in the text; else the
    addresses the failure text names; else the returned original's ``To``."""
    ours = _own_addresses(msg, original) | _header_line_addresses(area)
    if original is not None:
        ours |= {a.lower() for a in _ADDRESS_RE.findall(str(original.get("Message-ID", "")))}
    named = [a for a in _unique(_ADDRESS_RE.findall(area)) if _is_candidate(a, ours, area)]
    flufl = [a for a in _flufl_addresses(msg) if _is_candidate(a, ours, area)]
    if flufl:
        lowered = [a.lower() for a in named]
        return sorted(flufl, key=lambda a: lowered.index(a) if a in lowered else len(lowered))
    if named:
        return named
    if original is not None:
        return [a for _, a in getaddresses(original.get_all("To", [])) if "@" in a][:1]
    return []


def _flufl_addresses(msg: Message) -> list[str]:
    try:
        temporary, permanent = all_failures(msg)
    except Exception:
        # flufl.bounce re-raises whatever its heuristic detectors trip on.
        return []
    found = {
        (a.decode("ascii", "replace") if isinstance(a, bytes) else str(a)).lower() for a in (*temporary, *permanent)
    }
    return sorted(a for a in found if "@" in a and not a.startswith("bounces+"))


def _own_addresses(msg: Message, original: Message | None) -> set[str]:
    """Addresses that are ours or the notice's, never a failed recipient."""
    values = [msg.get_all(h, []) for h in ("From", "To", "Reply-To", "Sender")]
    if original is not None:
        values += [original.get_all(h, []) for h in ("From", "Return-Path", "Sender", "Reply-To")]
    return {a.lower() for group in values for _, a in getaddresses([str(v) for v in group]) if a}


# Lines of a notice that name an address which is never the failed recipient: the
# returned original's identifiers and sender, quoted inline (Apache James "Message
# details", Exchange, Oracle Messaging Server, KDDI "Your mail sent on ... from ...").
_NOT_RECIPIENT_LINE_RE = re.compile(
    r"^[ \t>]*(?:message-id|in-reply-to|references|x-message-id|resent-message-id|from|sender|reply-to"
    r"|return-path|mail from|envelope-from|original-mail-from|original-envelope-id)\s*:(.*)$",
    re.IGNORECASE | re.MULTILINE,
)


def _header_line_addresses(area: str) -> set[str]:
    return {a.lower() for m in _NOT_RECIPIENT_LINE_RE.finditer(area) for a in _ADDRESS_RE.findall(m[1])}


def _is_candidate(address: str, ours: set[str], area: str) -> bool:
    local = address.split("@")[0].lower()
    if (
        address.lower() in ours
        or local in _DAEMON_LOCALPARTS
        or local.startswith(("bounces+", "unsubscribe+"))
        or _inside_message_id(address, area)
    ):
        return False
    # The envelope sender quoted in an SMTP transcript ("MAIL FROM:<...>").
    return not re.search(r"mail from:\s*<?" + re.escape(address), area, re.IGNORECASE)


def _inside_message_id(address: str, area: str) -> bool:
    """True when ``address`` is only ever quoted as a message identifier ("Message ID:
    <...>", "Original message id = <...>"), never as a mailbox."""
    lines = [line for line in area.splitlines() if address.lower() in line.lower()]
    return bool(lines) and all(re.search(r"message[- ]?id|\bid\s*[:=]", line, re.IGNORECASE) for line in lines)


def _legacy_action(msg: Message, area: str) -> str:
    """``delayed`` for a warning that delivery is still being retried, else ``failed``."""
    subject = _header(msg, "Subject") or ""
    if _PERMANENT_RE.search(area):
        return "failed"
    if _DELAY_RE.search(subject) or _DELAY_RE.search(area):
        return "delayed"
    return "failed"


def _uninformative(context: str) -> bool:
    return parse_code(context) is None and reason_from_text(context) is None


# --- text helpers -------------------------------------------------------------------------


def _failure_area(text: str) -> str:
    """The human-readable text up to where it starts quoting the original message."""
    marker = _COPY_MARKER_RE.search(text)
    return text[: marker.start()] if marker else text


def _context(area: str, address: str) -> str | None:
    """What the text says about ``address``: the rest of each line naming it, plus the
    lines that continue it (more indented, or the paragraph below a bare address)."""
    lines = area.splitlines()
    pieces: list[str] = []
    needle = address.lower()
    used: set[int] = set()
    for index, line in enumerate(lines):
        position = line.lower().find(needle)
        if position < 0 or index in used:
            continue
        rest = line[position + len(needle) :].strip(" \t<>:;,.()")
        indent = len(line) - len(line.lstrip())
        bare = not rest
        if rest:
            pieces.append(rest)
        for number in range(index + 1, len(lines)):
            following = lines[number]
            deeper = len(following) - len(following.lstrip()) > indent
            starts_entry = following.strip().lstrip("<").lower().startswith(needle)
            if not following.strip() or starts_entry or not (bare or deeper):
                break
            used.add(number)
            pieces.append(following.strip())
    joined = _squash(" ".join(_unique(pieces)))
    return joined or None


def _squash(text: str) -> str:
    squashed = " ".join(text.split())
    return squashed[:_MAX_DIAGNOSTIC]


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for item in items:
        if item.lower() not in seen:
            seen.add(item.lower())
            kept.append(item)
    return kept


# --- MIME helpers -------------------------------------------------------------------------


def _parts(msg: Message) -> Iterator[Message]:
    """Every part of the notice itself: never descends into a returned message or into
    the header blocks of a delivery-status part."""
    yield msg
    if msg.get_content_maintype() == "multipart" and msg.is_multipart():
        for sub in msg.get_payload():
            if isinstance(sub, Message):
                yield from _parts(sub)


def _human_text(msg: Message) -> str:
    """The notice's own readable text: its text/plain parts, else its text/html ones."""
    leaves = [p for p in _parts(msg) if not p.is_multipart()]
    plain = [_decoded(p) for p in leaves if p.get_content_type() == "text/plain"]
    if plain:
        return "\n".join(plain)
    html = [_decoded(p) for p in leaves if p.get_content_type() == "text/html"]
    return re.sub(r"<[^>]*>", " ", "\n".join(html))


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("latin-1")


def _returned_original(msg: Message) -> Message | None:
    """The headers of the returned original: a message/rfc822 or text/rfc822-headers
    part, else a copy quoted in the text after a marker line."""
    for part in _parts(msg):
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if content_type == "text/rfc822-headers":
            return HeaderParser().parsestr(_decoded(part).lstrip())
    return _quoted_original(_human_text(msg))


def _quoted_original(text: str) -> Message | None:
    marker = _COPY_MARKER_RE.search(text)
    if marker is None:
        return None
    # Skip the rest of the preamble ("------ No more than 20K characters of the body
    # are included.") up to the first header line.
    start = _HEADER_LINE_RE.search(text, marker.end(), marker.end() + 1000)
    if start is None:
        return None
    headers = HeaderParser().parsestr(text[start.start() :])
    return headers if headers.get("Message-ID") or headers.get("To") else None


def _find_token(msg: Message, original: Message | None) -> str | None:
    """The VERP token from the envelope-recipient headers of the notice, else from the
    envelope sender of the original (its ``Return-Path``, or ARF ``Original-Mail-From``)."""
    values = [str(v) for name in _TOKEN_HEADERS for v in msg.get_all(name, [])]
    if original is not None:
        values += [str(v) for v in original.get_all("Return-Path", [])]
    values += [str(v) for v in _feedback_fields(msg).get_all("Original-Mail-From", [])]
    for value in values:
        token = extract_token(value)
        if token is not None:
            return token
    return None


def _header(msg: Message, name: str) -> str | None:
    """A header's value as one unfolded line, or None when absent."""
    value = msg.get(name)
    if value is None:
        return None
    return " ".join(str(value).split())
