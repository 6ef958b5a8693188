"""Bodies without images render byte for byte as before Markdown images were supported
(issue 16): approvals bind to bytes, and RENDER_VERSION did not change.

``UNCHANGED_DIGEST`` was computed from main (94edc6d) before the image support was added,
with this file's corpus; a change to the corpus needs a digest recomputed on that commit.
"""

from __future__ import annotations

import hashlib

from mailer.message import RENDER_VERSION, Recipient, Renderer
from mailer.message.spec import KitAsset
from tests.support.constants import TEMPLATES
from tests.support.render import ANN, DATE, make_spec

#: sha256 over every render of the corpus below, on main before issue 16's images.
UNCHANGED_DIGEST = "741486200e20711a8eb4ea720064066822c92f7b2619e96573c706e3976c0d6f"

BODIES = (
    "",
    "Plain paragraph with *emphasis*, **strong**, `code` and a [link](https://example.com/a).\n",
    "# Heading\n\nText under it.\nA kept line break.\n\n## Second\n\n- one\n- two\n  - nested\n\n1. first\n2. second\n",
    "> A quote\n> over two lines\n\n    code block\n    second line\n\n```\nfenced\n```\n\n---\n\nAfter the rule.\n",
    "Autolink <https://example.org/x> and mailto <mailto:desk@example.com>, tel [call](tel:+15550100).\n",
    "Hello {{ first_name | default('there') }},\n\n{% if outlet %}For {{ outlet }}:{% endif %}\n\n"
    "{% for q in questions %}\n- {{ q }}\n{% endfor %}\n",
    "Brackets that are no image: ! [x](https://example.com/y) and !not [an](https://example.com/z) image.\n",
    "Text with [Image: literal] <https://example.com/literal> written by hand.\n",
    "An http link [old](http://example.com/old) and <b>raw html</b> & < > \" ' characters.\n",
    "WASHINGTON, December 1, 2026 —\nThe dateline leads. " + "A long sentence that wraps. " * 12 + "\n",
)

ASSETS = (
    KitAsset(1, "image", "harbour.png", "image/png", 20_000, "a" * 64, 1200, 800, "The harbour", "Boats at dawn"),
    KitAsset(2, "document", "facts.pdf", "application/pdf", 90_000, "b" * 64, caption="Fact sheet"),
)


def _corpus_digest() -> str:
    renderer = Renderer(TEMPLATES)
    digest = hashlib.sha256()
    blank = Recipient(email="journalist@example.com")
    for template in ("press_release", "media_advisory"):
        for index, body in enumerate(BODIES):
            for extra in (
                {},
                {
                    "assets": ASSETS,
                    "site_url": "https://news.example.com",
                    "newsroom_path": "/newsroom/acme/42",
                    "embargo_at": "2026-12-01T14:00:00+00:00",
                    "embargo_zone": "America/New_York",
                    "intro": None,
                },
            ):
                spec = make_spec(template=template, body_markdown=body, release_key=f"k{index}", **extra)
                variant = renderer.compile_here(spec)
                for rcpt in (ANN, blank):
                    raw = variant.render(
                        rcpt,
                        to_addr=rcpt.email,
                        message_id=f"<m.{index}@acme.example.com>",
                        unsubscribe_url="https://news.acme.example.com/u/tok123",
                        unsubscribe_mailto=None,
                        date=DATE,
                        kit_token="KITTOKEN" if extra else None,
                        release_token="RELTOKEN" if extra else None,
                    )
                    digest.update(raw)
                    parts = variant.render_parts(rcpt, to_addr=rcpt.email, unsubscribe_url="https://x.example.com/u")
                    digest.update(parts.html.encode() + parts.text.encode() + parts.subject.encode())
                page_body, about = variant.page_html(blank)
                digest.update(str(page_body).encode() + str(about).encode())
    return digest.hexdigest()


def test_bodies_without_images_render_the_same_bytes_as_before() -> None:
    """A corpus of image-free bodies (both templates, with and without kit and embargo) gives main's digest."""
    assert RENDER_VERSION == "2"
    assert _corpus_digest() == UNCHANGED_DIGEST
