"""Where replies to a release go: the tokenized ``Reply-To`` of each message
(``reply+TOKEN@`` the reply domain) and the person a captured reply is forwarded to.

:func:`reply_domain` is the one place that picks the reply domain: today the configured
``[replies] domain``; once clients carry their own sending identity it can prefer the
client's domain (its callers already pass the client). :func:`is_reply_domain` is its
inverse for the receiver.
"""

from __future__ import annotations

from mailer.config import Settings
from mailer.message.tokens import Tokens

#: the local-part prefix of reply addresses, and the purpose their tokens are signed for
REPLY_PREFIX = "reply"


def reply_domain(settings: Settings, client_slug: str | None = None) -> str | None:
    """The domain of ``reply+TOKEN@`` addresses for a release of ``client_slug``; None
    when replies are not captured (messages then carry the client's own Reply-To)."""
    domain = (settings.replies.domain or "").strip().lower()
    return domain or None


def is_reply_domain(settings: Settings, domain: str) -> bool:
    """True when ``domain`` is a domain :func:`reply_domain` may hand out."""
    ours = reply_domain(settings)
    return ours is not None and domain.strip().lower() == ours


def reply_address(tokens: Tokens, settings: Settings, delivery_id: int, client_slug: str | None) -> str | None:
    """``reply+TOKEN@domain`` for one delivery (the token signed for purpose ``reply``),
    or None when replies are not captured."""
    domain = reply_domain(settings, client_slug)
    if domain is None:
        return None
    return f"{REPLY_PREFIX}+{tokens.verp(delivery_id, purpose=REPLY_PREFIX)}@{domain}"


def forward_sender(settings: Settings) -> str | None:
    """The From and envelope sender of forwarded replies (``replies.forward_from``, else
    ``replies@`` the reply domain); None when replies are not captured."""
    if settings.replies.forward_from:
        return settings.replies.forward_from.strip()
    domain = reply_domain(settings)
    return f"replies@{domain}" if domain else None


def forward_target(release_reply_to: str | None, client_reply_to: str | None, settings: Settings) -> str | None:
    """The person a reply is forwarded to: the release's ``reply_to`` (front matter), else
    the client's, else ``replies.forward_to``; None when nobody is named."""
    for candidate in (release_reply_to, client_reply_to, settings.replies.forward_to):
        if candidate and candidate.strip():
            return candidate.strip()
    return None
