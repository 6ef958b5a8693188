"""A compiled variant and the exact bytes of one message: :class:`CompiledVariant`.

``CompiledVariant.render(recipient, ...)`` (per message, ~100 µs): Jinja renders
(subject, body, intro, layout; text and HTML) and direct assembly of a
``multipart/alternative`` message: headers folded and RFC 2047-encoded by
:mod:`mailer.message.headers`, both parts quoted-printable, CRLF line ends throughout. No
``email.message`` objects (3 ms each), no I/O, no clock.

Names a template can use: recipient fields ``first_name``, ``last_name``, ``outlet``,
``email`` (empty ones are "missing": they print as ``""`` and take ``| default(...)``),
``attributes`` (a mapping; use ``attributes.beat | default("")`` for optional keys),
message fields ``to_addr`` and ``unsubscribe_url``, variant fields ``title``,
``dateline``, ``embargo``, ``speakers``, ``questions``, ``booking_contact``, ``sender``,
``release_key``, ``subject``; layouts also get ``body``, ``intro`` and ``about``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from jinja2 import Template
from markupsafe import Markup

from mailer.domain.embargo import embargo_text, subject_prefix
from mailer.domain.errors import InputError
from mailer.message import trace
from mailer.message.headers import check_header_value, encode_address, encode_unstructured, header_line
from mailer.message.kit import asset_links, view_online_url
from mailer.message.origins import Origin, to_template_error
from mailer.message.plaintext import finish_text, first_sentence
from mailer.message.qp import QPLines
from mailer.message.sandbox import MISSING
from mailer.message.skeleton import Skeletons
from mailer.message.spec import Attachment, Recipient, Rendered, RenderedParts, RenderJob, Variant, VariantSpec
from mailer.message.wire import KnownDots, WireReady, crlf_only, line_dots

_concat = "".join

# ----------------------------------------------------------------------- headers


@dataclass(frozen=True)
class _StaticHeaders:
    """Header lines that are the same for every message of a variant."""

    from_reply_to: str
    tail: str
    #: the From line alone, for a message with a Reply-To of its own
    from_only: str = ""


def static_headers(spec: VariantSpec) -> _StaticHeaders:
    """Validate and encode From, Reply-To, List-Id, Feedback-ID and the fixed headers."""
    sender = spec.sender
    name = check_header_value("From", sender.name)
    address = check_header_value("From", sender.address)
    lines = from_only = header_line("From", encode_address(name, address))
    if sender.reply_to:
        reply_to = check_header_value("Reply-To", sender.reply_to)
        lines += header_line("Reply-To", encode_address("", reply_to))
    list_id = check_header_value("List-Id", spec.list_id).strip()
    m = re.fullmatch(r"(.*?)\s*<([^<>\s]+)>", list_id)
    phrase, ident = (m.group(1), m.group(2)) if m else ("", list_id)
    if not ident or any(c.isspace() or c in "<>" for c in ident):
        raise InputError(f"List-Id {spec.list_id!r} is not of the form 'Name <list.id>'")
    list_value = encode_address(phrase, ident) if phrase else f"<{ident}>"
    feedback = check_header_value("Feedback-ID", spec.feedback_id)
    if not feedback.isascii():
        raise InputError(f"Feedback-ID {feedback!r} must be ASCII")
    tail = (
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        + header_line("List-Id", list_value)
        + "Precedence: bulk\r\n"
        + "Auto-Submitted: auto-generated\r\n"
        + header_line("Feedback-ID", feedback)
    )
    return _StaticHeaders(lines, tail, from_only)


def _thread_lines(in_reply_to: str | None) -> str:
    """``In-Reply-To`` and ``References`` naming the message this one answers (RFC 5322
    section 3.6.4: a reply to a message without References/In-Reply-To of its own has
    both equal to the parent's Message-ID); "" when it answers none."""
    if not in_reply_to:
        return ""
    parent = check_header_value("In-Reply-To", in_reply_to).strip()
    if not parent.isascii() or " " in parent:
        raise InputError(f"In-Reply-To {parent!r} must be ASCII without spaces")
    if not parent.startswith("<"):
        parent = f"<{parent}>"
    return header_line("In-Reply-To", parent) + header_line("References", parent)


_URL_BAD = re.compile(r"[\s<>\"\x00-\x1f\x7f]")


#: Unsubscribe links may use plain http only towards a local development server (the demo).
LOCAL_HTTP_PREFIXES = ("http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:", "http://localhost/")


def _check_url(field_name: str, url: str, scheme: str) -> str:
    """A URL fit for ``<...>`` in List-Unsubscribe (RFC 2369), else InputError."""
    check_header_value(field_name, url)
    if scheme == "https://" and url.startswith(LOCAL_HTTP_PREFIXES):
        scheme = "http://"  # a local development server (the demo); never a public host
    if not url.startswith(scheme) or _URL_BAD.search(url) or not url.isascii():
        raise InputError(f"{field_name}: {url!r} is not an ASCII {scheme} URL")
    return url


_PART_HEADERS = b"\r\nContent-Type: text/%s; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
_TEXT_HEAD = _PART_HEADERS % b"plain"
_HTML_HEAD = _PART_HEADERS % b"html"
_SUBJECT_CACHE_SIZE = 4096


def _attachment_part(attachment: Attachment) -> bytes:
    """The headers and base64 body (76-character lines) of one attachment part; file
    names are ASCII letters, digits, ``.``, ``_`` and ``-`` (checked at attach)."""
    name = attachment.filename
    if not name.isascii() or any(c in name for c in '"\\\r\n'):
        raise InputError(f"attachment {name!r}: the file name must be plain ASCII")
    data = attachment.data_b64.replace("\n", "")
    lines = "\r\n".join(data[i : i + 76] for i in range(0, len(data), 76))
    return (
        f'Content-Type: {attachment.content_type}; name="{name}"\r\n'
        f'Content-Disposition: attachment; filename="{name}"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{lines}\r\n"
    ).encode("ascii")


# ---------------------------------------------------------------- compiled variant


class CompiledVariant(Variant):
    """A variant ready to render; built by :meth:`Renderer.compile`, immutable after.

    Safe to share between threads: rendering only reads it (the subject-encoding and
    Date-line caches tolerate races).
    """

    def __init__(
        self,
        spec: VariantSpec,
        *,
        origins: Mapping[str, Origin],
        subject: Template,
        body: tuple[Template, Template],
        intro: tuple[Template, Template] | None,
        about: tuple[Markup | None, str | None],
        layouts: tuple[Template, Template],
        static_headers: _StaticHeaders,
        shapes: Mapping[Template, Skeletons] | None = None,
    ) -> None:
        self.spec = spec
        #: each template's skeletons (:mod:`mailer.message.trace`), where it can be traced
        self._shapes: Mapping[Template, Skeletons] = shapes or {}
        self._origins = origins
        self._subject = subject
        self._body = body
        self._intro = intro
        self._layouts = layouts
        self._headers = static_headers
        self._subject_lines: dict[str, str] = {}
        self._text_qp = QPLines()
        self._html_qp = QPLines()
        self._last_date: tuple[datetime, str] | None = None
        self._base_ctx: dict[str, Any] = {
            **subject.globals,
            "title": spec.title,
            "dateline": spec.dateline,
            "embargo": spec.embargo,
            "speakers": spec.speakers,
            "questions": spec.questions,
            "booking_contact": spec.booking_contact,
            "sender": spec.sender,
            "release_key": spec.release_key,
            "preheader": spec.preheader,
            "speaker_groups": spec.speaker_groups,
            "questions_heading": spec.questions_heading,
            "related": spec.related,
            "booking": spec.booking,
            "disclosure_placement": spec.disclosure_placement,
        }
        self._about_html = about[0]
        self._about_text = about[1]
        self._attachments = tuple(_attachment_part(a) for a in spec.attachments)
        self._attachments_crlf = all(crlf_only(part) and part.endswith(b"\r\n") for part in self._attachments)
        self._embargo = (
            (datetime.fromisoformat(spec.embargo_at), spec.embargo_zone or "UTC") if spec.embargo_at else None
        )

    def _run(self, template: Template, ctx: dict[str, Any]) -> str:
        """``template``'s output for ``ctx``: from its skeletons when it has the shape of
        one (:mod:`mailer.message.trace`), else rendered in full."""
        shapes = self._shapes.get(template)
        if shapes is not None:
            output = shapes.render(ctx)
            if output is not None:
                if trace.VERIFY:
                    full = self._full(template, ctx)
                    if full != output:
                        raise AssertionError(f"{template.name}: the skeleton gave {output!r}, Jinja {full!r}")
                return output
        return self._full(template, ctx)

    def _full(self, template: Template, ctx: dict[str, Any]) -> str:
        # Template.render() copies the context twice and merges the globals into it; ``ctx``
        # already holds the globals (see _base_ctx) and Jinja never writes to a shared
        # parent, so rendering straight from it saves ~30% of the Jinja time.
        try:
            return _concat(template.root_render_func(template.new_context(ctx, shared=True)))
        except Exception:
            try:
                # Re-raises with the traceback rewritten to template lines.
                template.environment.handle_exception()
            except Exception as exc:
                raise to_template_error(exc, self._origins) from exc

    def _context(self, rcpt: Recipient, to_addr: str, unsubscribe_url: str) -> dict[str, Any]:
        ctx = self._base_ctx.copy()
        for name in ("first_name", "last_name", "outlet", "email"):
            value: str = getattr(rcpt, name)
            ctx[name] = value if value.strip() else MISSING[name]
        ctx["attributes"] = rcpt.attributes
        ctx["to_addr"] = to_addr
        ctx["unsubscribe_url"] = unsubscribe_url
        if self._embargo is not None:
            # In the recipient's own zone (else the zone the embargo was written in) and UTC.
            ctx["embargo"] = embargo_text(self._embargo[0], rcpt.timezone or None, self._embargo[1]).full
        return ctx

    def _render_parts(
        self, rcpt: Recipient, to_addr: str, unsubscribe_url: str, job: RenderJob | None = None
    ) -> RenderedParts:
        ctx = self._context(rcpt, to_addr, unsubscribe_url)
        kit_token = job.kit_token if job is not None else None
        release_token = job.release_token if job is not None else None
        ctx["assets"] = asset_links(self.spec, kit_token, release_token) if self.spec.assets else ()
        ctx["view_online_url"] = view_online_url(self.spec, kit_token)
        subject = self._run(self._subject, ctx).strip()
        if self._embargo is not None:
            subject = subject_prefix(embargo_text(self._embargo[0], rcpt.timezone or None, self._embargo[1])) + subject
        check_header_value("Subject", subject)
        ctx["subject"] = subject
        html_ctx = ctx.copy()
        html_ctx["body"] = Markup(self._run(self._body[0], ctx))
        ctx["body"] = self._run(self._body[1], ctx)
        if self._intro is not None:
            html_ctx["intro"] = Markup(self._run(self._intro[0], ctx))
            ctx["intro"] = self._run(self._intro[1], ctx)
        else:
            html_ctx["intro"] = ctx["intro"] = None
        html_ctx["about"] = self._about_html
        ctx["about"] = self._about_text
        html_ctx["preheader"] = ctx["preheader"] = self.spec.preheader or first_sentence(ctx["body"])
        html = self._run(self._layouts[0], html_ctx)
        text = finish_text(self._run(self._layouts[1], ctx), dateline=self.spec.dateline)
        return RenderedParts(subject, text, html)

    def page_html(
        self, rcpt: Recipient, *, assets: Sequence[Mapping[str, Any]] | None = None
    ) -> tuple[Markup, Markup | None]:
        """The body (and the "About" boilerplate) as HTML for ``rcpt`` without the layout:
        what a newsroom page shows (render with a recipient without fields for a page
        without personalization). ``assets``: the kit links as the page shows them (the
        body's kit images use their ``src``; default the public ones). Raises TemplateError."""
        ctx = self._context(rcpt, "", "")
        ctx["subject"] = ""
        ctx["assets"] = assets if assets is not None else asset_links(self.spec, None, None)
        return Markup(self._run(self._body[0], ctx)), self._about_html

    @staticmethod
    def _check_recipient(rcpt: Recipient, to_addr: str) -> None:
        check_header_value("To", to_addr)
        check_header_value("first_name", rcpt.first_name)
        check_header_value("last_name", rcpt.last_name)
        check_header_value("outlet", rcpt.outlet)
        check_header_value("email", rcpt.email)

    def _subject_line(self, subject: str) -> str:
        line = self._subject_lines.get(subject)
        if line is None:
            line = header_line("Subject", encode_unstructured(subject))
            if len(self._subject_lines) >= _SUBJECT_CACHE_SIZE:
                self._subject_lines.clear()
            self._subject_lines[subject] = line
        return line

    def _date_line(self, date: datetime) -> str:
        """``Date: ...`` CRLF; the last one is kept (the same second in every message sent
        within it, so ``format_datetime`` runs about once a second, not once a message)."""
        second = date.replace(microsecond=0)
        last = self._last_date
        if last is not None and last[0] == second and last[0].tzinfo is second.tzinfo:
            return last[1]
        line = f"Date: {format_datetime(date)}\r\n"
        self._last_date = (second, line)
        return line

    def run(self, job: RenderJob) -> Rendered:
        """Render what ``job`` asks, in this process (see :meth:`Variant.render` for what
        it raises). A job with a ``message_id`` needs a ``date``."""
        rcpt, to_addr, unsubscribe_url = job.recipient, job.to_addr, job.unsubscribe_url
        self._check_recipient(rcpt, to_addr)
        if job.message_id is None:
            return Rendered(None, self._render_parts(rcpt, to_addr, unsubscribe_url, job))
        if job.date is None:
            raise InputError("a message to send needs a Date")
        _check_url("List-Unsubscribe", unsubscribe_url, "https://")
        unsubscribe = f"<{unsubscribe_url}>"
        unsubscribe_mailto = job.unsubscribe_mailto
        if unsubscribe_mailto:
            if not unsubscribe_mailto.startswith("mailto:"):
                unsubscribe_mailto = "mailto:" + unsubscribe_mailto
            unsubscribe += f", <{_check_url('List-Unsubscribe', unsubscribe_mailto, 'mailto:')}>"
        message_id = check_header_value("Message-ID", job.message_id).strip()
        if not message_id.isascii() or " " in message_id:
            raise InputError(f"Message-ID {message_id!r} must be ASCII without spaces")
        if not message_id.startswith("<"):
            message_id = f"<{message_id}>"
        parts = self._render_parts(rcpt, to_addr, unsubscribe_url, job)
        display = " ".join(n for n in (rcpt.first_name, rcpt.last_name) if n.strip())
        boundary = "=_" + hashlib.sha256(message_id.encode("ascii")).hexdigest()[:32]
        from_reply_to = self._headers.from_reply_to
        if job.reply_to:
            reply_to = check_header_value("Reply-To", job.reply_to)
            from_reply_to = self._headers.from_only + header_line("Reply-To", encode_address("", reply_to))
        head = "".join(
            (
                from_reply_to,
                header_line("To", encode_address(display, to_addr)),
                self._subject_line(parts.subject),
                self._date_line(job.date),
                header_line("Message-ID", message_id),
                _thread_lines(job.in_reply_to),
                "MIME-Version: 1.0\r\n",
                # Folded: on one line it is 82 characters (RFC 5322 2.1.1: SHOULD be 78).
                "Content-Type: multipart/",
                "mixed" if self._attachments else "alternative",
                ';\r\n boundary="',
                boundary,
                '"\r\n',
                header_line("List-Unsubscribe", unsubscribe),
                self._headers.tail,
                "\r\n",
            )
        )
        delimiter = b"--" + boundary.encode("ascii")
        head_bytes = head.encode("utf-8")  # ASCII but for an SMTPUTF8 local part (RFC 6532)
        if self._attachments:
            # multipart/mixed: the text and HTML alternatives, then the small attachments
            # (RFC 2046 5.1.3); the alternatives' own boundary differs from the outer one.
            inner = "=_a" + boundary[2:]
            head_bytes += b"".join(
                (
                    delimiter,
                    b'\r\nContent-Type: multipart/alternative; boundary="',
                    inner.encode("ascii"),
                    b'"\r\n\r\n',
                )
            )
            closing = b"".join(delimiter + b"\r\n" + part for part in self._attachments) + delimiter + b"--\r\n"
            delimiter = b"--" + inner.encode("ascii")
        else:
            closing = b""
        text, text_clean = self._text_qp.encode_wire(parts.text)
        html, html_clean = self._html_qp.encode_wire(parts.html)
        data = b"".join(
            (
                head_bytes,
                delimiter,
                _TEXT_HEAD,
                text,
                b"\r\n",
                delimiter,
                _HTML_HEAD,
                html,
                b"\r\n",
                delimiter,
                b"--\r\n",
                closing,
            )
        )
        # Every line ends CRLF when the head (and the attachments, checked once) does:
        # every other piece is a constant CRLF-ended line, and quoted-printable lines end
        # CRLF (no CR reaches b2a_qp). The sending process then skips dot_stuff's passes
        # over the whole message (~10 KB), and all of them when no line starts with "."
        # (the bodies know it from their lines' encodings).
        if self._attachments_crlf and crlf_only(head_bytes):
            dotted = not (text_clean and html_clean) or head_bytes.startswith(b".") or b"\r\n." in head_bytes
            data = KnownDots(data, line_dots(data)) if dotted else WireReady(data)
        return Rendered(data, parts if job.parts else None)
