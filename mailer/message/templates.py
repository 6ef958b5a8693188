"""Templates, read once, compiled into variants: :class:`Renderer`.

``Renderer.compile(spec)`` (once per variant, ~ms): Markdown → HTML (markdown-it,
CommonMark, raw HTML off) → nh3 sanitizing → CSS inlining (css-inline, the ``<style>``
of ``base.html``, whose ``@media`` rules stay in its head); ``<div>`` sections become
tables (:mod:`~mailer.message.outlook`); text: :mod:`~mailer.message.plaintext`. Jinja
constructs in the body and in the ``.html`` templates are swapped for opaque
placeholders before that processing and restored after it, so the result is still one
Jinja template per part, autoescaped, in which per-recipient values are escaped at
render time. Names, filters, syntax and sandbox-forbidden attributes are checked here,
with template and line. The result is a
:class:`~mailer.message.mime.CompiledVariant`.

Variant templates must extend ``base.html``/``base.txt``, whose footer (unsubscribe
link, postal address, disclosure) sits outside any block, so no variant can remove it.
In ``.html`` templates Jinja must sit in text, in attribute values, or between elements
(a ``{% ... %}`` inside a tag's attribute list cannot survive the HTML processing and is
reported as an error).

Over 400 lines on purpose (just): one noun, the renderer that compiles a variant once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import css_inline
import nh3
from jinja2 import FunctionLoader, Template, TemplateNotFound, TemplateSyntaxError, meta, nodes
from jinja2 import TemplateError as JinjaTemplateError
from markdown_it import MarkdownIt
from markupsafe import Markup

from mailer.domain.errors import InputError, TemplateError
from mailer.message.images import KitImages, has_images, replace_images
from mailer.message.mime import CompiledVariant, static_headers
from mailer.message.origins import Origin, to_template_error
from mailer.message.outlook import tables_for_divs
from mailer.message.plaintext import markdown_to_text
from mailer.message.sandbox import LAYOUT_NAMES, SUBJECT_NAMES, USER_NAMES, Sandbox, make_sandbox
from mailer.message.skeleton import Skeletons
from mailer.message.spec import Variant, VariantSpec
from mailer.message.trace import TraceSandbox, traceable

_TEMPLATE_SUFFIXES = (".html", ".txt")
_BASE = "base"

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

_SANITIZE_TAGS = nh3.ALLOWED_TAGS - {"img", "area", "map"}  # no remote resources

# A layout document keeps its @media rules (dark mode, narrow screens) in a <style> of its
# own: they cannot be inlined. Nothing is fetched.
_DOCUMENT_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


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


def _markdown_to_html(prot: _Protected, markdown: MarkdownIt, css: str, images: KitImages | None = None) -> str:
    """Markdown (with tokens) → sanitized, CSS-inlined HTML fragment (with tokens).

    With ``images`` the body's Markdown images are shown as :mod:`mailer.message.images`
    says: each stands as a placeholder through sanitizing and inlining (nh3 still removes
    every ``<img>`` of its own), then becomes the ``<img>`` built there."""
    shown: list[str] = []
    if images is not None and has_images(prot.text):
        tokens = markdown.parse(prot.text)
        shown = replace_images(
            markdown, tokens, images, template_mark=f"jx{prot.nonce}n", placeholder=f"jx{prot.nonce}i{{}}z"
        )
        html = markdown.renderer.render(tokens, markdown.options, {})
    else:
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
    html = css_inline.inline_fragment(html, css) if css else html
    if shown:
        html = re.sub(rf"jx{prot.nonce}i(\d+)z", lambda m: shown[int(m.group(1))], html)
    return html


def _markdown_to_text(source: str, kind: str, markdown: MarkdownIt, images: KitImages | None = None) -> str:
    """Markdown source (with Jinja) as the plain-text part, no markup left (see
    :mod:`mailer.message.plaintext`; ``images``: how its images are shown); the Jinja
    constructs are kept."""
    prot = _protect(source, tags_as_comments=False)
    text = markdown_to_text(markdown, prot.text, images=images, template_mark=f"jx{prot.nonce}n")
    restored, _ = _restore(text, prot, kind)
    return restored


# -------------------------------------------------------------------- static checks


def _static_check(
    env: Sandbox,
    ast: nodes.Template,
    allowed: frozenset[str],
    template: str,
) -> None:
    """Refuse unknown names and underscore attributes (sandbox escapes) before rendering.

    Lines are those of the author's source (``ast`` is parsed from it). The sandbox still
    guards at render time against what a static look cannot see (``x[a ~ b]``).
    Filters must be among those the sandbox offers.
    """
    # Before find_undeclared_variables, which raises a bare Jinja error for an unknown filter.
    for check in ast.find_all((nodes.Filter, nodes.Test)):
        kind, known = ("filter", env.filters) if isinstance(check, nodes.Filter) else ("test", env.tests)
        if check.name not in known:
            raise TemplateError(f"there is no {kind} {check.name!r} here", template=template, line=check.lineno)
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


def _parse(env: Sandbox, source: str, template: str) -> nodes.Template:
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

    def __init__(self, templates_dir: Path, *, sources: Mapping[str, str] | None = None) -> None:
        """Read every template under ``templates_dir`` (or take ``sources``, name → text,
        as read before); raises InputError if unreadable."""
        self.templates_dir = templates_dir
        if sources is None:
            sources = _read_sources(templates_dir)
        self.sources: Mapping[str, str] = sources
        base = self.sources.get(f"{_BASE}.html", "")
        self.css = "\n".join(_STYLE_RE.findall(base))
        # breaks: a single line break in the body is kept (issue 21: addresses and lists typed
        # line by line merged into one line)
        self.markdown = MarkdownIt("commonmark", {"html": False, "breaks": True})
        self._origins: dict[str, Origin] = {}
        self._checked: set[str] = set()
        self.env = make_sandbox(FunctionLoader(self._load))
        # The same templates compiled to trace their per-message values (mailer.message.trace).
        self.trace_env = TraceSandbox.like(self.env)

    # Jinja loader: .html files are processed (placeholders, CSS inlining); .txt verbatim.
    def _load(self, name: str) -> tuple[str, str, Callable[[], bool]] | None:
        source = self.sources.get(name)
        if source is None:
            return None
        _parse(self.env, source, name)
        if not name.endswith(".html"):
            self._origins[name] = Origin(name, None)
            return source, name, _always
        prot = _protect(source, tags_as_comments=True)
        try:
            if _DOCUMENT_RE.search(prot.text):
                processed = _DOCUMENT_INLINER.inline(prot.text)
            else:
                processed = css_inline.inline_fragment(prot.text, self.css)
        except css_inline.InlineError as exc:
            raise TemplateError(f"CSS inlining failed: {exc}", template=name) from exc
        processed = tables_for_divs(processed)
        restored, line_map = _restore(processed, prot, name)
        self._origins[name] = Origin(name, line_map)
        return restored, name, _always

    def _get(self, name: str) -> Template:
        """Load a template by name; missing or broken ones raise TemplateError."""
        try:
            return self.env.get_template(name)
        except TemplateNotFound as exc:
            raise TemplateError(f"template {exc.name!r} not found in {self.templates_dir}") from exc
        except JinjaTemplateError as exc:
            raise to_template_error(exc, self._origins) from exc

    def _check_layout(self, name: str) -> None:
        """Static checks of a variant template and what it references (once per name)."""
        if name in self._checked:
            return
        source = self.sources.get(name)
        if source is None:
            raise TemplateError(f"template {name!r} not found in {self.templates_dir}")
        ast = _parse(self.env, source, name)
        _static_check(self.env, ast, LAYOUT_NAMES, name)
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
        origins: dict[str, Origin],
        *,
        processed: str | None = None,
        line_map: Mapping[int, int] | None = None,
        shapes: dict[Template, Skeletons] | None = None,
    ) -> Template:
        """Compile a user-authored string (optionally its processed HTML form); with
        ``shapes``, also its twin for tracing when it can be traced."""
        ast = _parse(self.env, source, kind)
        _static_check(self.env, ast, allowed, kind)
        filename = f"<{kind}{suffix}#{len(origins)}>"
        origins[filename] = Origin(kind, line_map)
        text = processed if processed is not None else source
        try:
            code = self.env.compile(text, name=f"{kind}{suffix}", filename=filename)
        except TemplateSyntaxError as exc:
            raise to_template_error(exc, origins) from exc
        template: Template = self.env.template_class.from_code(self.env, code, self.env.make_globals(None))
        if shapes is not None and not list(meta.find_referenced_templates(ast)) and traceable([ast]):
            twin_env = self.trace_env
            twin_code = twin_env.compile(text, name=f"{kind}{suffix}", filename=filename)
            twin: Template = twin_env.template_class.from_code(twin_env, twin_code, twin_env.make_globals(None))
            shapes[template] = Skeletons(twin, twin_env)
        return template

    def _compile_markdown(
        self,
        source: str,
        kind: str,
        origins: dict[str, Origin],
        images: KitImages | None = None,
        shapes: dict[Template, Skeletons] | None = None,
    ) -> tuple[Template, Template]:
        """A Markdown+Jinja string → (HTML template, text template)."""
        prot = _protect(source, tags_as_comments=False)
        html_src = _markdown_to_html(prot, self.markdown, self.css, images)
        restored, line_map = _restore(html_src, prot, kind)
        html_t = self._compile_user(
            source, kind, ".html", USER_NAMES, origins, processed=restored, line_map=line_map, shapes=shapes
        )
        text_src = _markdown_to_text(source, kind, self.markdown, images)
        text_t = self._compile_user(source, kind, ".txt", USER_NAMES, origins, processed=text_src, shapes=shapes)
        return html_t, text_t

    def _layout_shapes(self, template: str, layouts: list[Template], shapes: dict[Template, Skeletons]) -> None:
        """Twins of a variant's layouts for tracing, when every file they use can be traced."""
        names = self.referenced_templates(template)
        if not traceable([_parse(self.env, self.sources[name], name) for name in names]):
            return
        for layout in layouts:
            assert layout.name is not None
            shapes[layout] = Skeletons(self.trace_env.get_template(layout.name), self.trace_env)

    def compile(self, spec: VariantSpec) -> Variant:
        """Prepare ``spec`` for rendering: here, as :meth:`compile_here` (an
        :class:`~mailer.message.isolated.IsolatedRenderer` compiles in its render process)."""
        return self.compile_here(spec)

    def compile_here(self, spec: VariantSpec) -> CompiledVariant:
        """Prepare ``spec`` for fast per-recipient rendering in this process.

        Raises :class:`TemplateError` (template name and line) for a missing template,
        a syntax error, an undefined name or a sandbox-forbidden attribute, and
        :class:`~mailer.domain.errors.HeaderInjectionError` / :class:`InputError` for sender,
        List-Id or Feedback-ID values that cannot go into a header.
        """
        if spec.template == _BASE or "/" in spec.template:
            raise TemplateError(f"{spec.template!r} is not a variant template")
        origins: dict[str, Origin] = {}
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
        shapes: dict[Template, Skeletons] = {}
        self._layout_shapes(spec.template, layouts, shapes)
        subject_t = self._compile_user(spec.subject, "subject", ".txt", SUBJECT_NAMES, origins, shapes=shapes)
        images = KitImages(spec.assets, spec.newsroom_path)
        body_html, body_text = self._compile_markdown(spec.body_markdown, "body", origins, images, shapes)
        intro: tuple[Template, Template] | None = None
        if spec.intro:
            intro = self._compile_markdown(spec.intro, "intro", origins, images, shapes)
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
            about=(about_html, markdown_to_text(self.markdown, spec.about) if spec.about else None),
            layouts=(layouts[0], layouts[1]),
            static_headers=static_headers(spec),
            shapes=shapes,
        )


def _always() -> bool:
    return True


def _read_sources(templates_dir: Path) -> dict[str, str]:
    """Name → text of every ``.html``/``.txt`` file under ``templates_dir``."""
    try:
        return {
            p.relative_to(templates_dir).as_posix(): p.read_text("utf-8")
            for p in sorted(templates_dir.rglob("*"))
            if p.is_file() and p.suffix in _TEMPLATE_SUFFIXES
        }
    except OSError as exc:
        raise InputError(f"cannot read templates from {templates_dir}: {exc}") from exc
