"""The press kit on the staff release page: the upload form, the files, who may upload."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.config import AssetSettings, Settings
from mailer.domain.states import Role
from mailer.message import Renderer
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from tests.support.kit import png
from tests.support.releases import create, seed
from tests.support.web import app_for, csrf, make_users, sign_in


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"assets": AssetSettings(dir=tmp_path / "assets")})


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


def test_upload_from_the_staff_page(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """A publicist uploads a photo on the release page (then sees it and its file); a viewer may not."""
    make_users(rt)
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    app = app_for(rt)
    publicist = sign_in(app, Role.PUBLICIST)
    page = publicist.get(f"/releases/{rid}")
    assert 'id="upload"' in page.text
    sent = publicist.post(  # as htmx sends the form: the CSRF token in a header
        f"/releases/{rid}/assets",
        data={"caption": "Dawn", "alt": "Harbour"},
        files={"file": ("dawn.png", png(20, 10), "image/png")},
        headers={"x-csrftoken": csrf(publicist), "hx-request": "true"},
    )
    assert (sent.status_code, sent.headers["hx-redirect"]) == (204, f"/releases/{rid}#kit"), sent.text
    page = publicist.get(f"/releases/{rid}")
    assets = page.context["assets"]  # type: ignore[attr-defined]
    assert [(a.filename, a.width, a.height, a.alt) for a in assets] == [("dawn.png", 20, 10, "Harbour")]
    served = publicist.get(f"/releases/{rid}/assets/{assets[0].id}")
    assert served.content == png(20, 10) and served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    viewer = sign_in(app, Role.VIEWER)
    refused = viewer.post(
        f"/releases/{rid}/assets", headers={"x-csrftoken": csrf(viewer)}, files={"file": ("x.png", png(), "image/png")}
    )
    assert refused.status_code == 403
