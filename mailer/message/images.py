"""Markdown images in a release body and intro (issue 16): which are shown, how, and
which are refused.

* ``![alt](https://host/photo.jpg)``: shown from that host, ``alt`` as its alt text,
  no wider than the column (``max-width:100%``); the text part has a line
  ``[Image: alt] <https://host/photo.jpg>``.
* ``![alt](asset:NAME)``: the image ``NAME`` of the release's press kit (``mailer releases
  attach``), shown from its hosted URL with the release's token (so it shows before the
  embargo lifts, the same token for every recipient: see :mod:`mailer.message.kit`), with
  its width and height (scaled to :data:`~mailer.message.kit.MAX_IMAGE_WIDTH`); an empty
  alt takes the asset's own alt text. A pasted newsroom URL of one of the release's own
  kit images is read the same way.
* Anything else (``http:``, ``data:``, ``javascript:``, a relative path, an unknown kit
  name, template code in the URL — a per-recipient image address would tell who opened
  the message) is never rendered (the HTML leaves it out, the text part keeps its alt
  text, as before images were supported), and :func:`image_problems` names it, with its
  line, so that submit refuses the release.

Pure: strings in, strings out. Bodies without images never reach this module, so they
render byte for byte as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markupsafe import escape

from mailer.message.kit import MAX_IMAGE_WIDTH
from mailer.message.spec import KitAsset

__all__ = ["ASSET_SCHEME", "KitImages", "Shown", "has_images", "image_problems"]

#: ``![alt](asset:NAME)``: an image of the release's own press kit, by file name.
ASSET_SCHEME = "asset:"

#: How every image sits in the HTML: never wider than its column (Outlook for Windows
#: ignores max-width, and uses the width attribute where we know it).
_STYLE = "max-width:100%;height:auto;border:0;"
_TEMPLATE_CODE = ("{{", "{%", "{#")
_URL_BAD = re.compile(r"[\s<>\"'\\\x00-\x1f\x7f]")
_OWN_ASSET = re.compile(r"/assets/(\d+)/[^/?#]+$")


def has_images(source: str) -> bool:
    """True when ``source`` may hold a Markdown image (every image starts with ``![``)."""
    return "![" in source


@dataclass(frozen=True)
class Shown:
    """How one accepted image is shown: ``src`` is an HTML attribute value (escaped) or a
    Jinja expression (a kit image: its URL carries the token of the message), ``text_src``
    the same for the text part."""

    src: str
    text_src: str
    alt: str
    width: int | None = None
    height: int | None = None

    def html(self) -> str:
        """The ``<img>`` element."""
        size = f' width="{self.width}" height="{self.height}"' if self.width and self.height else ""
        return f'<img src="{self.src}" alt="{escape(self.alt)}"{size} style="{_STYLE}">'

    def text(self) -> str:
        """The text part's line for it."""
        label = f"[Image: {self.alt}]" if self.alt.strip() else "[Image]"
        return f"{label} <{self.text_src}>"


@dataclass(frozen=True)
class KitImages:
    """The images a variant may show: any https URL, and its press kit's images."""

    assets: tuple[KitAsset, ...] = ()
    newsroom_path: str | None = None

    def _asset(self, url: str) -> tuple[int | None, str | None]:
        """(index in ``assets``, problem) for an ``asset:`` URL or one of our own kit URLs;
        (None, None) for any other URL."""
        if url.startswith(ASSET_SCHEME):
            name = unquote(url[len(ASSET_SCHEME) :]).strip()
            for index, asset in enumerate(self.assets):
                if asset.filename == name:
                    if asset.kind != "image":
                        return None, f"{name!r} in the press kit is a document, not an image: link it instead"
                    return index, None
            have = ", ".join(a.filename for a in self.assets if a.kind == "image")
            hint = f"its images: {have}" if have else "it has no image: `mailer releases attach ID FILE`"
            return None, f"no image {name!r} in the release's press kit ({hint})"
        m = _OWN_ASSET.search(urlsplit(url).path)
        if m is not None and self.newsroom_path and urlsplit(url).path.startswith(self.newsroom_path + "/assets/"):
            for index, asset in enumerate(self.assets):
                if asset.id == int(m.group(1)) and asset.kind == "image":
                    return index, None
        return None, None

    def problem(self, url: str, *, template_mark: str | None = None) -> str | None:
        """Why the image at ``url`` (as Markdown parsed it) cannot be shown, else None.
        ``template_mark``: what the body's Jinja constructs were replaced by, if they were."""
        raw = unquote(url)
        if any(code in raw for code in _TEMPLATE_CODE) or (template_mark is not None and template_mark in url):
            return (
                "holds template code: an image's address must be the same for every recipient "
                "(a per-recipient address would tell who opened the message)"
            )
        index, problem = self._asset(url)
        if problem is not None or index is not None:
            return problem
        parts = urlsplit(url)
        if parts.scheme.lower() != "https" or not parts.hostname:
            return (
                "is not an https URL (http:, data:, javascript: and relative images are refused): "
                f"host it on https, or attach it (`mailer releases attach`) and write ![alt]({ASSET_SCHEME}FILE)"
            )
        if _URL_BAD.search(url) or not url.isascii():
            return "is not a well-formed URL"
        return None

    def show(self, url: str, alt: str, *, template_mark: str | None = None) -> Shown | None:
        """How the image at ``url`` is shown, or None when it is refused (see :meth:`problem`)."""
        if self.problem(url, template_mark=template_mark) is not None:
            return None
        index, _ = self._asset(url)
        if index is None:
            src = str(escape(url))
            return Shown(src, url, alt)
        asset = self.assets[index]
        width, height = asset.width, asset.height
        if width and height and width > MAX_IMAGE_WIDTH:
            width, height = MAX_IMAGE_WIDTH, max(1, round(height * MAX_IMAGE_WIDTH / width))
        # The kit image's URL carries the message's release token: filled in at render time.
        expression = f"{{{{ assets[{index}].src }}}}"
        return Shown(expression, expression, alt or asset.alt or asset.caption or "", width, height)


def alt_text(markdown: MarkdownIt, image: Token) -> str:
    """The alt text of an image token, without markup."""
    renderer = markdown.renderer
    assert isinstance(renderer, RendererHTML)
    return renderer.renderInlineAsText(image.children or [], markdown.options, {})


def _checker(markdown: MarkdownIt) -> MarkdownIt:
    """A parser like ``markdown`` that also reads images whose URL it would refuse to
    link (``javascript:``...), so that they can be named."""
    options = {"html": bool(markdown.options["html"]), "breaks": bool(markdown.options["breaks"])}
    checker = MarkdownIt("commonmark", options)
    checker.validateLink = lambda url: True  # type: ignore[method-assign]
    return checker


def image_problems(markdown: MarkdownIt, source: str, images: KitImages, *, where: str) -> list[str]:
    """One line per image of ``source`` (Markdown with Jinja, as the author wrote it) that
    cannot be shown: ``{where}, line N: image "ALT" (URL) ...``; [] when every image can."""
    if not has_images(source):
        return []
    checker = _checker(markdown)
    lines = source.split("\n")
    found: list[str] = []
    for block in checker.parse(source):
        if block.type != "inline" or not block.children:
            continue
        first = block.map[0] if block.map else 0
        text = "\n".join(lines[first : block.map[1]]) if block.map else ""
        at = 0
        for tok in block.children:
            if tok.type != "image":
                continue
            at = text.find("![", at)
            line = first + 1 + (text.count("\n", 0, at) if at >= 0 else 0)
            at = at + 2 if at >= 0 else 0
            url = str(tok.attrGet("src") or "")
            problem = images.problem(url)
            if problem is not None:
                found.append(f'{where}, line {line}: image "{alt_text(checker, tok)}" ({unquote(url)}) {problem}')
    return found


def replace_images(
    markdown: MarkdownIt, tokens: Sequence[Token], images: KitImages, *, template_mark: str, placeholder: str
) -> list[str]:
    """Replace each image token of ``tokens`` (in place) by a text token holding
    ``placeholder.format(n)`` (a refused image by nothing); return the ``<img>`` elements,
    the n-th for the n-th placeholder."""
    shown: list[str] = []
    for block in tokens:
        for i, tok in enumerate(block.children or ()):
            if tok.type != "image":
                continue
            image = images.show(str(tok.attrGet("src") or ""), alt_text(markdown, tok), template_mark=template_mark)
            text = Token("text", "", 0)
            if image is not None:
                text.content = placeholder.format(len(shown))
                shown.append(image.html())
            assert block.children is not None
            block.children[i] = text
    return shown
