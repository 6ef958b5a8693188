"""Pre-send checks of a release: what must hold before anyone may approve it.

:func:`check_release` renders every segment's variant for a sample contact (and for a
recipient with every optional field missing) and inspects the messages as a recipient's
mail program would see them (parsed back with the standard library):

* the variant compiles and renders, and its subject is not empty;
* every link is ``https`` (``mailto:`` is allowed: a booking address is not a web link);
* every Markdown image of the body and intro can be shown (https, or an image of the
  press kit: :mod:`mailer.message.images`), each refusal naming the image and its line;
* both parts carry the unsubscribe link, the client's postal address and, when the
  client has one, its disclosure statement (CAN-SPAM 15 U.S.C. 7704(a)(5) asks for the
  postal address and an opt-out in every message; a foreign-agent disclosure must travel
  with every copy of the material);
* (DMARC alignment of the client's identity is checked by
  :func:`mailer.releases.approval.submit_release`, which knows the client.)

Failures are collected, never raised one by one, so the author sees every problem at
once. No I/O, no database: the caller gathers the specs and sample recipients.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

from markupsafe import escape

from mailer.config import Settings
from mailer.domain.errors import InputError, MailerError, WorkflowError
from mailer.message import LOCAL_HTTP_PREFIXES, Recipient, Renderer, VariantSpec
from mailer.message.images import KitImages, image_problems
from mailer.message.tokens import Tokens

#: The Date header of check renders (fixed: the checks must not depend on the clock).
CHECK_DATE = datetime(2000, 1, 1, tzinfo=UTC)

#: A recipient with every optional field missing: templates must cope with it.
BLANK_RECIPIENT = Recipient(email="journalist@example.com")

# Anything that looks like a URL with a scheme, in text or in an attribute value.
_URL_RE = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s"'<>()\[\]]+""")
_HREF_RE = re.compile(r"""\b(?:href|src)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)


@dataclass(frozen=True)
class ComplianceReport:
    """What :func:`check_release` found. ``failures`` block submission; ``warnings`` do not."""

    failures: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    def require_ok(self, what: str) -> None:
        """Raise one :class:`WorkflowError` listing every failure, unless there are none."""
        if self.failures:
            listed = "; ".join(f"({i}) {f}" for i, f in enumerate(self.failures, 1))
            count = len(self.failures)
            raise WorkflowError(f"{what} fails {count} check{'s' if count > 1 else ''}: {listed}")


def sample_unsubscribe_url(settings: Settings) -> str:
    """The unsubscribe link previews, proofs and checks carry.

    It is built exactly like a real one (``web.base_url`` + ``/u/`` + signed token) but
    for delivery id 0, which no unsubscribe handler accepts, so clicking it in a proof
    unsubscribes nobody. Raises InputError when ``web.base_url`` is not https: one-click
    unsubscribe (RFC 8058 section 3) requires an https URI.
    """
    base = settings.web.base_url
    if not base.startswith(("https://", *LOCAL_HTTP_PREFIXES)):
        raise InputError(
            f"web.base_url {base!r} is not https: unsubscribe links must be https (RFC 8058); "
            "set web.base_url in the config file or MAILER_WEB__BASE_URL"
        )
    return Tokens.from_settings(settings).unsubscribe_url(base, 0)


def sample_message_id(spec: VariantSpec, label: str) -> str:
    """A Message-ID for a check or preview render (``label`` must be ASCII, no spaces), at
    the client's Message-ID domain (the one its List-Id ``<slug.DOMAIN>`` names)."""
    ident = spec.list_id.rpartition("<")[2].rstrip(">").strip()
    domain = ident.partition(".")[2] or "localhost"
    return f"<{label}@{domain}>"


def _parse(raw: bytes) -> tuple[str, str, str]:
    """(subject, text part, HTML part) of a rendered message, decoded as a reader sees them."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    return (
        str(msg.get("Subject", "")),
        str(text.get_content()) if isinstance(text, EmailMessage) else "",
        str(html.get_content()) if isinstance(html, EmailMessage) else "",
    )


def _links(text: str, html: str) -> list[str]:
    """Every URL in the text part and every href/src (and bare URL) of the HTML part."""
    found = _URL_RE.findall(text)
    for m in _HREF_RE.finditer(html):
        found.append(m.group(1) if m.group(1) is not None else m.group(2))
    found.extend(_URL_RE.findall(html))
    return found


def _flat(value: str) -> str:
    return " ".join(value.split())


def dropped(spec: VariantSpec, text: str) -> list[str]:
    """What the release carries that the rendered text part does not show (issue 21: the
    press_release template dropped speakers and questions, and submit passed)."""
    flat = " ".join(text.split())
    missing: list[str] = []

    def shown(value: str) -> bool:
        return " ".join(value.split()) in flat

    people = [s for s in spec.speakers] + [s for g in spec.speaker_groups for s in g.speakers]
    absent = [s.name for s in people if not shown(s.name)]
    if absent:
        missing.append(f"the speakers ({', '.join(absent)})")
    if any(not shown(q) for q in spec.questions):
        missing.append("the suggested questions")
    if any(not shown(link.url) for link in spec.related):
        missing.append("the related articles")
    booking = spec.booking
    if (booking is not None and any(v and not shown(v) for v in (booking.email, booking.phone))) or (
        spec.booking_contact and booking is None and not shown(spec.booking_contact)
    ):
        missing.append("the booking contact")
    return missing


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def check_release(
    segments: Sequence[tuple[str, VariantSpec, Recipient]],
    renderer: Renderer,
    settings: Settings,
) -> ComplianceReport:
    """Check every ``(segment slug, spec, sample recipient)``; see the module docstring.

    Returns the report (never raises for a content problem; each failure names the
    segment and what is wrong).
    """
    failures: list[str] = []
    warnings: list[str] = []

    def fail(message: str) -> None:
        if message not in failures:
            failures.append(message)

    if not segments:
        fail("segments: the release goes to no segment")
    try:
        unsubscribe_url = sample_unsubscribe_url(settings)
    except InputError as exc:
        fail(str(exc))
        # Keep checking the content with a stand-in link of the right shape.
        unsubscribe_url = "https://unsubscribe.invalid/u/check"
    if settings.web.base_url.startswith(LOCAL_HTTP_PREFIXES):
        warnings.append(
            f"web.base_url {settings.web.base_url!r} is a local development server: "
            "recipients elsewhere cannot reach the unsubscribe links"
        )

    seen_links: set[str] = set()
    # Our own links (press kit, "View online") on a local development server are covered
    # by the warning above, like the unsubscribe link.
    own_local = (
        settings.web.base_url.rstrip("/") + "/" if settings.web.base_url.startswith(LOCAL_HTTP_PREFIXES) else None
    )
    for slug, spec, sample in segments:
        where = f"segment {slug}"
        if not spec.subject.strip():
            fail(f"{where}: subject is empty")
        if not spec.sender.postal_address.strip():
            fail(f"{where}: client has no postal address")
        # An image that cannot be shown is never rendered: refused here, so that no
        # approval binds to a message without it (issue 16).
        images = KitImages(spec.assets, spec.newsroom_path)
        for part, source in (("body", spec.body_markdown), ("intro", spec.intro or "")):
            for problem in image_problems(renderer.markdown, source, images, where=part):
                fail(problem)
        try:
            variant = renderer.compile(spec)
        except MailerError as exc:
            fail(f"{where}: does not compile: {exc}")
            continue
        recipients = [sample] if sample == BLANK_RECIPIENT else [sample, BLANK_RECIPIENT]
        for rcpt in recipients:
            try:
                raw = variant.render(
                    rcpt,
                    to_addr=rcpt.email,
                    message_id=sample_message_id(spec, f"check.{spec.release_key}"),
                    unsubscribe_url=unsubscribe_url,
                    unsubscribe_mailto=None,
                    date=CHECK_DATE,
                )
            except MailerError as exc:
                fail(f"{where}: does not render for {rcpt.email}: {exc}")
                continue
            subject, text, html = _parse(raw)
            for missing in dropped(spec, text):
                fail(
                    f"{where}: template {spec.template!r} does not show {missing}: "
                    "use a template that shows it, or leave it out"
                )
            if spec.embargo_at and subject.startswith("[EMBARGOED"):
                subject = subject.partition("] ")[2]  # the author's subject, without our prefix
            if not subject.strip():
                fail(f"{where}: subject renders empty for {rcpt.email}")
            for link in _links(text, html):
                if (
                    link.startswith(("https://", "mailto:", "tel:", "#"))
                    or link in seen_links
                    or link == unsubscribe_url
                ):
                    continue
                if own_local is not None and link.startswith(own_local):
                    continue
                seen_links.add(link)
                fail(f"{where}: link {link!r} is not https")
            for part_name, part, quote in (("text", text, str), ("HTML", html, lambda s: str(escape(s)))):
                if unsubscribe_url not in part and quote(unsubscribe_url) not in part:
                    fail(f"{where}: the {part_name} part has no unsubscribe link")
                # Compared with whitespace runs as one space: the text part is wrapped at 78.
                flat = _flat(part)
                postal = _lines(spec.sender.postal_address)
                if postal and not all(_flat(quote(line)) in flat for line in postal):
                    fail(f"{where}: the {part_name} part lacks the postal address")
                disclosure = _lines(spec.sender.disclosure or "")
                if disclosure and not all(_flat(quote(line)) in flat for line in disclosure):
                    fail(f"{where}: the {part_name} part lacks the disclosure statement")
    return ComplianceReport(tuple(failures), tuple(warnings))
