"""Pre-send checks: what submit refuses, each failure named, and what every message must carry."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from markupsafe import escape

from mailer.config import DkimSettings, Settings, WebSettings
from mailer.domain.errors import WorkflowError
from mailer.message import Recipient, Renderer, Sender, VariantSpec
from mailer.releases.approval import submit_release
from mailer.releases.clients import client_changes, update_client
from mailer.releases.compliance import BLANK_RECIPIENT, check_release, sample_unsubscribe_url
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.db import transaction
from tests.support.constants import REPO
from tests.support.releases import CLIENT, RELEASE, create, seed, submit

BASE_URL = "https://news.example.com"
ANN = Recipient("ann@daily.example.com", "Ann", "Lee", "Daily Planet")

SPEC = VariantSpec(
    release_key="7",
    template="press_release",
    subject="News for {{ first_name | default('you') }}",
    title="Acme results",
    dateline="SPRINGFIELD, March 3",
    intro=None,
    body_markdown="See [the report](https://acme.example.com/r/7).",
    sender=Sender(
        name="Acme Press Office",
        address="press@acme.example.com",
        reply_to=None,
        postal_address="1 Harbour Road\nSpringfield, ST 00001",
        disclosure="Distributed by Acme PR on behalf of the Republic of Examplia.",
    ),
    list_id="Acme <acme.mail.example.com>",
    feedback_id="7:acme:mailer",
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with an https unsubscribe base."""
    return settings.model_copy(update={"web": WebSettings(base_url=BASE_URL)})


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


def check(renderer: Renderer, settings: Settings, *specs: VariantSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    report = check_release([(f"seg{i}", s, ANN) for i, s in enumerate(specs, 1)], renderer, settings)
    return report.failures, report.warnings


def test_a_clean_release_passes(renderer: Renderer, settings: Settings) -> None:
    """A spec with https links, subject, postal address and disclosure has no failures and no warnings."""
    assert check(renderer, settings, SPEC) == ((), ())


def test_both_parts_carry_unsubscribe_postal_address_and_disclosure(renderer: Renderer, settings: Settings) -> None:
    """The rendered text and HTML parts each contain the unsubscribe link, every postal line and the disclosure."""
    url = sample_unsubscribe_url(settings)
    parts = renderer.compile(SPEC).render_parts(ANN, to_addr=ANN.email, unsubscribe_url=url)
    for line in ("1 Harbour Road", "Springfield, ST 00001", SPEC.sender.disclosure or ""):
        assert line in parts.text
        assert str(escape(line)) in parts.html
    assert url in parts.text and f'href="{url}"' in parts.html


def test_http_link_is_a_named_failure(renderer: Renderer, settings: Settings) -> None:
    """A plain http link in the body fails, naming the link and the segment."""
    spec = dataclasses.replace(SPEC, body_markdown="See [it](http://acme.example.com/r/7) and http://bare.example.com.")
    failures, _ = check(renderer, settings, spec)
    assert "segment seg1: link 'http://acme.example.com/r/7' is not https" in failures
    assert any("http://bare.example.com" in f for f in failures)


def test_missing_postal_address_and_empty_subject_are_named(renderer: Renderer, settings: Settings) -> None:
    """No postal address and an empty subject are each reported, together."""
    spec = dataclasses.replace(SPEC, subject=" ", sender=dataclasses.replace(SPEC.sender, postal_address=""))
    failures, _ = check(renderer, settings, spec)
    assert "segment seg1: subject is empty" in failures
    assert "segment seg1: client has no postal address" in failures


def test_template_error_is_a_named_failure_and_other_segments_still_checked(
    renderer: Renderer, settings: Settings
) -> None:
    """A body with an undefined name fails to compile for its segment; the next segment is still checked."""
    broken = dataclasses.replace(SPEC, body_markdown="Hello {{ frist_name }}")
    bad_link = dataclasses.replace(SPEC, body_markdown="[x](http://x.example.com)")
    failures, _ = check(renderer, settings, broken, bad_link)
    assert failures[0].startswith("segment seg1: does not compile: body, line 1: 'frist_name' is undefined")
    assert failures[1] == "segment seg2: link 'http://x.example.com' is not https"


def test_footer_without_disclosure_or_unsubscribe_is_caught(
    renderer: Renderer, settings: Settings, tmp_path: Path
) -> None:
    """A base template that drops the disclosure and unsubscribe link from the text part fails for that part only."""
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    base = (templates / "base.txt").read_text("utf-8")
    base = base.replace("{{ sender.disclosure }}", "").replace("Unsubscribe: {{ unsubscribe_url }}", "")
    (templates / "base.txt").write_text(base, "utf-8")
    failures, _ = check(Renderer(templates), settings, SPEC)
    assert failures == (
        "segment seg1: the text part has no unsubscribe link",
        "segment seg1: the text part lacks the disclosure statement",
    )


def test_http_base_url_fails_the_unsubscribe_check(renderer: Renderer, settings: Settings) -> None:
    """An http web.base_url on a public host cannot give one-click unsubscribe links: named as a failure."""
    plain = settings.model_copy(update={"web": WebSettings(base_url="http://news.example.com")})
    failures, _ = check(renderer, plain, SPEC)
    assert len(failures) == 1 and failures[0].startswith("web.base_url 'http://news.example.com' is not https")


def test_local_http_base_url_is_a_warning(renderer: Renderer, settings: Settings) -> None:
    """A local development server (the demo) may use http: a warning, not a failure."""
    local = settings.model_copy(update={"web": WebSettings(base_url="http://127.0.0.1:8000")})
    failures, warnings = check(renderer, local, SPEC)
    assert failures == ()
    assert any("local development server" in w for w in warnings)


def test_templates_must_cope_with_a_recipient_without_fields(renderer: Renderer, settings: Settings) -> None:
    """A subject that only works when the recipient has a first name fails for the blank recipient."""
    spec = dataclasses.replace(SPEC, subject="{{ first_name }}")
    failures, _ = check(renderer, settings, spec)
    assert failures == (f"segment seg1: subject renders empty for {BLANK_RECIPIENT.email}",)


def test_submit_lists_every_failure_and_stays_draft(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """submit with an http link and an empty variant subject raises one WorkflowError naming both; the release stays draft."""
    seed(rt, tmp_path, client={**CLIENT})
    text = RELEASE.replace("https://acme.example.com/r/1", "http://acme.example.com/r/1").replace(
        "subject = \"Booking: harbour expert for {{ outlet | default('your show') }}\"", 'subject = "{{ outlet }}"'
    )
    rid = create(rt, renderer, text)
    with pytest.raises(WorkflowError) as info:
        submit(rt, renderer, rid)
    message = str(info.value)
    assert message.startswith(f"release {rid} fails 2 checks: (1) segment foreign-policy-print: link")
    assert "'http://acme.example.com/r/1' is not https" in message
    assert "(2) segment broadcast-bookers: subject renders empty for journalist@example.com" in message
    assert "\n" not in message
    with transaction(rt.sessions) as session:
        rel = release_store.get_release(session, rid)
        assert (rel.status, rel.content_hash) == ("draft", None)


def test_submit_fails_for_a_client_aligned_by_neither_dkim_nor_return_path(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """A client whose return path is another firm's domain, with no key of its own, fails submit naming the fixes."""
    seed(rt, tmp_path, client={**CLIENT, "bounce_domain": "bounces.agency.example.net"})
    rid = create(rt, renderer)
    settings = rt.settings.model_copy(update={"dkim": DkimSettings(domain="agency.example.net")})
    with pytest.raises(WorkflowError) as info, transaction(rt.sessions) as session:
        submit_release(session, rid, actor="pat", renderer=renderer, settings=settings, now=rt.clock())
    message = str(info.value)
    assert "the From domain acme.example.com is aligned with neither" in message
    assert "return-path domain bounces.agency.example.net" in message
    assert "mailer clients dkim-key acme" in message and "--alignment-override" in message
    assert "\n" not in message
    with transaction(rt.sessions) as session:
        assert release_store.get_release(session, rid).status == "draft"


def test_recorded_alignment_override_lets_submit_pass_with_a_warning(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """With an override recorded on the client (the relay signs), submit passes and its note names the override."""
    seed(rt, tmp_path, client={**CLIENT, "bounce_domain": "bounces.agency.example.net"})
    rid = create(rt, renderer)
    with transaction(rt.sessions) as session:
        client = release_store.get_client(session, "acme")
        changes = client_changes(
            client, {}, alignment_override="the relay signs with d=acme.example.com", actor="lee", now=rt.clock()
        )
        update_client(session, client, changes)
    with transaction(rt.sessions) as session:
        report = submit_release(session, rid, actor="pat", renderer=renderer, settings=rt.settings, now=rt.clock())
    assert report.ok and len(report.warnings) == 1
    with transaction(rt.sessions) as session:
        event = release_store.release_events(session, rid)[-1]
        assert event.to_status == "submitted"
        assert event.note is not None and "waived by lee: the relay signs with d=acme.example.com" in event.note


def test_default_identity_is_aligned_and_submits_without_warning(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """A client with no identity settings returns to bounces.<From domain>: aligned, no alignment warning."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    with transaction(rt.sessions) as session:
        report = submit_release(session, rid, actor="pat", renderer=renderer, settings=rt.settings, now=rt.clock())
    assert report.ok and not any("align" in w for w in report.warnings)
