"""Press-kit assets: checked for type and size, stored, listed and removed from the CLI
and the staff page, shown in messages (images with width/height/alt from hosted https
URLs, captioned links in the text part), documents as links or, small, attached."""

from __future__ import annotations

import email
import email.policy
import re
import struct
from email.message import EmailMessage
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app as cli_app
from mailer.config import AssetSettings, Settings, WebSettings
from mailer.domain.errors import InputError
from mailer.message import Renderer
from mailer.releases.approval import approve_release
from mailer.releases.filetypes import safe_filename, sniff
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.db import transaction
from tests.support.cli import run_json
from tests.support.kit import pdf, png
from tests.support.releases import BASE_URL, create, seed, submit


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """https links, assets under the test's folder, a 4 KB attachment cap."""
    return settings.model_copy(
        update={
            "web": WebSettings(base_url=BASE_URL),
            "assets": AssetSettings(dir=tmp_path / "assets", max_attachment_bytes=4096, max_image_bytes=512 * 1024),
        }
    )


@pytest.fixture(autouse=True)
def asset_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same asset settings for the commands the tests run."""
    monkeypatch.setenv("MAILER_ASSETS__DIR", str(settings.assets.dir))
    monkeypatch.setenv("MAILER_ASSETS__MAX_ATTACHMENT_BYTES", str(settings.assets.max_attachment_bytes))
    monkeypatch.setenv("MAILER_ASSETS__MAX_IMAGE_BYTES", str(settings.assets.max_image_bytes))


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


def _jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def test_types_come_from_the_bytes() -> None:
    """PNG, JPEG and GIF sizes are read from their headers; a PDF is a document; SVG, HTML and a lying name are refused."""
    assert (sniff(png(640, 480), "a.png").width, sniff(png(640, 480), "a.png").height) == (640, 480)
    assert (sniff(_jpeg(1200, 800), "b.jpg").width, sniff(_jpeg(1200, 800), "b.jpg").height) == (1200, 800)
    gif = b"GIF89a" + struct.pack("<HH", 32, 16) + b"\x00" * 8
    assert sniff(gif, "c.gif").content_type == "image/gif"
    assert sniff(pdf(), "fact.pdf").kind == "document"
    for data, name in (
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "x.svg"),
        (b"<html>", "x.pdf"),
        (b"MZ\x90", "x.png"),
    ):
        with pytest.raises(InputError, match="not a kind of file a press kit may carry"):
            sniff(data, name)
    with pytest.raises(InputError, match="damaged image/png"):
        sniff(png()[:20], "short.png")
    assert safe_filename("../../Fact sheet (final).PDF") == "Fact-sheet-final-.PDF"


def _eml(tmp_path: Path, rid: int) -> tuple[EmailMessage, str, str]:
    out = tmp_path / "msg.eml"
    result = CliRunner().invoke(
        cli_app,
        ["releases", "preview", str(rid), "--segment", "foreign-policy-print", "--format", "eml", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    msg = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return msg, str(text.get_content()), str(html.get_content())


def test_attach_list_render_and_detach_from_the_cli(
    rt: Runtime, env: dict[str, str], renderer: Renderer, tmp_path: Path
) -> None:
    """A photo (scaled to 560 wide) and a PDF are attached, listed, shown in both parts, and one is detached."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    (tmp_path / "harbour photo.png").write_bytes(png(700, 400))
    (tmp_path / "facts.pdf").write_bytes(pdf())
    photo = run_json(
        "releases", "attach", str(rid), str(tmp_path / "harbour photo.png"),
        "--caption", "The harbour at dawn", "--alt", "Cranes over a quiet harbour",
    )  # fmt: skip
    facts = run_json("releases", "attach", str(rid), str(tmp_path / "facts.pdf"), "--caption", "Fact sheet")
    assert isinstance(photo, dict) and isinstance(facts, dict)
    assert (photo["filename"], photo["kind"], photo["width"], photo["height"]) == (
        "harbour-photo.png",
        "image",
        700,
        400,
    )
    assert (facts["kind"], facts["content_type"], facts["attached"]) == ("document", "application/pdf", False)
    listed = run_json("releases", "assets", str(rid))
    assert isinstance(listed, list) and [a["filename"] for a in listed] == ["harbour-photo.png", "facts.pdf"]
    assert len(list(rt.settings.assets.dir.glob(f"releases/{rid}/*"))) == 2
    msg, text, html = _eml(tmp_path, rid)
    assert msg.get_content_type() == "multipart/alternative"
    page = f"{BASE_URL}/newsroom/acme/{rid}/assets"
    # a preview links the public newsroom URLs, with the release's token (not a reader's)
    src = re.search(r'<img src="([^"]+)" width="560" height="320" alt="Cranes over a quiet harbour"', html)
    assert src is not None and src.group(1).startswith(f"{page}/{photo['id']}/harbour-photo.png?k=")
    assert f'href="{page}/{facts["id"]}/facts.pdf?k=' in html and ">Fact sheet</a> (facts.pdf, 1 KB)" in html
    text = text.replace("\r\n", "\n")
    assert "PRESS KIT" in text
    assert "* The harbour at dawn (harbour-photo.png, 560x320 image, " in text
    assert f" KB)\n  {page}/{photo['id']}/harbour-photo.png?k=" in text
    assert f"{page}/{facts['id']}/facts.pdf?k=" in text
    run_json("releases", "detach", str(rid), str(facts["id"]))
    left = run_json("releases", "assets", str(rid))
    assert isinstance(left, list) and [a["filename"] for a in left] == ["harbour-photo.png"]


def test_a_kit_change_returns_an_approved_release_to_draft(
    rt: Runtime, env: dict[str, str], renderer: Renderer, tmp_path: Path
) -> None:
    """Attaching to an approved release is an edit: back to draft, noted in its history."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    submit(rt, renderer, rid)
    with transaction(rt.sessions) as session:
        approve_release(session, rid, approver="quinn", renderer=renderer, settings=rt.settings, now=rt.clock())
    (tmp_path / "p.png").write_bytes(png())
    done = run_json("releases", "attach", str(rid), str(tmp_path / "p.png"))
    assert isinstance(done, dict) and done["release_status"] == "draft"
    assert done["alt"] == "p"  # no alt and no caption: the file's name
    with transaction(rt.sessions) as session:
        notes = [e.note for e in release_store.release_events(session, rid)]
    assert notes[-1] == "attached p.png while approved: back to draft, approval needed again"


def test_wrong_type_and_too_large_are_refused(
    rt: Runtime, env: dict[str, str], renderer: Renderer, tmp_path: Path
) -> None:
    """An SVG and an image over assets.max_image_bytes are refused with one line; nothing is added."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    (tmp_path / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "huge.png").write_bytes(png() + b"\x00" * (600 * 1024))
    for name, says in (("logo.svg", "not a kind of file"), ("huge.png", "over the image limit of 512 KB")):
        result = CliRunner().invoke(cli_app, ["releases", "attach", str(rid), str(tmp_path / name)])
        assert isinstance(result.exception, InputError) and says in str(result.exception)
    assert run_json("releases", "assets", str(rid)) == []


def test_a_small_document_may_travel_attached_with_a_warning(
    rt: Runtime, env: dict[str, str], renderer: Renderer, tmp_path: Path
) -> None:
    """--attach puts a small PDF inside every message (multipart/mixed) with a warning; over the cap it is refused."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    (tmp_path / "facts.pdf").write_bytes(pdf())
    done = run_json("releases", "attach", str(rid), str(tmp_path / "facts.pdf"), "--attach")
    assert isinstance(done, dict) and done["attached"] is True
    assert "travels in every message" in done["warnings"][0]
    msg, _text, html = _eml(tmp_path, rid)
    assert msg.get_content_type() == "multipart/mixed"
    attachments = list(msg.iter_attachments())
    assert [(a.get_content_type(), a.get_filename()) for a in attachments] == [("application/pdf", "facts.pdf")]
    assert attachments[0].get_content() == pdf()
    assert "also attached" in html
    (tmp_path / "big.pdf").write_bytes(pdf() + b"%" * 8000)
    result = CliRunner().invoke(cli_app, ["releases", "attach", str(rid), str(tmp_path / "big.pdf"), "--attach"])
    assert isinstance(result.exception, InputError) and "too large to attach" in str(result.exception)
