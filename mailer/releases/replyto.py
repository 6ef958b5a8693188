"""Where replies to a release go: the tokenized ``Reply-To`` of each message
(``reply+TOKEN@`` the reply domain) and the person a captured reply is forwarded to.

:func:`reply_domain` is the one place that picks the reply domain: with ``[replies]
per_client`` the client's own return-path domain (its sending identity, whose MX already
points at ``mailer bounces serve``), else the configured ``[replies] domain``.
:func:`is_reply_domain` is its inverse for the receiver.
"""

from __future__ import annotations

from collections.abc import Callable

from mailer.config import Settings
from mailer.message.tokens import Tokens
from mailer.releases.identity import SendingIdentity

#: the local-part prefix of reply addresses, and the purpose their tokens are signed for
REPLY_PREFIX = "reply"


def replies_captured(settings: Settings) -> bool:
    """True when replies are captured: ``[replies] domain`` is set or ``per_client`` is on."""
    return bool((settings.replies.domain or "").strip()) or settings.replies.per_client


def reply_domain(settings: Settings, identity: SendingIdentity | None = None) -> str | None:
    """The domain of ``reply+TOKEN@`` addresses for a release of the client whose sending
    ``identity`` is given; None when replies are not captured (messages then carry the
    client's own Reply-To). With ``per_client`` it is the client's return-path domain
    (without an identity: the configured domain, else the instance's ``[sender]
    bounce_domain``); otherwise the configured ``[replies] domain``."""
    configured = (settings.replies.domain or "").strip().lower() or None
    if not settings.replies.per_client:
        return configured
    if identity is not None:
        return identity.bounce_domain.strip().lower()
    return configured or settings.sender.bounce_domain.strip().lower()


def is_reply_domain(settings: Settings, domain: str, client_domains: Callable[[str], bool] | None = None) -> bool:
    """True when ``domain`` is a domain :func:`reply_domain` may hand out: the configured
    one, and with ``per_client`` every client's return-path domain (``client_domains``
    answers that, e.g. :meth:`mailer.bounces.process.BounceProcessor.is_bounce_domain`)."""
    domain = domain.strip().lower().rstrip(".")
    if not domain or not replies_captured(settings):
        return False
    if domain == (settings.replies.domain or "").strip().lower():
        return True
    if not settings.replies.per_client:
        return False
    return domain == settings.sender.bounce_domain.strip().lower() or (
        client_domains is not None and client_domains(domain)
    )


def reply_address(
    tokens: Tokens, settings: Settings, delivery_id: int, identity: SendingIdentity | None = None
) -> str | None:
    """``reply+TOKEN@domain`` for one delivery (the token signed for purpose ``reply``) of
    a release of the client with this sending ``identity``, or None when replies are not
    captured."""
    domain = reply_domain(settings, identity)
    if domain is None:
        return None
    return f"{REPLY_PREFIX}+{tokens.verp(delivery_id, purpose=REPLY_PREFIX)}@{domain}"


def forward_sender(settings: Settings) -> str | None:
    """The From and envelope sender of forwarded replies (``replies.forward_from``, else
    ``replies@`` the configured reply domain, else with ``per_client`` ``replies@`` the
    instance's bounce domain); None when replies are not captured."""
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
