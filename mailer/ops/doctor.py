"""``mailer doctor``: is this installation ready to send? One line per check.

Checks, in order: the configuration and the signing key; the database, its migrations
and the processes' heartbeats; the SMTP relay (:mod:`mailer.ops.relay`); the templates
and the DKIM key; ``web.base_url``; and, when DNS is reachable, each client's records
(:mod:`mailer.ops.dns`). A check that fails means mail would not go out (or not be
trusted); the command exits non-zero when one does.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from jinja2 import TemplateError as JinjaTemplateError
from sqlalchemy.exc import SQLAlchemyError

from mailer.config import Settings
from mailer.domain.errors import MailerError
from mailer.message.dkim import DkimSigner
from mailer.message.shipped import template_sources
from mailer.message.templates import Renderer
from mailer.message.tokens import SECRET_FILE
from mailer.ops.checks import CheckResult, State, fail, ok, skip, warn
from mailer.ops.dns import DnsUnavailable, Resolver, SystemResolver, check_dns
from mailer.ops.relay import check_relay
from mailer.store import db
from mailer.store import heartbeats as heartbeat_store
from mailer.store import releases as release_store
from mailer.store.db import session_factory, transaction

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

#: A message for the DKIM check's trial signature.
_TRIAL = b"From: doctor@example.com\r\nTo: doctor@example.com\r\nSubject: trial\r\n\r\ntrial\r\n"


def check_config(settings: Settings) -> list[CheckResult]:
    """The settings loaded (the caller got this far) and where the signing key comes from."""
    results = [ok("config", "settings loaded")]
    if settings.secret_key is not None:
        results.append(ok("config.secret_key", "set (MAILER_SECRET_KEY or the file)"))
    elif (settings.paths.data_dir / SECRET_FILE).is_file():
        results.append(ok("config.secret_key", f"generated key in {settings.paths.data_dir / SECRET_FILE}"))
    else:
        results.append(
            warn("config.secret_key", "none yet: one is generated at first use; set MAILER_SECRET_KEY on every machine")
        )
    return results


def check_database(settings: Settings) -> tuple[list[CheckResult], list[tuple[str, str]]]:
    """Reachable, migrations current, heartbeats; also returns (slug, From address) of
    every client for the DNS checks (empty when the database cannot be read)."""
    try:
        engine = db.make_engine(settings.database)
    except MailerError as exc:
        return [fail("database", str(exc))], []
    try:
        try:
            have = db.current_revision(engine)
        except SQLAlchemyError as exc:
            return [fail("database", f"cannot connect: {type(exc).__name__}")], []
        results = [ok("database", f"{engine.dialect.name} reachable")]
        head = db.head_revision()
        if have != head:
            results.append(
                fail("database.migrations", f"at {have or '(empty)'}, newest {head}: run `mailer db upgrade`")
            )
            return results, []
        results.append(ok("database.migrations", f"current ({head})"))
        with transaction(session_factory(engine)) as session:
            clients = [(c.slug, c.from_address) for c in release_store.all_clients(session)]
            beats = heartbeat_store.latest_beats(session)
        for kind in ("sender", "inbound"):
            at = beats.get(kind)
            detail = f"last heartbeat {at:%Y-%m-%d %H:%M:%S} UTC" if at else "no process running"
            results.append(ok(f"process.{kind}", detail) if at else warn(f"process.{kind}", detail))
        return results, clients
    finally:
        engine.dispose()


def check_templates(settings: Settings) -> CheckResult:
    """Every template under ``paths.templates_dir`` parses in the sandbox."""
    try:
        folder, sources = template_sources(settings.paths.templates_dir)
        renderer = Renderer(folder, sources=sources)
        names = sorted(renderer.sources)
        if not names:
            return fail("templates", f"no templates in {folder}")
        for name in names:
            renderer.env.get_template(name)
    except (MailerError, JinjaTemplateError) as exc:
        return fail("templates", str(exc))
    where = "the package" + (f" and {settings.paths.templates_dir}" if settings.paths.templates_dir else "")
    return ok("templates", f"{len(names)} load from {where}")


def check_dkim(settings: Settings) -> CheckResult:
    """The DKIM key loads and signs a trial message (skipped without a key)."""
    try:
        signer = DkimSigner.from_settings(settings.dkim)
        if signer is None:
            return skip("dkim", "no dkim.key_file: messages go unsigned")
        signer.sign(_TRIAL)
    except MailerError as exc:
        return fail("dkim", str(exc))
    return ok("dkim", f"key loads and signs as {signer.selector}._domainkey.{signer.domain}")


def check_base_url(settings: Settings) -> CheckResult:
    """``web.base_url`` must be https (unsubscribe links); http only on a local host."""
    url = urlsplit(settings.web.base_url)
    if url.scheme == "https" and url.hostname:
        return ok("web.base_url", settings.web.base_url)
    if url.scheme == "http" and url.hostname in _LOCAL_HOSTS:
        return warn("web.base_url", f"{settings.web.base_url} is local development only: use https in production")
    return fail("web.base_url", f"{settings.web.base_url}: unsubscribe links must be https")


async def run_doctor(settings: Settings, *, resolver: Resolver | None = None, dns: bool = True) -> list[CheckResult]:
    """Every check, in the module docstring's order. ``resolver`` replaces the system's
    DNS; ``dns=False`` leaves the DNS checks out."""
    results = check_config(settings)
    database, clients = check_database(settings)
    results += database
    results += await check_relay(settings.smtp)
    results.append(check_templates(settings))
    results.append(check_dkim(settings))
    results.append(check_base_url(settings))
    if dns:
        try:
            chosen = resolver if resolver is not None else SystemResolver()
        except DnsUnavailable as exc:
            results.append(skip("dns", f"DNS not reachable from here ({exc})"))
        else:
            results += check_dns(settings, clients, chosen)
    return results


def failed(results: list[CheckResult]) -> bool:
    return any(r.state is State.FAIL for r in results)
