"""Releases: front matter, content hash, workflow, variants, send plan, previews, proofs."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import shutil
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailer import store
from mailer.audience import contacts
from mailer.config import Settings, SmtpSettings, WebSettings
from mailer.demo.data import CLIENT_FILE, RELEASE_FILE
from mailer.domain.errors import InputError, NotFoundError, TransportError, WorkflowError
from mailer.message import Renderer
from mailer.releases import workflow
from mailer.releases.approval import ApprovalResult, approve_release
from mailer.releases.authoring import update_release
from mailer.releases.clients import client_fields, create_client, load_client_file
from mailer.releases.plan import (
    build_send_plan,
    recipient_for,
    release_content_hash,
    renderer_for,
    require_approved_plan,
    variant_specs,
)
from mailer.releases.preview import preview_release
from mailer.releases.proof import ProofResult, proof_transport, send_proof
from mailer.releases.source import parse_release, parse_time, read_text_file
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store import reviews as review_store
from mailer.store.db import transaction
from mailer.store.tables import Client, Contact, Delivery, Proof, Release, ReleaseEvent, ReleaseSegment
from tests.support.constants import REPO
from tests.support.releases import BASE_URL, CLIENT, EMBARGO_PREFIX, RELEASE, create, seed, submit


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with an https unsubscribe base (RFC 8058 needs https)."""
    return settings.model_copy(update={"web": WebSettings(base_url=BASE_URL)})


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


def approve(rt: Runtime, renderer: Renderer, release_id: int, *, approver: str = "quinn") -> ApprovalResult:
    with transaction(rt.sessions) as session:
        return approve_release(
            session, release_id, approver=approver, renderer=renderer, settings=rt.settings, now=rt.clock()
        )


def current_hash(rt: Runtime, renderer: Renderer, release_id: int) -> str:
    with transaction(rt.sessions) as session:
        return release_content_hash(session, release_id, renderer, rt.settings)


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


# ------------------------------------------------------------------------ authoring


def test_create_stores_columns_extra_segments_and_variants(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """A release file lands as a draft: core columns, the rest in extra, segments in file order with variants."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    with transaction(rt.sessions) as session:
        rel = session.get(Release, rid)
        assert rel is not None
        assert (rel.status, rel.author, rel.template) == ("draft", "pat", "media_advisory")
        assert rel.subject == "Briefing for {{ first_name | default('you') }}"
        assert rel.body.startswith("The institute publishes")
        assert rel.send_at is not None and rel.send_at.isoformat() == "2027-12-01T14:00:00+00:00"
        assert rel.embargo_at is not None and rel.embargo_at.hour == 15
        assert rel.extra["dateline"] == "SPRINGFIELD, December 1, 2026"
        assert rel.extra["speakers"] == [{"name": "Dr. Ada Example", "title": "Director", "bio": "Studies harbours."}]
        assert rel.extra["embargo"] == "2027-12-01T10:00:00-05:00"
        assert rel.extra["embargo_zone"] == "-05:00"
        rows = release_store.release_segments(session, rid)
        assert [(rs.position, seg.slug) for rs, seg in rows] == [(0, "foreign-policy-print"), (1, "broadcast-bookers")]
        assert rows[0][0].subject is None
        assert rows[1][0].subject == "Booking: harbour expert for {{ outlet | default('your show') }}"
        events = release_store.release_events(session, rid)
        assert [(e.from_status, e.to_status, e.actor) for e in events] == [(None, "draft", "pat")]


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('title = "Acme briefing on harbour policy"\n', "", "title"),
        ('dateline = "SPRINGFIELD', 'colour = "red"\ndateline = "SPRINGFIELD', "colour"),
        ('send_at = "2027-12-01T09:00:00-05:00"', 'send_at = "2027-12-01T09:00:00"', "send_at"),
        ("embargo = 2027-12-01T10:00:00-05:00", "embargo = 2026-12-01", "embargo"),
        (
            "subject = \"Briefing for {{ first_name | default('you') }}\"",
            'subject = "Hi\\r\\nBcc: x@example.com"',
            "subject",
        ),
        ('subject = "Booking:', 'subject = "Booking:\\n', "variants.broadcast-bookers.subject"),
        ("[variants.broadcast-bookers]", "[variants.nobody]", "variants.nobody"),
        ('intro = "For bookers: studio or remote."', 'colour = "blue"', "variants.broadcast-bookers.colour"),
        ('segments = ["foreign-policy-print", "broadcast-bookers"]', 'segments = "broadcast-bookers"', "segments"),
        ('name = "Dr. Ada Example"', 'nom = "Ada"', "speakers[1].nom"),
        ('questions = ["What changes at the harbour?"]', "questions = [1, 2]", "questions"),
        ("+++\nThe institute", "\nThe institute", "front matter"),
        ('title = "Acme', 'title = = "Acme', "front matter"),
    ],
)
def test_front_matter_errors_name_the_key(old: str, new: str, key: str) -> None:
    """Each malformed front matter is an InputError whose message starts with the offending key."""
    text = RELEASE.replace(old, new, 1)
    assert text != RELEASE
    with pytest.raises(InputError) as info:
        parse_release(text)
    assert str(info.value).startswith(key), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('client = "acme"', 'client = "globex"', "client"),
        (
            'segments = ["foreign-policy-print", "broadcast-bookers"]',
            'segments = ["foreign-policy-print", "broadcast-bookers", "ghosts"]',
            "segments",
        ),
        ('template = "media_advisory"', 'template = "newsletter"', "template"),
        ('template = "media_advisory"', 'template = "base"', "template"),
        ('intro = "For bookers: studio or remote."', 'template = "nope"', "variants.broadcast-bookers.template"),
    ],
)
def test_unknown_client_segment_or_template_is_named(
    rt: Runtime, renderer: Renderer, tmp_path: Path, old: str, new: str, key: str
) -> None:
    """A file naming a client, segment or template that does not exist is refused, naming the key; nothing is stored."""
    seed(rt, tmp_path)
    with pytest.raises(InputError) as info:
        create(rt, renderer, RELEASE.replace(old, new, 1))
    assert str(info.value).startswith(key), str(info.value)
    with transaction(rt.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Release)) == 0


def test_client_fields_are_validated() -> None:
    """Client input: bad address, CR/LF in the From name and unknown keys are refused, naming the key."""
    with pytest.raises(InputError, match=r"^from_address: "):
        client_fields({**CLIENT, "from_address": "not an address"})
    with pytest.raises(InputError, match=r"^from_name: "):
        client_fields({**CLIENT, "from_name": "Acme\r\nBcc: all@example.com"})
    with pytest.raises(InputError, match=r"^postal_address: required"):
        client_fields({**CLIENT, "postal_address": "  "})
    with pytest.raises(InputError, match=r"^phone: unknown key"):
        client_fields({**CLIENT, "phone": "555"})
    fields = client_fields({**CLIENT, "from_address": "Press@ACME.example.com", "reply_to": None})
    assert fields.from_address == "press@acme.example.com"
    assert fields.reply_to is None


# --------------------------------------------------------------------- content hash


def test_hash_changes_with_every_content_change_and_nothing_else(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """The content hash moves with subject, body, intro, variant, template (choice and source), sender, postal address
    and disclosure, and stays put across re-hashing, an identical re-upload, a schedule change and new contacts."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    base = current_hash(rt, renderer, rid)
    assert current_hash(rt, renderer, rid) == base

    # Not content: identical upload, send time, contacts.
    with transaction(rt.sessions) as session:
        update_release(session, rid, RELEASE, actor="pat", renderer=renderer, now=rt.clock())
        workflow.schedule(session, rid, at=parse_time("2027-01-01T00:00:00Z", "--at"), actor="pat", now=rt.clock())
    csv = tmp_path / "more.csv"
    csv.write_text("email,first_name,beats\ncy@example.org,Cy,foreign-policy\n", "utf-8")
    contacts.import_csv(rt.sessions, csv, list_slug="press", now=rt.clock())
    assert current_hash(rt, renderer, rid) == base

    seen = {base}
    edits = [
        ("Briefing for {{ first_name | default('you') }}", "Briefing, {{ first_name | default('you') }}"),
        ("publishes its", "releases its"),
        ("Dear {{ first_name | default('colleague') }},", "Hello {{ first_name | default('colleague') }},"),
        ("For bookers: studio or remote.", "For bookers: remote only."),
        ('template = "media_advisory"', 'template = "press_release"'),
        ('name = "Dr. Ada Example"', 'name = "Dr. Ada Exemplar"'),
    ]
    for old, new in edits:
        with transaction(rt.sessions) as session:
            update_release(session, rid, RELEASE.replace(old, new, 1), actor="pat", renderer=renderer, now=rt.clock())
        changed = current_hash(rt, renderer, rid)
        assert changed not in seen, (old, new)
        seen.add(changed)
    with transaction(rt.sessions) as session:
        update_release(session, rid, RELEASE, actor="pat", renderer=renderer, now=rt.clock())
    assert current_hash(rt, renderer, rid) == base

    for column, value in [
        ("from_name", "Acme Media Office"),
        ("from_address", "news@acme.example.com"),
        ("reply_to", "other@acme.example.com"),
        ("postal_address", "2 Harbour Road\nSpringfield, ST 00001"),
        ("disclosure", "Distributed by Acme PR for the Examplia Trade Board."),
    ]:
        with transaction(rt.sessions) as session:
            original = getattr(session.scalar(select(Client).where(Client.slug == "acme")), column)
            session.execute(update(Client).where(Client.slug == "acme").values({column: value}))
        changed = current_hash(rt, renderer, rid)
        assert changed not in seen, column
        seen.add(changed)
        with transaction(rt.sessions) as session:
            session.execute(update(Client).where(Client.slug == "acme").values({column: original}))
    assert current_hash(rt, renderer, rid) == base

    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    assert current_hash(rt, Renderer(templates), rid) == base
    (templates / "base.txt").write_text((templates / "base.txt").read_text("utf-8") + "\n", "utf-8")
    assert current_hash(rt, Renderer(templates), rid) not in seen


# ------------------------------------------------------------------------- workflow


def test_submit_approve_records_hash_approval_and_history(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """draft → submitted → approved: the hash is stored at submit, the approval binds it, every move is an event."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    submit(rt, renderer, rid)
    result = approve(rt, renderer, rid, approver="quinn")
    assert result.refused is None and result.approval is not None
    now_hash = current_hash(rt, renderer, rid)
    with transaction(rt.sessions) as session:
        rel = release_store.get_release(session, rid)
        assert rel.status == "approved"
        assert rel.content_hash == result.content_hash == now_hash
        approval = review_store.latest_approval(session, rid)
        assert approval is not None and (approval.approver, approval.content_hash) == ("quinn", rel.content_hash)
        events = [(e.from_status, e.to_status, e.actor) for e in release_store.release_events(session, rid)]
        assert events == [(None, "draft", "pat"), ("draft", "submitted", "pat"), ("submitted", "approved", "quinn")]
        plan = build_send_plan(session, rid, renderer, rt.settings)
        require_approved_plan(session, rid, plan)


def test_approval_by_the_author_is_refused(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """The author cannot approve their own release (any letter case); it stays submitted."""
    seed(rt, tmp_path)
    rid = create(rt, renderer, author="pat")
    submit(rt, renderer, rid)
    with pytest.raises(WorkflowError, match="second person"):
        approve(rt, renderer, rid, approver="PAT")
    with transaction(rt.sessions) as session:
        assert release_store.get_release(session, rid).status == "submitted"
        assert review_store.latest_approval(session, rid) is None


def test_approve_needs_a_submitted_release(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """Approving a draft is a WorkflowError (the state machine has no draft → approved)."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    with pytest.raises(WorkflowError, match="draft release cannot become approved"):
        approve(rt, renderer, rid)


def test_edit_after_approval_returns_to_draft_and_the_plan_is_refused(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """Editing an approved release sends it back to draft (recorded), and require_approved_plan refuses its new plan."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    submit(rt, renderer, rid)
    approve(rt, renderer, rid)
    with transaction(rt.sessions) as session:
        rel = update_release(
            session, rid, RELEASE.replace("today.", "this morning."), actor="pat", renderer=renderer, now=rt.clock()
        )
        assert rel.status == "draft" and rel.content_hash is None
    with transaction(rt.sessions) as session:
        last = release_store.release_events(session, rid)[-1]
        assert (last.from_status, last.to_status, last.actor) == ("approved", "draft", "pat")
        assert last.note is not None and "approval needed again" in last.note
        plan = build_send_plan(session, rid, renderer, rt.settings)
        with pytest.raises(WorkflowError, match="not approved"):
            require_approved_plan(session, rid, plan)
        # Even forced back to approved, the old approval does not match the new content.
        session.execute(update(Release).where(Release.id == rid).values(status="approved"))
        with pytest.raises(WorkflowError, match="changed since quinn approved it"):
            require_approved_plan(session, rid, plan)


def test_template_change_between_submit_and_approve_sends_back_to_draft(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """If a template file changed after submit, approval is refused, the release returns to draft, and that sticks."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    submit(rt, renderer, rid)
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    (templates / "media_advisory.txt").write_text(
        (templates / "media_advisory.txt").read_text("utf-8").replace("MEDIA ADVISORY", "ADVISORY"), "utf-8"
    )
    result = approve(rt, Renderer(templates), rid)
    assert result.approval is None and result.refused is not None and "submit it again" in result.refused
    with transaction(rt.sessions) as session:
        assert release_store.get_release(session, rid).status == "draft"
        assert review_store.latest_approval(session, rid) is None


def test_schedule_and_cancel(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """schedule sets send_at (recorded, status kept), a naive time is refused; cancel is final."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    with pytest.raises(InputError, match=r"^--at: "):
        parse_time("2026-12-02T10:00:00", "--at")
    with transaction(rt.sessions) as session:
        rel = workflow.schedule(
            session, rid, at=parse_time("2026-12-02T10:00:00+01:00", "--at"), actor="pat", now=rt.clock()
        )
        assert rel.send_at is not None and rel.send_at.isoformat() == "2026-12-02T09:00:00+00:00"
    with transaction(rt.sessions) as session:
        workflow.cancel(session, rid, actor="sam", now=rt.clock())
    with transaction(rt.sessions) as session:
        events = [(e.from_status, e.to_status, e.actor) for e in release_store.release_events(session, rid)]
        assert events[-2:] == [("draft", "draft", "pat"), ("draft", "cancelled", "sam")]
        with pytest.raises(WorkflowError):
            workflow.cancel(session, rid, actor="sam", now=rt.clock())
        with pytest.raises(WorkflowError, match="can no longer"):
            update_release(session, rid, RELEASE, actor="pat", renderer=renderer, now=rt.clock())


# ----------------------------------------------------------------- plan and variants


def test_variants_applied_per_segment(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """The send plan compiles one variant per segment: bookers get their own subject and intro, print the release's."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    with transaction(rt.sessions) as session:
        plan = build_send_plan(session, rid, renderer, rt.settings)
        specs = variant_specs(session, rid, rt.settings)
        ann = recipient_for(store.get_contact(session, "ann@daily.example.com"))
    assert plan.content_hash == current_hash(rt, renderer, rid)
    assert [slug for _, slug, _ in specs] == ["foreign-policy-print", "broadcast-bookers"]
    assert plan.segment_order == tuple(sid for sid, _, _ in specs)
    assert (plan.client_slug, plan.sender_address) == ("acme", "press@acme.example.com")
    spec = specs[0][2]
    assert spec.release_key == str(rid)
    assert spec.list_id == "Acme Institute <acme.acme.example.com>"
    assert spec.feedback_id == f"{rid}:acme:mailer"
    assert (spec.embargo_at, spec.embargo_zone) == ("2027-12-01T15:00:00+00:00", "-05:00")
    subjects, texts = [], []
    for sid in plan.segment_order:
        raw = plan.variants[sid].render(
            ann,
            to_addr=ann.email,
            message_id=f"<t{sid}@mail.example.com>",
            unsubscribe_url=f"{BASE_URL}/u/x",
            unsubscribe_mailto=None,
            date=rt.clock(),
        )
        msg = parse(raw)
        subjects.append(msg["Subject"])
        texts.append(str(msg.get_body(("plain",)).get_content()))  # type: ignore[union-attr]
    assert subjects == [
        EMBARGO_PREFIX + "Briefing for Ann",
        EMBARGO_PREFIX + "Booking: harbour expert for Daily Planet",
    ]
    assert "Dear Ann," in texts[0] and "For bookers" not in texts[0]
    assert "For bookers: studio or remote." in texts[1] and "Dear Ann," not in texts[1]


def test_recipient_for_turns_attributes_into_strings(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """recipient_for copies name and outlet and stringifies attribute values."""
    seed(rt, tmp_path)
    with transaction(rt.sessions) as session:
        contact = store.get_contact(session, "ann@daily.example.com")
        contact.attributes = {"desk": "world", "rank": 3, "none": None}
        rcpt = recipient_for(contact)
    assert (rcpt.email, rcpt.first_name, rcpt.last_name, rcpt.outlet) == (
        "ann@daily.example.com",
        "Ann",
        "Lee",
        "Daily Planet",
    )
    assert rcpt.attributes == {"desk": "world", "rank": "3", "none": ""}


def test_send_plan_of_unknown_release_is_not_found(rt: Runtime, renderer: Renderer) -> None:
    """build_send_plan for a release that does not exist raises NotFoundError."""
    with transaction(rt.sessions) as session, pytest.raises(NotFoundError):
        build_send_plan(session, 999, renderer, rt.settings)


# ------------------------------------------------------------------ previews, proofs


def test_preview_eml_parses_back_with_the_expected_headers(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """The eml preview for the segment's first contact parses back with the headers of a real message."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    with transaction(rt.sessions) as session:
        preview = preview_release(
            session,
            rid,
            segment_slug="broadcast-bookers",
            contact_email=None,
            renderer=renderer,
            settings=rt.settings,
            now=rt.clock(),
        )
    assert preview.eml is not None and preview.to_addr == "bob@tv.example.com"
    msg = parse(preview.eml)
    assert msg["Subject"] == EMBARGO_PREFIX + "Booking: harbour expert for Channel Nine"
    assert msg["From"] == "Acme Press Office <press@acme.example.com>"
    assert msg["To"] == "Bob Ray <bob@tv.example.com>"
    assert msg["List-Unsubscribe"].startswith(f"<{BASE_URL}/u/")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Feedback-ID"] == f"{rid}:acme:mailer"
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


def test_preview_for_a_named_contact_and_for_an_empty_segment(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """--contact picks that contact; a segment with nobody in it renders for a placeholder."""
    seed(rt, tmp_path)
    rid = create(rt, renderer, RELEASE.replace('"broadcast-bookers"]', '"broadcast-bookers", "nobody"]'))
    with transaction(rt.sessions) as session:
        named = preview_release(
            session,
            rid,
            segment_slug="foreign-policy-print",
            contact_email="Bob@TV.example.com",
            renderer=renderer,
            settings=rt.settings,
            now=rt.clock(),
        )
        empty = preview_release(
            session,
            rid,
            segment_slug="nobody",
            contact_email=None,
            renderer=renderer,
            settings=rt.settings,
            now=rt.clock(),
        )
        with pytest.raises(InputError, match=r"^--segment: "):
            preview_release(
                session,
                rid,
                segment_slug="ghosts",
                contact_email=None,
                renderer=renderer,
                settings=rt.settings,
                now=rt.clock(),
            )
    assert named.parts.subject == EMBARGO_PREFIX + "Briefing for Bob"
    assert empty.parts.subject == EMBARGO_PREFIX + "Briefing for you"
    assert empty.to_addr == "journalist@example.com"


def send_proof_through_relay(rt_sessions: sessionmaker[Session], release_id: int, **kwargs: Any) -> ProofResult:
    """Send a proof as the CLI does: a transport of its own, on a loop of its own."""

    async def send() -> ProofResult:
        async with proof_transport(kwargs["settings"]) as transport:
            return await send_proof(rt_sessions, release_id, transport=transport, **kwargs)

    return asyncio.run(send())


def test_proof_reaches_a_real_smtp_server_and_is_recorded_not_delivered(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """A proof goes through SMTP with "[PROOF]" and X-Mailer-Proof, is recorded in proofs, and creates no delivery."""
    from tests.support.faultsmtp import running_fault_server

    seed(rt, tmp_path)
    rid = create(rt, renderer)
    with running_fault_server() as server:
        settings = rt.settings.model_copy(update={"smtp": SmtpSettings(host=server.host, port=server.port)})
        result = send_proof_through_relay(
            rt.sessions,
            rid,
            to_address="me@agency.example.com",
            segment_slug="broadcast-bookers",
            renderer=renderer,
            settings=settings,
            now=rt.clock(),
        )
        assert server.wait_for_accepted(1, timeout=5)
        accepted, raw = server.accepted[0], server.raw[0]
    assert result.sent and result.segment_slug == "broadcast-bookers"
    assert accepted.recipient == "me@agency.example.com"
    # Tokenized at the client's own return-path domain: the bounce receiver accepts it.
    assert re.fullmatch(r"bounces\+p\d+-[0-9a-f]{16}@bounces\.acme\.example\.com", accepted.sender)
    msg = parse(raw)
    assert msg["Subject"] == EMBARGO_PREFIX + "[PROOF] Booking: harbour expert for Channel Nine"
    assert msg["X-Mailer-Proof"] == "yes"
    assert msg["To"] == "Bob Ray <me@agency.example.com>"
    with transaction(rt.sessions) as session:
        proofs = list(session.scalars(select(Proof)))
        assert len(proofs) == 1
        assert (proofs[0].release_id, proofs[0].to_address) == (rid, "me@agency.example.com")
        assert proofs[0].message_id == accepted.message_id
        assert proofs[0].content_hash == release_content_hash(session, rid, renderer, rt.settings)
        assert proofs[0].result.startswith("sent: 250")
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_proof_with_smtp_unreachable_is_a_transport_error(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """With nothing listening, a proof raises TransportError (one line) and records nothing."""
    from mailer.smtp.server import bind_listener

    seed(rt, tmp_path)
    rid = create(rt, renderer)
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # a port that was just free: nothing listens there
    settings = rt.settings.model_copy(update={"smtp": SmtpSettings(port=port, connect_timeout=2)})
    with pytest.raises(TransportError) as info:
        send_proof_through_relay(
            rt.sessions,
            rid,
            to_address="me@agency.example.com",
            segment_slug=None,
            renderer=renderer,
            settings=settings,
            now=rt.clock(),
        )
    assert "\n" not in str(info.value)
    with transaction(rt.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Proof)) == 0


# ---------------------------------------------------------------------------- demo


def test_demo_client_and_release_create_and_pass_the_checks(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """The demo client and media advisory load, target the demo segments with a bookers variant, and submit cleanly."""
    seed(rt, tmp_path)
    with transaction(rt.sessions) as session:
        fields = client_fields(load_client_file(CLIENT_FILE))
        create_client(session, fields, now=rt.clock())
    text = read_text_file(RELEASE_FILE)
    parsed = parse_release(text)
    assert parsed.segments == ("foreign-policy-print", "broadcast-bookers")
    assert set(parsed.variants) == {"broadcast-bookers"}
    assert parsed.speakers and parsed.questions and parsed.booking_contact
    rid = create(rt, renderer, text, author="publicist")
    submit(rt, renderer, rid, actor="publicist")
    result = approve(rt, renderer, rid, approver="approver")
    assert result.approval is not None
    with transaction(rt.sessions) as session:
        print_preview = preview_release(
            session,
            rid,
            segment_slug="foreign-policy-print",
            contact_email=None,
            renderer=renderer,
            settings=rt.settings,
            now=rt.clock(),
        )
        bookers = preview_release(
            session,
            rid,
            segment_slug="broadcast-bookers",
            contact_email=None,
            renderer=renderer,
            settings=rt.settings,
            now=rt.clock(),
        )
    assert print_preview.parts.subject != bookers.parts.subject
    assert "Department of Justice" in print_preview.parts.text and "Department of Justice" in bookers.parts.html


def test_update_of_a_draft_records_an_edit(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """Editing a draft keeps it a draft and records a draft → draft "edited" event; segments are replaced."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    text = RELEASE.replace(
        'segments = ["foreign-policy-print", "broadcast-bookers"]', 'segments = ["broadcast-bookers"]'
    )
    with transaction(rt.sessions) as session:
        update_release(session, rid, text, actor="pat", renderer=renderer, now=rt.clock())
    with transaction(rt.sessions) as session:
        rows = session.scalars(select(ReleaseSegment).where(ReleaseSegment.release_id == rid)).all()
        assert [(r.position, r.subject is not None) for r in rows] == [(0, True)]
        last = session.scalars(select(ReleaseEvent).order_by(ReleaseEvent.id.desc())).first()
        assert last is not None and (last.from_status, last.to_status, last.note) == ("draft", "draft", "edited")
        assert session.scalar(select(func.count()).select_from(Contact)) == 2
