"""E-mail addresses: the stored form, the forms SMTP needs, and likely duplicates.

* :func:`normalize_email` is the stored form: validated (no DNS), lower-cased, the
  domain in Unicode (an IDN stays readable: ``jose@bücher.example``).
* :func:`ascii_domain` gives the form for the envelope and the To header: the domain as
  IDNA A-labels (RFC 5890, ``xn--bcher-kva.example``), the local part as it is. A
  non-ASCII local part can only travel through a relay that offers SMTPUTF8 (RFC 6531),
  see :func:`needs_smtputf8`.
* :func:`mailbox_key` names the mailbox an address most likely reaches (Gmail ignores
  dots; ``+tag`` sub-addresses), to warn at import: variants are flagged, never merged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import idna
from email_validator import EmailNotValidError, validate_email

from mailer.domain.errors import InputError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GMAIL = frozenset({"gmail.com", "googlemail.com"})


def normalize_email(raw: str) -> str:
    """The address as stored: validated (no DNS) and lower-cased. Raises InputError."""
    candidate = raw.strip()
    if not candidate:
        raise InputError("email is empty")
    if "<" in candidate or ">" in candidate:
        raise InputError(f"email {candidate!r}: give the bare address, without a display name")
    if _CONTROL.search(candidate):
        raise InputError("email: line breaks and control characters are not allowed")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InputError(f"email {candidate!r}: {exc}") from exc
    return result.normalized.lower()


def ascii_domain(address: str) -> str:
    """``address`` with its domain as IDNA A-labels (``xn--...``), the local part unchanged.
    An ASCII domain passes as it is. Raises InputError when the domain has no IDNA form."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        ascii_form = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InputError(f"address {address!r}: the domain has no IDNA form ({exc})") from exc
    return f"{local}@{ascii_form}"


def needs_smtputf8(address: str) -> bool:
    """True when the local part is not ASCII: only SMTPUTF8 (RFC 6531) can carry it."""
    return not address.rpartition("@")[0].isascii()


def smtputf8_refusal(address: str, *, setting: str, offered: bool) -> str | None:
    """Why ``address`` (whose local part is not ASCII) cannot be sent with ``smtp.smtputf8 =
    setting`` to a relay that does (``offered``) or does not offer SMTPUTF8; None if it can."""
    if setting == "no":
        return f'{address}: the local part is not ASCII and smtp.smtputf8 is "no" (RFC 6531)'
    if not offered:
        return f"{address}: the local part is not ASCII and the relay does not offer SMTPUTF8 (RFC 6531)"
    return None


_GMAIL = frozenset({"gmail.com", "googlemail.com"})


def mailbox_key(email: str) -> str:
    """The mailbox an address most likely reaches: without a ``+tag``, and for Gmail also
    without dots in the local part (Gmail ignores them) and with googlemail.com as
    gmail.com. Used to warn about likely duplicates; never to merge contacts."""
    local, _, domain = email.rpartition("@")
    base = local.split("+", 1)[0] or local
    if domain in _GMAIL:
        base, domain = base.replace(".", "") or base, "gmail.com"
    return f"{base}@{domain}"


def variant_reason(email: str, other: str) -> str:
    kind = "a +tag" if "+" in email.partition("@")[0] or "+" in other.partition("@")[0] else "a Gmail dot"
    return f"{email} may reach the same mailbox as {other} ({kind} variant): imported as a separate contact"


@dataclass(frozen=True)
class SmtpEnvelope:
    """Sender and recipient as SMTP carries them (IDNA domains); ``smtputf8``: MAIL FROM
    must carry the SMTPUTF8 parameter (RFC 6531 section 3.4)."""

    sender: str
    recipient: str
    smtputf8: bool


def smtp_envelope(sender: str, recipient: str, *, setting: str, offered: bool) -> SmtpEnvelope | str:
    """The envelope for one message to a relay that does (``offered``) or does not offer
    SMTPUTF8, with ``smtp.smtputf8 = setting``; or, as a string, why it cannot be sent."""
    try:
        envelope = SmtpEnvelope(ascii_domain(sender), ascii_domain(recipient), False)
    except InputError as exc:
        return str(exc)
    for address in (envelope.recipient, envelope.sender):
        if needs_smtputf8(address):
            refusal = smtputf8_refusal(address, setting=setting, offered=offered)
            if refusal is not None:
                return refusal
            envelope = SmtpEnvelope(envelope.sender, envelope.recipient, True)
    return envelope


# --- suppression targets ---------------------------------------------------------------------


@dataclass(frozen=True)
class SuppressionTarget:
    """What one suppression covers: an ``address``, or a whole domain.

    ``@example.com`` (``kind == "domain"``) covers every address at exactly example.com;
    ``*.example.com`` (``kind == "subdomains"``) covers example.com and every domain under
    it (news.example.com, a.b.example.com): a wildcard that misses the bare domain would
    mail the very people it was meant to stop. ``text`` is the stored, displayed form
    (the normalized address, ``@domain`` or ``*.domain``); ``domain`` is the domain part,
    lower-case, in Unicode like :func:`normalize_email`'s.
    """

    kind: str  # "address" | "domain" | "subdomains"
    text: str
    domain: str

    @property
    def is_domain(self) -> bool:
        return self.kind != "address"


_WILDCARD = re.compile(r"[*?%]")


def _normalize_domain(raw: str, shown: str) -> str:
    try:
        result = validate_email(f"x@{raw}", check_deliverability=False)
    except EmailNotValidError as exc:
        raise InputError(f"{shown!r}: not a valid domain ({exc})") from exc
    return result.domain.lower()


def parse_suppression_target(raw: str) -> SuppressionTarget:
    """An address, ``@domain`` or ``*.domain`` as given to ``suppressions add``; InputError
    for anything else, naming the form to use. ``*@example.com``, ``a*@x.example`` and other
    would-be patterns are refused: they are legal local parts, so they used to be stored as
    a literal address that nobody has, suppressing nobody."""
    candidate = raw.strip()
    if not candidate:
        raise InputError("empty: give an address, @domain.example or *.domain.example")
    if _CONTROL.search(candidate):
        raise InputError("line breaks and control characters are not allowed")
    if candidate.startswith("@"):
        domain = _normalize_domain(candidate[1:], candidate)
        return SuppressionTarget("domain", f"@{domain}", domain)
    if candidate.startswith("*."):
        domain = _normalize_domain(candidate[2:], candidate)
        return SuppressionTarget("subdomains", f"*.{domain}", domain)
    local, at, rest = candidate.rpartition("@")
    if _WILDCARD.search(local if at else candidate):
        hint = f"; for everyone at {rest} use '@{rest}' (or '*.{rest}' with its subdomains)" if at and rest else ""
        raise InputError(f"{candidate!r}: wildcards are not addresses{hint}")
    address = normalize_email(candidate)
    return SuppressionTarget("address", address, address.rpartition("@")[2])


def domain_matches(domain: str, target: SuppressionTarget) -> bool:
    """True when an address at ``domain`` (normalized) is covered by the domain ``target``."""
    if target.kind == "domain":
        return domain == target.domain
    if target.kind == "subdomains":
        return domain == target.domain or domain.endswith("." + target.domain)
    return False
