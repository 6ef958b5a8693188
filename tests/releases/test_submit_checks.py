"""What submit says about the audience and about content a template drops (issue 21,
problems 5 and 6), and outlet types the same in rules and at import."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer import store
from mailer.config import Settings, WebSettings
from mailer.domain.errors import SegmentSyntaxError, WorkflowError
from mailer.domain.states import DEFAULT_OUTLET_TYPES
from mailer.message import Renderer
from mailer.releases.approval import submit_release
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.segment_checks import unknown_names
from mailer.store.segments import check_rule
from mailer.store.tables import ReleaseEvent
from tests.support.constants import REPO
from tests.support.releases import BASE_URL, RELEASE, create, seed

EMPTY = RELEASE.replace('segments = ["foreign-policy-print", "broadcast-bookers"]', 'segments = ["nobody"]').replace(
    "[variants.broadcast-bookers]", "[variants.nobody]"
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"web": WebSettings(base_url=BASE_URL)})


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


def test_zero_audience_and_unknown_names_are_warned_at_submit(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """A release whose only segment matches nobody (a beat no contact has) submits with warnings naming both."""
    seed(rt, tmp_path)
    rid = create(rt, renderer, EMPTY)
    with transaction(rt.sessions) as session:
        report = submit_release(session, rid, actor="pat", renderer=renderer, settings=rt.settings, now=rt.clock())
    assert "segment nobody matches 0 contacts now (beat:astrology)" in report.warnings
    assert "segment nobody: no contact has beat 'astrology' (column 6)" in report.warnings
    assert "the release reaches nobody: every segment is empty" in report.warnings
    with transaction(rt.sessions) as session:
        history = [e.note or "" for e in session.scalars(select(ReleaseEvent).where(ReleaseEvent.release_id == rid))]
    assert any("matches 0 contacts" in n for n in history)


def test_unknown_list_beat_and_tag_are_named(rt: Runtime, tmp_path: Path) -> None:
    """A rule naming a list that does not exist, or a beat or tag nobody has, is named; known ones are not."""
    seed(rt, tmp_path)
    with transaction(rt.sessions) as session:
        found = unknown_names(session, "list:press AND (list:natonal-press OR beat:foreign-policy OR beat:x OR tag:y)")
    assert found == [
        "list 'natonal-press' does not exist (see `mailer lists list`) (column 22)",
        "no contact has beat 'x' (column 67)",
        "no contact has tag 'y' (column 76)",
    ]


def test_outlet_type_in_a_rule_is_checked_like_the_import() -> None:
    """A rule takes the outlet types the import takes (magazine now both), and names them for another."""
    with pytest.raises(SegmentSyntaxError, match=r"outlet_type 'zine' is not one of print, tv, radio"):
        check_rule("outlet_type IN (tv, zine)", outlet_types=DEFAULT_OUTLET_TYPES)
    check_rule("outlet_type IN (TV, magazine)", outlet_types=DEFAULT_OUTLET_TYPES)


def test_a_template_that_drops_speakers_and_questions_is_refused(
    rt: Runtime, settings: Settings, tmp_path: Path
) -> None:
    """A custom template without speakers and questions fails submit naming what it drops."""
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    (templates / "bare.html").write_text('{% extends "base.html" %}{% block content %}{{ body }}{% endblock %}')
    (templates / "bare.txt").write_text('{% extends "base.txt" %}{% block content %}{{ body }}{% endblock %}')
    renderer = Renderer(templates)
    seed(rt, tmp_path)
    rid = create(rt, renderer, RELEASE.replace('template = "media_advisory"', 'template = "bare"'))
    with transaction(rt.sessions) as session, pytest.raises(WorkflowError) as info:
        submit_release(session, rid, actor="pat", renderer=renderer, settings=rt.settings, now=rt.clock())
    message = str(info.value)
    assert "template 'bare' does not show the speakers (Dr. Ada Example)" in message
    assert "does not show the suggested questions" in message
    assert "does not show the booking contact" in message


def test_press_release_shows_speakers_and_questions(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """The shipped press_release template carries speakers and questions, so it submits."""
    seed(rt, tmp_path)
    rid = create(rt, renderer, RELEASE.replace('template = "media_advisory"', 'template = "press_release"'))
    with transaction(rt.sessions) as session:
        submit_release(session, rid, actor="pat", renderer=renderer, settings=rt.settings, now=rt.clock())
        assert store.segment_count(session, "beat:foreign-policy") == 1
