"""The release editor (issue 21): structured fields saved through the CLI's checks, errors
naming the key, drafts kept as you type and restored, live audience counts, a live
preview per segment and contact with its .eml, editing an approved release."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import select

from mailer.domain.states import Role
from mailer.releases.source import parse_release
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Release
from tests.support.releases import seed
from tests.support.web import csrf, sign_in


def advisory_form(token: str) -> dict[str, object]:
    """The sample advisory as the editor posts it: two speaker groups, bios of two paragraphs, related link."""
    return {
        "csrftoken": token,
        "release_id": "",
        "title": "Harbour accord briefing",
        "client": "acme",
        "subject": "Media advisory: the harbour accord",
        "template": "media_advisory",
        "dateline": "SPRINGFIELD, Dec. 2",
        "intro": "Dear {{ first_name | default('colleague') }},",
        "body": "The envoy briefs reporters.\nSecond line.",
        "segments": ["foreign-policy-print", "broadcast-bookers"],
        "disclosure_placement": "block",
        "g0_heading": "Available for interview",
        "g0_s0_name": "Dr. Ada Example", "g0_s0_title": "Director", "g0_s0_bio": "First paragraph.\n\nSecond paragraph.",
        "g0_s1_name": "", "g0_s1_title": "", "g0_s1_bio": "",
        "g1_heading": "Other speakers available",
        "g1_s0_name": "Ben Sample", "g1_s0_title": "Pilot", "g1_s0_bio": "",
        "questions_heading": "Questions to ask",
        "questions": "What changes?\nWho pays?",
        "r0_title": "The accord, explained", "r0_url": "https://acme.example.com/accord",
        "booking_name": "Pat Doe", "booking_email": "bookings@acme.example.com", "booking_phone": "+1 202 555 0147",
        "v__broadcast-bookers__subject": "Booking: the harbour accord",
        "v__broadcast-bookers__body": "Studio slots on Dec. 3.",
    }  # fmt: skip


def test_save_a_new_release_from_the_editor(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """A publicist saves the structured form: the release carries every field, through the release file's parser."""
    seed(rt, tmp_path)
    client = sign_in(app, Role.PUBLICIST)
    assert client.get("/editor/new").status_code == 200
    saved = client.post("/editor/save", data=advisory_form(csrf(client)))
    assert saved.status_code == 303, saved.text
    with transaction(rt.sessions) as session:
        release = session.scalar(select(Release))
        assert release is not None and release.author == "publicist@staff.example.com"
        extra = release.extra
    assert extra["speakers"][0]["bio"] == "First paragraph.\n\nSecond paragraph."
    assert extra["speaker_groups"][0]["heading"] == "Other speakers available"
    assert extra["related"] == [{"title": "The accord, explained", "url": "https://acme.example.com/accord"}]
    assert extra["disclosure_placement"] == "block" and extra["questions_heading"] == "Questions to ask"
    edit = client.get(f"/releases/{release.id}/edit")
    assert edit.status_code == 200 and 'value="Dr. Ada Example"' in edit.text


def test_errors_name_the_key_and_keep_the_form(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """An http related link is refused naming it; what was typed stays in the form."""
    seed(rt, tmp_path)
    client = sign_in(app, Role.PUBLICIST)
    form = advisory_form(csrf(client)) | {"r0_url": "http://acme.example.com/accord"}
    refused = client.post("/editor/save", data=form)
    assert refused.status_code == 422
    assert refused.context["error"].startswith("related[1].url:")  # type: ignore[attr-defined]
    assert 'value="Harbour accord briefing"' in refused.text


def test_autosave_restores_and_live_parts(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """Autosave keeps the form; /editor/new restores it; the audience counts; the live preview renders a contact."""
    seed(rt, tmp_path)
    client = sign_in(app, Role.PUBLICIST)
    form = advisory_form(csrf(client))
    assert "Draft kept" in client.post("/editor/autosave", data=form).text
    restored = client.get("/editor/new")
    assert "Restored your unsaved draft." in restored.text and 'value="Ben Sample"' in restored.text
    assert client.post("/editor/audience", data=form).text.strip().startswith('<span id="audience-total">2 contacts')
    live = client.post(
        "/editor/preview", data=form | {"preview_segment": "broadcast-bookers", "preview_contact": "bob@tv.example.com"}
    )
    assert live.status_code == 200 and live.context["problem"] is None  # type: ignore[attr-defined]
    assert live.context["live"].to_addr == "bob@tv.example.com"  # type: ignore[attr-defined]
    assert "Studio slots on Dec. 3." in live.context["live"].parts.text  # type: ignore[attr-defined]
    assert client.get("/editor/frame").headers["content-security-policy"].startswith("sandbox")
    eml = client.get("/editor/message.eml")
    assert eml.status_code == 200 and b"Subject: Booking: the harbour accord" in eml.content
    bad = client.post("/editor/preview", data=form | {"client": "nope"})
    assert "client: no client 'nope'" in bad.context["problem"]  # type: ignore[attr-defined]


def test_viewer_cannot_open_the_editor(rt: Runtime, app: FastAPI) -> None:
    """Only roles that write releases get the editor."""
    client = sign_in(app, Role.VIEWER)
    assert client.get("/editor/new").status_code == 403
    assert client.post("/editor/save", data={"csrftoken": csrf(client)}).status_code == 403


def test_editor_form_round_trips_through_the_release_file(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """What the editor writes is a release file the CLI reads (one format, one parser)."""
    from mailer.releases.release_text import render_file
    from mailer.web.staff.editor_form import form_to_fields

    form = {k: (v if isinstance(v, list) else [str(v)]) for k, v in advisory_form("x").items()}
    fields, body = form_to_fields(form)
    parsed = parse_release(render_file(fields, body))
    assert [s.name for s in parsed.speakers] == ["Dr. Ada Example"]
    assert parsed.variants["broadcast-bookers"].body == "Studio slots on Dec. 3."
