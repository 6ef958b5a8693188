"""Plain-text notices without a delivery-status part (qmail, Exchange, Yahoo, old
Postfix/Sendmail/Exim, Apache James, KDDI/au, docomo...): recipients from
``flufl.bounce`` and from the failure text, classified by that text. Message-IDs, the
notice's own addresses, the returned original's sender and postmaster/mailer-daemon
addresses are never recipients."""

from __future__ import annotations

import re
from email.message import Message
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

from mailer.bounces.notice import context, failure_area, header, squash, subject, unique
from mailer.bounces.report import RecipientStatus, classified
from mailer.domain.status import parse_code, reason_from_text

_ADDRESS_RE = re.compile(r"[A-Za-z0-9._%+'=-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_DAEMON_LOCALPARTS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|returned mail|returned to sender|delivery (?:status notification|failure"
    r"|failed|has failed|problem|notification)|mail delivery failed|failure notice"
    r"|could not be delivered|non-?delivery|not delivered|mail failure|delayed mail"
    r"|^warning: message|delivery delayed|message delayed",
    re.IGNORECASE,
)
_DAEMON_NAME_RE = re.compile(r"mail delivery (?:system|subsystem)|mailer.?daemon", re.I)
_DELAY_RE = re.compile(
    r"delay|not yet been delivered|still undelivered|will (?:keep|continue to) tr(?:y|ying)"
    r"|will be retried|only a temporary failure|warning message only|this is a warning",
    re.IGNORECASE,
)
_PERMANENT_RE = re.compile(r"permanent (?:error|failure|fatal)|giving up|gave up", re.I)
# Lines of a notice that name an address which is never the failed recipient: the
# returned original's identifiers and sender, quoted inline (Apache James "Message
# details", Exchange, Oracle Messaging Server, KDDI "Your mail sent on ... from ...").
_NOT_RECIPIENT_LINE_RE = re.compile(
    r"^[ \t>]*(?:message-id|in-reply-to|references|x-message-id|resent-message-id|from|sender|reply-to"
    r"|return-path|mail from|envelope-from|original-mail-from|original-envelope-id)\s*:(.*)$",
    re.IGNORECASE | re.MULTILINE,
)


def looks_like_notice(msg: Message) -> bool:
    """True when the sender or subject is that of a mail system's delivery notice."""
    name, address = parseaddr(header(msg, "From") or "")
    local = address.split("@")[0].lower()
    return (
        local in _DAEMON_LOCALPARTS
        or bool(_DAEMON_NAME_RE.search(name))
        or bool(_BOUNCE_SUBJECT_RE.search(subject(msg)))
    )


def recipients(msg: Message, text: str, original: Message | None) -> tuple[RecipientStatus, ...]:
    """Recipients of a notice without a delivery-status part, classified by its text."""
    area = failure_area(text)
    addresses = _addresses(msg, area, original)
    action = _action(msg, area)
    summary = squash(area)
    found: list[RecipientStatus] = []
    for address in addresses:
        about = context(area, address)
        diagnostic = about
        if len(addresses) == 1 and (not about or _uninformative(about)):
            # One recipient: the whole failure text is about it.
            diagnostic = summary or about
        code = parse_code(diagnostic)
        status = f"{code.klass}.{code.subject}.{code.detail}" if code and not code.generic else None
        found.append(classified(address, action, status, diagnostic))
    return tuple(found)


def _addresses(msg: Message, area: str, original: Message | None) -> list[str]:
    """flufl.bounce's answer when it has one, ordered as in the text; else the
    addresses the failure text names; else the returned original's ``To``."""
    ours = _own_addresses(msg, original) | _header_line_addresses(area)
    if original is not None:
        ours |= {a.lower() for a in _ADDRESS_RE.findall(str(original.get("Message-ID", "")))}
    named = [a for a in unique(_ADDRESS_RE.findall(area)) if _is_candidate(a, ours, area)]
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


def _action(msg: Message, area: str) -> str:
    """``delayed`` for a warning that delivery is still being retried, else ``failed``."""
    subject_line = header(msg, "Subject") or ""
    if _PERMANENT_RE.search(area):
        return "failed"
    if _DELAY_RE.search(subject_line) or _DELAY_RE.search(area):
        return "delayed"
    return "failed"


def _uninformative(about: str) -> bool:
    return parse_code(about) is None and reason_from_text(about) is None
