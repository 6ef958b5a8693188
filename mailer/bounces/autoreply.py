"""RFC 3834 auto-replies (``Auto-Submitted: auto-replied``, ``X-Autoreply``,
``X-Autorespond``, ``Precedence: auto_reply``, out-of-office subjects in English, German,
French, Spanish, Japanese and more): never a bounce."""

from __future__ import annotations

import re
from email.message import Message

from mailer.bounces.notice import header, subject

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


def is_auto_reply(msg: Message, area: str) -> bool:
    """An RFC 3834 auto-reply (or one with an out-of-office subject), whatever its From
    or the rest of its subject says, unless it carries a mail system's own failure
    evidence (in its headers or in ``area``, the failure part of its text): Exim and
    Postfix mark their bounces ``Auto-Submitted: auto-replied`` too, and Exim adds
    ``X-Failed-Recipients``."""
    if msg.get("X-Failed-Recipients") is not None or _FAILURE_EVIDENCE_RE.search(area):
        return False
    auto_submitted = (header(msg, "Auto-Submitted") or "").lower()
    precedence = (header(msg, "Precedence") or "").lower()
    return (
        auto_submitted.startswith("auto-replied")
        or precedence == "auto_reply"
        or any(msg.get(name) is not None for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"))
        or bool(_AUTO_REPLY_SUBJECT_RE.search(subject(msg)))
    )
