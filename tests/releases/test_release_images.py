"""Markdown images in a release (issue 16) from file to inbox: a bad image refuses the
submit with one line naming it and its line (in process and from the CLI); a release
showing a kit photo by name and an https image is approved, sent, and shows them in both
parts and on its newsroom page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailer.config import AssetSettings, Settings, WebSettings
from mailer.domain.errors import WorkflowError
from mailer.message import Renderer
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.web import create_app
from tests.support.cli import run_json, run_proc
from tests.support.kit import html_of, send_kit_release, text_of
from tests.support.releases import BASE_URL, RELEASE, create, seed, submit

BAD_BODY = """\
The institute publishes its [harbour report](https://acme.example.com/r/1) today.

![Harbour at dawn](https://cdn.example.org/harbour.jpg)
Old logo: ![Acme logo](http://acme.example.com/logo.png)
"""

GOOD_BODY = """\
The institute publishes its [harbour report](https://acme.example.com/r/1) today.

![](asset:photo.png)

![Map of the harbour](https://cdn.example.org/map.png)
"""


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={"web": WebSettings(base_url=BASE_URL), "assets": AssetSettings(dir=tmp_path / "assets")}
    )


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


def with_body(body: str) -> str:
    front, _, _ = RELEASE.rpartition("+++\n")
    return front + "+++\n" + body


def test_submit_refuses_a_release_with_an_http_image_naming_it_and_its_line(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """An http: image on body line 4 fails submit with its alt, URL and line; the release stays a draft."""
    seed(rt, tmp_path)
    rid = create(rt, renderer, with_body(BAD_BODY))
    with pytest.raises(WorkflowError) as failed:
        submit(rt, renderer, rid)
    message = str(failed.value)
    assert 'body, line 4: image "Acme logo" (http://acme.example.com/logo.png) is not an https URL' in message
    assert "harbour.jpg" not in message  # the https image is fine
    with transaction(rt.sessions) as session:
        assert release_store.get_release(session, rid).status == "draft"


def test_the_cli_submit_says_it_in_one_line(rt: Runtime, env: dict[str, str], tmp_path: Path) -> None:
    """`mailer releases submit` of a release with an unknown kit image exits non-zero with one line naming it."""
    seed(rt, tmp_path)
    path = tmp_path / "release.md"
    path.write_text(with_body("Photo:\n\n![Harbour](asset:nothing-attached.png)\n"), "utf-8")
    rid = str(run_json("releases", "create", str(path))["id"])  # type: ignore[index]
    result = run_proc(env, "releases", "submit", rid)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "body, line 3: image \"Harbour\" (asset:nothing-attached.png) no image 'nothing-attached.png'" in lines[0]


async def test_a_sent_release_shows_its_kit_photo_and_https_image_in_both_parts_and_online(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """asset:photo.png and an https image pass submit, and show in each message (token, size, alt) and on the page."""
    sent = await send_kit_release(rt, renderer, tmp_path, text=with_body(GOOD_BODY))
    assert len(sent.messages) == 2
    ann = sent.messages["ann@daily.example.com"]
    html, text = html_of(ann), text_of(ann).replace("\r\n", "\n")
    page = f"{BASE_URL}/newsroom/acme/{sent.release_id}/assets/"
    photo = re.search(
        rf'<img src="({re.escape(page)}\d+/photo.png\?k=[^"]+)" alt="The harbour" width="40" height="30"', html
    )
    assert photo is not None
    assert '<img src="https://cdn.example.org/map.png" alt="Map of the harbour" style="max-width:100%' in html
    assert f"[Image: The harbour] <{photo.group(1)}>" in " ".join(text.split())
    assert "[Image: Map of the harbour] <https://cdn.example.org/map.png>" in text
    view = re.search(r"View online:\s+(\S+)", text)
    assert view is not None
    web = TestClient(create_app(rt.settings, clock=rt.clock))
    reader = web.get(view.group(1).removeprefix(BASE_URL))
    assert reader.status_code == 200
    token = view.group(1).split("?t=")[1]
    assert f'src="/newsroom/acme/{sent.release_id}/assets/' in reader.text and f"photo.png?t={token}" in reader.text
    assert 'src="https://cdn.example.org/map.png"' in reader.text
    assert "https:" in reader.headers["content-security-policy"].split("img-src")[1].split(";")[0]
