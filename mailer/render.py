"""Turn a release variant and a recipient into the exact bytes of one message.

Two phases, because a release goes to up to a million people:

``Renderer.compile(spec)`` (once per variant, ~ms)
    Markdown → HTML (markdown-it, CommonMark, raw HTML off) → nh3 sanitizing → CSS
    inlining (css-inline, the ``<style>`` block of ``base.html``). Jinja constructs in
    the body and in the ``.html`` templates are swapped for opaque placeholders before
    that processing and restored after it, so the result is still one Jinja template per
    part, autoescaped, in which per-recipient values are escaped at render time. Names,
    syntax and sandbox-forbidden attributes are checked here, with template and line.

``CompiledVariant.render(recipient, ...)`` (per message, ~100 µs)
    Jinja renders (subject, body, intro, layout; text and HTML) and direct assembly of a
    ``multipart/alternative`` message: headers folded and RFC 2047-encoded by
    :mod:`mailer.headers`, both parts quoted-printable, CRLF line ends throughout.
    No ``email.message`` objects (3 ms each), no I/O, no clock.

Every template (the files in ``templates/`` and the user-authored subject, body and
intro) runs in one :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` with
:class:`~jinja2.StrictUndefined`: a typo is a :class:`~mailer.errors.TemplateError`
naming the template and line, and so is a sandbox escape. Variant templates must extend
``base.html``/``base.txt``, whose footer (unsubscribe link, postal address, disclosure)
sits outside any block, so no variant can remove it.

Names a template can use: recipient fields ``first_name``, ``last_name``, ``outlet``,
``email`` (empty ones are "missing": they print as ``""`` and take ``| default(...)``),
``attributes`` (a mapping; use ``attributes.beat | default("")`` for optional keys),
message fields ``to_addr`` and ``unsubscribe_url``, variant fields ``title``,
``dateline``, ``embargo``, ``speakers``, ``questions``, ``booking_contact``, ``sender``,
``release_key``, ``subject``; layouts also get ``body``, ``intro`` and ``about``.

In ``.html`` templates Jinja must sit in text, in attribute values, or between elements
(a ``{% ... %}`` inside a tag's attribute list cannot survive the HTML processing and is
reported as an error).
"""

from __future__ import annotations

import binascii
import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import Any

import css_inline
import nh3
from jinja2 import (
    FunctionLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    Undefined,
    meta,
    nodes,
    select_autoescape,
)
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markdown_it import MarkdownIt
from markupsafe import Markup

from mailer.errors import InputError, TemplateError
from mailer.headers import (
    check_header_value,
    encode_address,
    encode_unstructured,
    header_line,
)

__all__ = [
    "RENDER_VERSION",
    "CompiledVariant",
    "Recipient",
    "RenderedParts",
    "Renderer",
    "Sender",
    "Speaker",
    "VariantSpec",
    "check_header_value",
    "fingerprint",
]

#: Bump when a change here alters the bytes produced from the same spec and templates;
#: it is part of :func:`fingerprint`, so approvals taken before the change are invalidated.
RENDER_VERSION = "1"

_TEMPLATE_SUFFIXES = (".html", ".txt")
_concat = "".join
_BASE = "base"


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Sender:
    """The client identity a release goes out as.

    ``name``, ``address`` and ``reply_to`` go into headers and must be single-line;
    ``postal_address`` and ``disclosure`` go into the footer of both parts and may span
    lines.
    """

    name: str
    address: str
    reply_to: str | None
    postal_address: str
    disclosure: str | None


@dataclass(frozen=True)
class Speaker:
    """A person available for interview (media advisory)."""

    name: str
    title: str
    bio: str


@dataclass(frozen=True, kw_only=True)
class VariantSpec:
    """Everything that determines the message bytes except the per-recipient fields.

    ``subject``, ``intro`` and ``body_markdown`` are user-authored Jinja templates (the
    body and intro are Markdown); every other string is data and is never evaluated.
    ``about`` is the optional "About <client>" boilerplate, Markdown without Jinja.
    """

    release_key: str
    template: str
    subject: str
    title: str
    dateline: str | None
    intro: str | None
    body_markdown: str
    sender: Sender
    list_id: str
    feedback_id: str
    speakers: tuple[Speaker, ...] = ()
    questions: tuple[str, ...] = ()
    booking_contact: str | None = None
    embargo: str | None = None
    about: str | None = None


@dataclass(frozen=True)
class Recipient:
    """One journalist. Empty name/outlet fields render as missing (see module doc)."""

    email: str
    first_name: str = ""
    last_name: str = ""
    outlet: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderedParts:
    """The rendered subject (decoded), text/plain body and text/html body of a message."""

    subject: str
    text: str
    html: str


# ------------------------------------------------------------------ names in scope

_RECIPIENT_NAMES = frozenset({"first_name", "last_name", "outlet", "email", "attributes"})
_MESSAGE_NAMES = frozenset({"to_addr", "unsubscribe_url"})
_VARIANT_NAMES = frozenset(
    {
        "title",
        "dateline",
        "embargo",
        "speakers",
        "questions",
        "booking_contact",
        "sender",
        "release_key",
    }
)
_SUBJECT_NAMES = _RECIPIENT_NAMES | _MESSAGE_NAMES | _VARIANT_NAMES
_USER_NAMES = _SUBJECT_NAMES | {"subject"}
_LAYOUT_NAMES = _USER_NAMES | {"body", "intro", "about"}


class _Missing(Undefined):
    """An empty recipient field: prints as ``""``, is falsy, and takes ``default()``."""

    __slots__ = ()


_MISSING = {
    name: _Missing(hint=f"the recipient has no {name}", name=name)
    for name in ("first_name", "last_name", "outlet", "email")
}

# --------------------------------------------------------- Jinja placeholder handling

# A Jinja construct, skipping quoted strings so that "}}" inside a literal does not end it.
_JINJA_RE = re.compile(
    r"""
      \{\{ (?: "(?:[^"\\]|\\.)*" | '(?:[^'\\]|\\.)*' | [^"'}] | \}(?!\}) )* \}\}
    | \{% (?: "(?:[^"\\]|\\.)*" | '(?:[^'\\]|\\.)*' | [^"'%] | %(?!\}) )* %\}
    | \{\# .*? \#\}
    """,
    re.S | re.X,
)
_STYLE_RE = re.compile(r"<style[^>]*>(.*?)</style>", re.S | re.I)
_DOCUMENT_RE = re.compile(r"<html[\s>]", re.I)
_MD_LINK_RE = re.compile(r"(?<!!)\[([^\]\n]+)\]\(([^)\s]+)\)")

_SANITIZE_TAGS = nh3.ALLOWED_TAGS - {"img", "area", "map"}  # no remote resources


@dataclass(frozen=True)
class _Protected:
    """Source text with its Jinja constructs replaced by opaque lowercase tokens."""

    text: str
    originals: tuple[str, ...]
    lines: tuple[int, ...]  # 1-based source line of each construct
    nonce: str


def _protect(source: str, *, tags_as_comments: bool) -> _Protected:
    """Replace each Jinja construct by a token that HTML and Markdown processing keep.

    Expressions become bare alphanumeric tokens (valid in text and attribute values);
    with ``tags_as_comments`` statements and comments become ``<!--token-->``, which an
    HTML parser keeps in place even between table rows.
    """
    nonce = hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]
    originals: list[str] = []
    lines: list[int] = []
    pos = 0
    line = 1

    def swap(m: re.Match[str]) -> str:
        nonlocal pos, line
        line += source.count("\n", pos, m.start())
        pos = m.start()
        token = f"jx{nonce}n{len(originals)}z"
        originals.append(m.group())
        lines.append(line)
        if tags_as_comments and not m.group().startswith("{{"):
            return f"<!--{token}-->"
        return token

    text = _JINJA_RE.sub(swap, source)
    return _Protected(text, tuple(originals), tuple(lines), nonce)


def _restore(processed: str, prot: _Protected, template: str) -> tuple[str, dict[int, int]]:
    """Put the Jinja constructs back; return the source and a new→original line map.

    Raises :class:`TemplateError` if the processing lost or duplicated a construct.
    """
    pattern = re.compile(rf"<!--jx{prot.nonce}n(\d+)z-->|jx{prot.nonce}n(\d+)z")
    out: list[str] = []
    seen = [0] * len(prot.originals)
    line_map: dict[int, int] = {}
    new_line = 1
    pos = 0
    for m in pattern.finditer(processed):
        chunk = processed[pos : m.start()]
        new_line += chunk.count("\n")
        out.append(chunk)
        index = int(m.group(1) or m.group(2))
        seen[index] += 1
        original = prot.originals[index]
        for offset in range(original.count("\n") + 1):
            line_map.setdefault(new_line + offset, prot.lines[index] + offset)
        new_line += original.count("\n")
        out.append(original)
        pos = m.end()
    out.append(processed[pos:])
    for index, count in enumerate(seen):
        if count != 1:
            raise TemplateError(
                f"{prot.originals[index]!r} does not survive HTML processing here "
                "(Jinja inside a tag's attribute list, or in a misplaced table row?)",
                template=template,
                line=prot.lines[index],
            )
    return "".join(out), line_map


def _map_line(line_map: Mapping[int, int] | None, line: int | None) -> int | None:
    """Translate a line of processed source back to the author's source."""
    if line is None or line_map is None:
        return line
    if line in line_map:
        return line_map[line]
    earlier = [k for k in line_map if k < line]
    return line_map[max(earlier)] if earlier else None


def _markdown_to_html(prot: _Protected, markdown: MarkdownIt, css: str) -> str:
    """Markdown (with tokens) → sanitized, CSS-inlined HTML fragment (with tokens)."""
    html = markdown.render(prot.text)
    html = nh3.clean(html, tags=_SANITIZE_TAGS)
    # A block tag ({% if %}, {% for %}) alone on a line became a paragraph of its own.
    block = {i for i, o in enumerate(prot.originals) if not o.startswith("{{")}
    if block:
        html = re.sub(
            rf"<p>(jx{prot.nonce}n(\d+)z)</p>\n?",
            lambda m: m.group(1) if int(m.group(2)) in block else m.group(0),
            html,
        )
    return css_inline.inline_fragment(html, css) if css else html


def _markdown_to_text(source: str, kind: str) -> str:
    """Markdown source as the plain-text part: kept as written, links spelled out."""
    prot = _protect(source, tags_as_comments=False)
    text = _MD_LINK_RE.sub(r"\1 <\2>", prot.text)
    restored, _ = _restore(text, prot, kind)
    return restored


# ----------------------------------------------------------------- error conversion


def _jinja_frames(tb: TracebackType | None) -> Iterable[tuple[str, int]]:
    """(filename, line) of each template frame of a Jinja-rewritten traceback."""
    while tb is not None:
        g = tb.tb_frame.f_globals
        if "__jinja_exception__" in g:
            yield tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next


@dataclass(frozen=True)
class _Origin:
    """Where a compiled template came from: display name and line map (None: identity)."""

    name: str
    line_map: Mapping[int, int] | None


def _to_template_error(exc: Exception, origins: Mapping[str, _Origin]) -> TemplateError:
    """Convert a Jinja (or Python) exception raised while rendering to TemplateError."""
    if isinstance(exc, TemplateError):
        return exc
    if isinstance(exc, TemplateSyntaxError):
        origin = origins.get(exc.filename or exc.name or "")
        name = origin.name if origin else exc.name
        line = _map_line(origin.line_map if origin else None, exc.lineno)
        return TemplateError(f"syntax error: {exc.message}", template=name, line=line)
    where: tuple[str, int] | None = None
    for filename, lineno in _jinja_frames(exc.__traceback__):
        if filename in origins:
            where = (filename, lineno)
    if isinstance(exc, SecurityError):
        message = f"not allowed by the sandbox: {exc}"
    elif isinstance(exc, JinjaTemplateError):
        message = str(exc.message or exc)
    else:
        message = f"{type(exc).__name__}: {exc}"
    if where is None:
        return TemplateError(message)
    origin = origins[where[0]]
    return TemplateError(message, template=origin.name, line=_map_line(origin.line_map, where[1]))


# -------------------------------------------------------------------- static checks


def _static_check(
    env: ImmutableSandboxedEnvironment,
    ast: nodes.Template,
    allowed: frozenset[str],
    template: str,
) -> None:
    """Refuse unknown names and underscore attributes (sandbox escapes) before rendering.

    Lines are those of the author's source (``ast`` is parsed from it). The sandbox still
    guards at render time against what a static look cannot see (``attr()`` and friends).
    """
    unknown = meta.find_undeclared_variables(ast) - allowed - env.globals.keys()
    if unknown:
        name = sorted(unknown)[0]
        line = next(
            (n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"),
            None,
        )
        raise TemplateError(f"{name!r} is undefined", template=template, line=line)
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        attr: object = None
        if isinstance(node, nodes.Getattr):
            attr = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            attr = node.arg.value
        if isinstance(attr, str) and attr.startswith("_"):
            raise TemplateError(
                f"not allowed by the sandbox: access to attribute {attr!r}",
                template=template,
                line=node.lineno,
            )


def _parse(env: ImmutableSandboxedEnvironment, source: str, template: str) -> nodes.Template:
    """Parse ``source``; syntax errors become TemplateError with the author's line."""
    try:
        return env.parse(source, name=template)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error: {exc.message}", template=template, line=exc.lineno) from exc


# ----------------------------------------------------------------------- renderer


class Renderer:
    """Templates, read once from a directory, and the sandbox they run in.

    The ``.html`` and ``.txt`` files under ``templates_dir`` are read at construction;
    later changes to the files are not seen (build a new Renderer), so a fingerprint
    and the messages rendered from the same Renderer always agree.
    """

    def __init__(self, templates_dir: Path) -> None:
        """Read every template under ``templates_dir``; raises InputError if unreadable."""
        self.templates_dir = templates_dir
        try:
            self.sources: Mapping[str, str] = {
                p.relative_to(templates_dir).as_posix(): p.read_text("utf-8")
                for p in sorted(templates_dir.rglob("*"))
                if p.is_file() and p.suffix in _TEMPLATE_SUFFIXES
            }
        except OSError as exc:
            raise InputError(f"cannot read templates from {templates_dir}: {exc}") from exc
        base = self.sources.get(f"{_BASE}.html", "")
        self.css = "\n".join(_STYLE_RE.findall(base))
        self.markdown = MarkdownIt("commonmark", {"html": False})
        self._origins: dict[str, _Origin] = {}
        self._checked: set[str] = set()
        self.env = ImmutableSandboxedEnvironment(
            loader=FunctionLoader(self._load),
            undefined=StrictUndefined,
            # By name: "x.html" templates (files and the compiled body/intro) escape,
            # "x.txt" ones (text part, subject) do not.
            autoescape=select_autoescape(("html", "htm", "xml"), default_for_string=False),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )

    # Jinja loader: .html files are processed (placeholders, CSS inlining); .txt verbatim.
    def _load(self, name: str) -> tuple[str, str, Callable[[], bool]] | None:
        source = self.sources.get(name)
        if source is None:
            return None
        _parse(self.env, source, name)
        if not name.endswith(".html"):
            self._origins[name] = _Origin(name, None)
            return source, name, _always
        prot = _protect(source, tags_as_comments=True)
        try:
            if _DOCUMENT_RE.search(prot.text):
                processed = css_inline.inline(prot.text)
            else:
                processed = css_inline.inline_fragment(prot.text, self.css)
        except css_inline.InlineError as exc:
            raise TemplateError(f"CSS inlining failed: {exc}", template=name) from exc
        restored, line_map = _restore(processed, prot, name)
        self._origins[name] = _Origin(name, line_map)
        return restored, name, _always

    def _get(self, name: str) -> Template:
        """Load a template by name; missing or broken ones raise TemplateError."""
        try:
            return self.env.get_template(name)
        except TemplateNotFound as exc:
            raise TemplateError(f"template {exc.name!r} not found in {self.templates_dir}") from exc
        except JinjaTemplateError as exc:
            raise _to_template_error(exc, self._origins) from exc

    def _check_layout(self, name: str) -> None:
        """Static checks of a variant template and what it references (once per name)."""
        if name in self._checked:
            return
        source = self.sources.get(name)
        if source is None:
            raise TemplateError(f"template {name!r} not found in {self.templates_dir}")
        ast = _parse(self.env, source, name)
        _static_check(self.env, ast, _LAYOUT_NAMES, name)
        for ref in meta.find_referenced_templates(ast):
            if ref is None:
                raise TemplateError("template names must be literal strings", template=name)
            self._check_layout(ref)
        self._checked.add(name)

    def referenced_templates(self, template: str) -> list[str]:
        """Names of the files variant ``template`` uses (its .html/.txt and their bases)."""
        todo = [f"{template}{suffix}" for suffix in _TEMPLATE_SUFFIXES]
        found: list[str] = []
        while todo:
            name = todo.pop()
            if name in found:
                continue
            source = self.sources.get(name)
            if source is None:
                raise TemplateError(f"template {name!r} not found in {self.templates_dir}")
            found.append(name)
            ast = _parse(self.env, source, name)
            todo.extend(ref for ref in meta.find_referenced_templates(ast) if ref is not None)
        return sorted(found)

    def _compile_user(
        self,
        source: str,
        kind: str,
        suffix: str,
        allowed: frozenset[str],
        origins: dict[str, _Origin],
        *,
        processed: str | None = None,
        line_map: Mapping[int, int] | None = None,
    ) -> Template:
        """Compile a user-authored string (optionally its processed HTML form)."""
        ast = _parse(self.env, source, kind)
        _static_check(self.env, ast, allowed, kind)
        filename = f"<{kind}{suffix}#{len(origins)}>"
        origins[filename] = _Origin(kind, line_map)
        try:
            code = self.env.compile(
                processed if processed is not None else source,
                name=f"{kind}{suffix}",
                filename=filename,
            )
        except TemplateSyntaxError as exc:
            raise _to_template_error(exc, origins) from exc
        return self.env.template_class.from_code(self.env, code, self.env.make_globals(None))

    def _compile_markdown(self, source: str, kind: str, origins: dict[str, _Origin]) -> tuple[Template, Template]:
        """A Markdown+Jinja string → (HTML template, text template)."""
        prot = _protect(source, tags_as_comments=False)
        html_src = _markdown_to_html(prot, self.markdown, self.css)
        restored, line_map = _restore(html_src, prot, kind)
        html_t = self._compile_user(source, kind, ".html", _USER_NAMES, origins, processed=restored, line_map=line_map)
        text_src = _markdown_to_text(source, kind)
        text_t = self._compile_user(source, kind, ".txt", _USER_NAMES, origins, processed=text_src)
        return html_t, text_t

    def compile(self, spec: VariantSpec) -> CompiledVariant:
        """Prepare ``spec`` for fast per-recipient rendering.

        Raises :class:`TemplateError` (template name and line) for a missing template,
        a syntax error, an undefined name or a sandbox-forbidden attribute, and
        :class:`~mailer.errors.HeaderInjectionError` / :class:`InputError` for sender,
        List-Id or Feedback-ID values that cannot go into a header.
        """
        if spec.template == _BASE or "/" in spec.template:
            raise TemplateError(f"{spec.template!r} is not a variant template")
        origins: dict[str, _Origin] = {}
        layouts: list[Template] = []
        for suffix in _TEMPLATE_SUFFIXES:
            name = f"{spec.template}{suffix}"
            self._check_layout(name)
            ast = _parse(self.env, self.sources[name], name)
            first = next(iter(ast.find_all(nodes.Extends)), None)
            if not (
                first is not None
                and isinstance(first.template, nodes.Const)
                and first.template.value == f"{_BASE}{suffix}"
            ):
                raise TemplateError(
                    f"a variant template must extend {_BASE}{suffix} (it holds the footer)",
                    template=name,
                )
            layouts.append(self._get(name))
        subject_t = self._compile_user(spec.subject, "subject", ".txt", _SUBJECT_NAMES, origins)
        body_html, body_text = self._compile_markdown(spec.body_markdown, "body", origins)
        intro: tuple[Template, Template] | None = None
        if spec.intro:
            intro = self._compile_markdown(spec.intro, "intro", origins)
        about_html: Markup | None = None
        if spec.about:
            html = nh3.clean(self.markdown.render(spec.about), tags=_SANITIZE_TAGS)
            about_html = Markup(css_inline.inline_fragment(html, self.css) if self.css else html)
        return CompiledVariant(
            spec,
            origins={**self._origins, **origins},
            subject=subject_t,
            body=(body_html, body_text),
            intro=intro,
            about=(about_html, spec.about),
            layouts=(layouts[0], layouts[1]),
            static_headers=_static_headers(spec),
        )


def _always() -> bool:
    return True


# ----------------------------------------------------------------------- headers


@dataclass(frozen=True)
class _StaticHeaders:
    """Header lines that are the same for every message of a variant."""

    from_reply_to: str
    tail: str


def _static_headers(spec: VariantSpec) -> _StaticHeaders:
    """Validate and encode From, Reply-To, List-Id, Feedback-ID and the fixed headers."""
    sender = spec.sender
    name = check_header_value("From", sender.name)
    address = check_header_value("From", sender.address)
    lines = header_line("From", encode_address(name, address))
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
    return _StaticHeaders(lines, tail)


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


_last_date: tuple[datetime, str] | None = None


def _date_line(date: datetime) -> str:
    """``Date: ...`` CRLF; the last one is kept (the same second in every message sent
    within it, so ``format_datetime`` runs about once a second, not once a message)."""
    global _last_date
    second = date.replace(microsecond=0)
    last = _last_date
    if last is not None and last[0] == second and last[0].tzinfo is second.tzinfo:
        return last[1]
    line = f"Date: {format_datetime(date)}\r\n"
    _last_date = (second, line)
    return line


def _qp(text: str) -> bytes:
    """UTF-8 quoted-printable body with CRLF line ends (lines ≤ 76 octets)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


_PART_HEADERS = b"\r\nContent-Type: text/%s; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
_TEXT_HEAD = _PART_HEADERS % b"plain"
_HTML_HEAD = _PART_HEADERS % b"html"
_SUBJECT_CACHE_SIZE = 4096


# ---------------------------------------------------------------- compiled variant


class CompiledVariant:
    """A variant ready to render; built by :meth:`Renderer.compile`, immutable after.

    Safe to share between threads: rendering only reads it (the subject-encoding cache
    tolerates races).
    """

    def __init__(
        self,
        spec: VariantSpec,
        *,
        origins: Mapping[str, _Origin],
        subject: Template,
        body: tuple[Template, Template],
        intro: tuple[Template, Template] | None,
        about: tuple[Markup | None, str | None],
        layouts: tuple[Template, Template],
        static_headers: _StaticHeaders,
    ) -> None:
        self.spec = spec
        self._origins = origins
        self._subject = subject
        self._body = body
        self._intro = intro
        self._layouts = layouts
        self._headers = static_headers
        self._subject_lines: dict[str, str] = {}
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
        }
        self._about_html = about[0]
        self._about_text = about[1]

    def _run(self, template: Template, ctx: dict[str, Any]) -> str:
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
                raise _to_template_error(exc, self._origins) from exc

    def _context(self, rcpt: Recipient, to_addr: str, unsubscribe_url: str) -> dict[str, Any]:
        ctx = self._base_ctx.copy()
        for name in ("first_name", "last_name", "outlet", "email"):
            value: str = getattr(rcpt, name)
            ctx[name] = value if value.strip() else _MISSING[name]
        ctx["attributes"] = rcpt.attributes
        ctx["to_addr"] = to_addr
        ctx["unsubscribe_url"] = unsubscribe_url
        return ctx

    def _render_parts(self, rcpt: Recipient, to_addr: str, unsubscribe_url: str) -> RenderedParts:
        ctx = self._context(rcpt, to_addr, unsubscribe_url)
        subject = self._run(self._subject, ctx).strip()
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
        html = self._run(self._layouts[0], html_ctx)
        text = self._run(self._layouts[1], ctx)
        return RenderedParts(subject, text, html)

    def render_parts(
        self,
        rcpt: Recipient,
        *,
        to_addr: str,
        unsubscribe_url: str,
        message_id: str | None = None,
        unsubscribe_mailto: str | None = None,
        date: datetime | None = None,
    ) -> RenderedParts:
        """Render subject, text and HTML for previews, with the same checks as render().

        ``message_id``, ``unsubscribe_mailto`` and ``date`` are accepted (and ignored) so
        that callers can pass the same keywords as to :meth:`render`.
        Raises TemplateError, HeaderInjectionError.
        """
        self._check_recipient(rcpt, to_addr)
        return self._render_parts(rcpt, to_addr, unsubscribe_url)

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

    def render(
        self,
        rcpt: Recipient,
        *,
        to_addr: str,
        message_id: str,
        unsubscribe_url: str,
        unsubscribe_mailto: str | None,
        date: datetime,
    ) -> bytes:
        """The complete message, CRLF line ends, ready for SMTP DATA (before dot-stuffing).

        ``message_id`` is used as given (angle brackets added if missing) and also seeds
        the MIME boundary, so the same arguments always give the same bytes.
        Raises :class:`HeaderInjectionError` for a CR/LF/control character in a
        recipient field, address, Message-ID or rendered subject; :class:`InputError`
        for a non-https unsubscribe URL or a non-ASCII address; :class:`TemplateError`
        when a template fails at render time.
        """
        self._check_recipient(rcpt, to_addr)
        _check_url("List-Unsubscribe", unsubscribe_url, "https://")
        unsubscribe = f"<{unsubscribe_url}>"
        if unsubscribe_mailto:
            if not unsubscribe_mailto.startswith("mailto:"):
                unsubscribe_mailto = "mailto:" + unsubscribe_mailto
            unsubscribe += f", <{_check_url('List-Unsubscribe', unsubscribe_mailto, 'mailto:')}>"
        message_id = check_header_value("Message-ID", message_id).strip()
        if not message_id.isascii() or " " in message_id:
            raise InputError(f"Message-ID {message_id!r} must be ASCII without spaces")
        if not message_id.startswith("<"):
            message_id = f"<{message_id}>"
        parts = self._render_parts(rcpt, to_addr, unsubscribe_url)
        display = " ".join(n for n in (rcpt.first_name, rcpt.last_name) if n.strip())
        boundary = "=_" + hashlib.sha256(message_id.encode("ascii")).hexdigest()[:32]
        head = "".join(
            (
                self._headers.from_reply_to,
                header_line("To", encode_address(display, to_addr)),
                self._subject_line(parts.subject),
                _date_line(date),
                header_line("Message-ID", message_id),
                "MIME-Version: 1.0\r\n",
                'Content-Type: multipart/alternative; boundary="',
                boundary,
                '"\r\n',
                header_line("List-Unsubscribe", unsubscribe),
                self._headers.tail,
                "\r\n",
            )
        )
        delimiter = b"--" + boundary.encode("ascii")
        return b"".join(
            (
                head.encode("utf-8"),  # ASCII but for an SMTPUTF8 local part (RFC 6532)
                delimiter,
                _TEXT_HEAD,
                _qp(parts.text),
                b"\r\n",
                delimiter,
                _HTML_HEAD,
                _qp(parts.html),
                b"\r\n",
                delimiter,
                b"--\r\n",
            )
        )


# ------------------------------------------------------------------- fingerprint

_VERSIONED = ("jinja2", "markdown-it-py", "nh3", "css-inline")
_library_versions: dict[str, str] = {}


def _versions() -> dict[str, str]:
    if not _library_versions:
        for dist in _VERSIONED:
            try:
                _library_versions[dist] = version(dist)
            except PackageNotFoundError:
                _library_versions[dist] = "?"
    return _library_versions


def fingerprint(spec: VariantSpec, renderer: Renderer) -> str:
    """SHA-256 hex of the spec, the sources of the templates it uses and the renderer.

    Canonical JSON (sorted keys, no whitespace) over every field of ``spec``, the text
    of ``{template}.html``/``.txt`` and every file they extend or include, plus
    :data:`RENDER_VERSION` and the versions of the libraries that shape the bytes. Same
    inputs give the same hash; a change to any of them gives a different one.
    Raises TemplateError if a template is missing or does not parse.
    """
    payload = {
        "render_version": RENDER_VERSION,
        "libraries": _versions(),
        "spec": dataclasses.asdict(spec),
        "templates": {name: renderer.sources[name] for name in renderer.referenced_templates(spec.template)},
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
