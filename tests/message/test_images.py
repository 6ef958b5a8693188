"""Markdown images in a release body (issue 16): https images and the release's own kit
images shown in the HTML (alt, width/height when known, never wider than the column) and
as ``[Image: alt] <URL>`` lines in the text part; any other image never rendered and named,
with its line, by the submit check."""

from __future__ import annotations

import re

import pytest

from mailer.domain.errors import TemplateError
from mailer.message import Recipient, Renderer
from mailer.message.images import KitImages, image_problems
from mailer.message.spec import KitAsset, RenderedParts
from tests.support.constants import TEMPLATES
from tests.support.render import ANN, make_spec

SITE = "https://news.example.com"
PAGE = "/newsroom/acme/42"
PHOTO = KitAsset(7, "image", "harbour.png", "image/png", 20_000, "a" * 64, 1200, 800, "The harbour", "Boats at dawn")
FACTS = KitAsset(8, "document", "facts.pdf", "application/pdf", 90_000, "b" * 64, caption="Fact sheet")


def parts(body: str, *, template: str = "press_release", release_token: str | None = "RELTOKEN") -> RenderedParts:
    spec = make_spec(
        template=template, body_markdown=body, assets=(PHOTO, FACTS), site_url=SITE, newsroom_path=PAGE, intro=None
    )
    variant = Renderer(TEMPLATES).compile_here(spec)
    return variant.render_parts(
        ANN, to_addr=ANN.email, unsubscribe_url="https://news.example.com/u/t", release_token=release_token
    )


def images_of(html: str) -> list[str]:
    return re.findall(r"<img [^>]*>", html)


def test_an_https_image_shows_with_its_alt_and_the_text_part_names_it() -> None:
    """![alt](https://...) is an <img> with the alt text (personalized), max-width:100%, and a text line."""
    shown = parts('Before.\n\n![Minister at {{ outlet }}](https://cdn.example.org/minister.jpg "Title")\n\nAfter.\n')
    body_images = [i for i in images_of(shown.html) if "cdn.example.org" in i]
    assert body_images == [
        '<img src="https://cdn.example.org/minister.jpg" alt="Minister at Daily Planet" '
        'style="max-width:100%;height:auto;border:0;">'
    ]
    assert "![" not in shown.text
    assert "\n[Image: Minister at Daily Planet] <https://cdn.example.org/minister.jpg>\n" in shown.text


def test_a_kit_image_by_name_or_by_its_own_url_gets_its_size_and_the_release_token() -> None:
    """![](asset:NAME) and a pasted newsroom URL of the kit image show it 560 wide, with its alt and ?k= token."""
    src = f"{SITE}{PAGE}/assets/7/harbour.png?k=RELTOKEN"
    for body in ("![](asset:harbour.png)\n", f"![Boats at dawn]({SITE}{PAGE}/assets/7/harbour.png)\n"):
        shown = parts(body)
        expected = f'<img src="{src}" alt="Boats at dawn" width="560" height="373" style="max-width:100%;height:auto;border:0;">'
        assert expected in shown.html, body
        assert f"[Image: Boats at dawn]\n<{src}>" in shown.text or f"[Image: Boats at dawn] <{src}>" in shown.text
    preview = parts("![](asset:harbour.png)\n", release_token=None)
    assert f'src="{SITE}{PAGE}/assets/7/harbour.png"' in preview.html  # a preview: the public URL


def test_in_outlook_the_image_sits_in_a_table_cell_with_a_width_attribute() -> None:
    """Word ignores max-width: a kit image carries width/height attributes, inside the sections' table cells."""
    for template in ("press_release", "media_advisory"):
        html = parts("Text.\n\n![](asset:harbour.png)\n", template=template).html
        at = html.index('alt="Boats at dawn" width="560" height="373"')
        assert html.rfind("<td", 0, at) > html.rfind("</td>", 0, at)  # inside an open cell
        assert '<div class="section"' not in html[:at]


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "javascript:alert(1)",
        "/relative/a.png",
        "a.png",
        "//example.com/a.png",
        "asset:missing.png",
        "asset:facts.pdf",
    ],
)
def test_an_image_that_cannot_be_shown_is_never_rendered(url: str) -> None:
    """http:, data:, javascript:, relative, per-recipient and unknown or document kit images give no <img> and no URL."""
    shown = parts(f"See this:\n\n![Bad one]({url})\n\nEnd.\n")
    assert [i for i in images_of(shown.html) if "Bad one" in i] == []
    assert "[Image" not in shown.text
    assert f'src="{url}' not in shown.html and 'src="asset:' not in shown.html


def test_template_code_in_an_image_url_does_not_compile() -> None:
    """A per-recipient image address (Jinja in the URL) is a template error, as it was before images were shown."""
    with pytest.raises(TemplateError, match="first_name"):
        parts("![Pixel](https://t.example.net/{{first_name}}.gif)\n")


def test_submit_check_names_each_bad_image_and_its_line() -> None:
    """image_problems gives one line per refused image with its alt, URL and line; good images pass."""
    markdown = Renderer(TEMPLATES).markdown
    kit = KitImages((PHOTO, FACTS), PAGE)
    source = (
        "First paragraph.\n"
        "\n"
        "![ok](https://cdn.example.org/ok.png) ![fine](asset:harbour.png)\n"
        "text ![Old logo](http://example.com/logo.png)\n"
        "\n"
        "![Pixel](javascript:alert(1))\n"
        "![](data:image/png;base64,AAAA)\n"
        "![Per reader](https://t.example.net/{{email}}.gif)\n"
        "![Sheet](asset:facts.pdf) ![Gone](asset:nope.jpg) ![Rel](photos/a.jpg)\n"
    )
    problems = image_problems(markdown, source, kit, where="body")
    assert [p.split(":", 1)[0] for p in problems] == [
        "body, line 4",
        "body, line 6",
        "body, line 7",
        "body, line 8",
        "body, line 9",
        "body, line 9",
        "body, line 9",
    ]
    assert problems[0].startswith('body, line 4: image "Old logo" (http://example.com/logo.png) is not an https URL')
    assert "template code" in problems[3]
    assert "a document, not an image" in problems[4] and "no image 'nope.jpg'" in problems[5]
    assert all("\n" not in p for p in problems)
    assert image_problems(markdown, "No images [here](https://example.com).\n", kit, where="body") == []


def test_the_newsroom_page_shows_the_body_images_with_the_pages_own_links() -> None:
    """page_html: an https image as written; a kit image from the src the page gives (its token)."""
    body_markdown = "![a](https://cdn.example.org/a.png)\n\n![](asset:harbour.png)\n"
    spec = make_spec(body_markdown=body_markdown, assets=(PHOTO,), site_url=SITE, newsroom_path=PAGE)
    variant = Renderer(TEMPLATES).compile_here(spec)
    body, _ = variant.page_html(Recipient(email=""), assets=[{"src": f"{PAGE}/assets/7/harbour.png?t=READER"}])
    assert '<img src="https://cdn.example.org/a.png" alt="a"' in body
    assert f'<img src="{PAGE}/assets/7/harbour.png?t=READER" alt="Boats at dawn" width="560" height="373"' in body
    public, _ = variant.page_html(Recipient(email=""))
    assert f'src="{SITE}{PAGE}/assets/7/harbour.png"' in public
