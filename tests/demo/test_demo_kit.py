"""`make demo`'s release carries a photo and a PDF fact sheet: in its previews, in every
message (image from a hosted URL, fact sheet as a link) and on its newsroom page."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailer.config import AssetSettings, Settings
from mailer.demo.data import FACT_SHEET_FILE, PHOTO_FILE
from mailer.demo.run import import_samples, prepare_release
from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.web import create_app
from tests.support.constants import REPO
from tests.support.fake_transport import FakeTransport


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"assets": AssetSettings(dir=tmp_path / "assets")})


async def test_the_demo_release_carries_a_photo_and_a_fact_sheet(rt: Runtime, tmp_path: Path) -> None:
    """Previews and sent messages show the photo (with alt text) and link the PDF; a
    recipient's View online page shows both; the files are the demo's own, and small."""
    assert PHOTO_FILE.stat().st_size < 20_000 and FACT_SHEET_FILE.stat().st_size < 20_000
    import_samples(rt, REPO / "lists")
    release_id, previews = prepare_release(rt, tmp_path / "previews")
    html = next(p for p in previews if p.suffix == ".html").read_text("utf-8")
    assert re.search(r'<img src="[^"]+/port-sarrent-harbour\.png\?k=[^"]+" width="480" height="300" alt="Cranes', html)
    assert "kessar-strait-fact-sheet.pdf" in html
    fake = FakeTransport()
    await Dispatcher(rt, fake).run_once()
    assert len(fake.sent) > 200
    msg = email.message_from_bytes(fake.sent[0].data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    text = msg.get_body(("plain",))
    assert isinstance(text, EmailMessage)
    body = str(text.get_content())
    assert "/port-sarrent-harbour.png" in body and "/kessar-strait-fact-sheet.pdf" in body
    view = re.search(r"View online:\s+(\S+)", body)
    assert view is not None
    web = TestClient(create_app(rt.settings, clock=rt.clock))
    page = web.get(view.group(1).removeprefix(rt.settings.web.base_url))
    assert page.status_code == 200 and "EMBARGOED until" in page.text
    assert 'alt="Cranes and a quay at Port Sarrent' in page.text and "Fact sheet: the Kessar Strait talks" in page.text
    pdf = re.search(r'href="[^"]*(/kit/[^"]+/kessar-strait-fact-sheet\.pdf)"', page.text)
    assert pdf is not None
    assert web.get(pdf.group(1)).content == FACT_SHEET_FILE.read_bytes()
    assert release_id == 1 or release_id > 0
