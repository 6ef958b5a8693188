"""``mailer doctor``'s look at the SMTP relay: connect, EHLO, and what it offers.

The offers are read from a plain EHLO (before STARTTLS, where STARTTLS is advertised;
after implicit TLS on port 465); then, when ``smtp.tls`` is ``starttls`` or a username is
set, a real session through :class:`mailer.smtp.client.Connection` proves that TLS and
the login work, as the sender will use them.
"""

from __future__ import annotations

import socket

from mailer.config import SmtpSettings
from mailer.domain.errors import MailerError
from mailer.ops.checks import CheckResult, fail, ok, warn
from mailer.smtp.client import Connection

#: the extensions the report names (RFC 2920, RFC 3207, RFC 1870, RFC 4954)
OFFERS = ("PIPELINING", "STARTTLS", "SIZE", "AUTH")


def _offer_text(extensions: dict[str, str]) -> str:
    parts = []
    for name in OFFERS:
        if name not in extensions:
            parts.append(f"{name} no")
        elif extensions[name]:
            parts.append(f"{name} {extensions[name]}")
        else:
            parts.append(f"{name} yes")
    return ", ".join(parts)


async def check_relay(settings: SmtpSettings) -> list[CheckResult]:
    """The relay checks: ``smtp.connect`` (greeting and EHLO), ``smtp.offers`` (and what is
    missing that the settings or the sender need), ``smtp.session`` (TLS and login)."""
    where = f"{settings.host}:{settings.port}"
    local_name = settings.helo_name or socket.getfqdn()
    probe_settings = settings.model_copy(
        update={"tls": "implicit" if settings.tls == "implicit" else "none", "username": None}
    )
    try:
        conn = await Connection.open(probe_settings, local_name=local_name)
    except MailerError as exc:
        return [fail("smtp.connect", str(exc))]
    extensions = dict(conn.extensions)
    await conn.quit()
    results = [ok("smtp.connect", f"{where} answered EHLO")]
    offers = _offer_text(extensions)
    problems: list[str] = []
    if settings.tls == "starttls" and "STARTTLS" not in extensions:
        problems.append("smtp.tls is starttls but the relay does not offer STARTTLS")
    if settings.username and "AUTH" not in extensions and settings.tls != "starttls":
        problems.append("smtp.username is set but the relay offers no AUTH")
    if problems:
        results.append(fail("smtp.offers", f"{offers}: " + "; ".join(problems)))
    elif "PIPELINING" not in extensions:
        results.append(warn("smtp.offers", f"{offers}: without PIPELINING each command waits for its reply (slower)"))
    elif settings.tls == "none" and "STARTTLS" in extensions and settings.host not in ("127.0.0.1", "localhost", "::1"):
        results.append(warn("smtp.offers", f"{offers}: the relay offers STARTTLS but smtp.tls is none"))
    else:
        results.append(ok("smtp.offers", offers))
    if problems or (settings.tls != "starttls" and not settings.username):
        return results
    try:
        session = await Connection.open(settings, local_name=local_name)
    except MailerError as exc:
        results.append(fail("smtp.session", str(exc)))
        return results
    await session.quit()
    steps = [s for s, on in (("STARTTLS", settings.tls == "starttls"), ("login", bool(settings.username))) if on]
    results.append(ok("smtp.session", " and ".join(steps) + " work"))
    return results
