"""Skeletons (issue 20, :mod:`mailer.message.trace`): a template rendered once per shape
gives, for every message, exactly what Jinja renders in full; what cannot be traced is
rendered in full."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.domain.errors import TemplateError
from mailer.message import Recipient, Renderer, RenderJob, Sender, Speaker, VariantSpec, trace
from mailer.message.mime import CompiledVariant
from mailer.message.skeleton import MAX_SHAPES

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
DATE = datetime(2026, 11, 30, 14, 5, 9, tzinfo=UTC)
SENDER = Sender(
    name="Acme Institute Press Office",
    address="press@acme.example.com",
    reply_to="desk@acme.example.com",
    postal_address="1 Harbour Road\nSpringfield, ST 00001",
    disclosure="Distributed by Acme PR on behalf of the Acme Institute.",
)

RECIPIENTS = [
    Recipient("ann@example.com", "Ann", "Lee", "Daily Planet", {"beat": "science"}),
    Recipient("bo@example.org", "", "", "", {}),
    Recipient("chloe@example.net", "Chloé <b>&amp;", 'O\'Brien "x"', "The <Times>", {"beat": "<script>"}),
    Recipient("d@example.com", "   ", "Dmitri", "Radio", {"beat": ""}),
    Recipient("e@example.com", "E" * 90, "Long", "Outlet " * 20, {"beat": "politics", "desk": "night"}),
    Recipient("f@example.org", ".dot", "=eq", "trailing   ", {"x": "1"}, timezone="Europe/Paris"),
]


def spec(body: str, *, subject: str = "News for {{ first_name | default('you') }}", **extra: object) -> VariantSpec:
    fields: dict[str, object] = {
        "template": "press_release",
        "subject": subject,
        "body_markdown": body,
        "sender": SENDER,
        "list_id": "Acme <acme.lists.example.com>",
        "feedback_id": "1:acme:mailer",
        "release_key": "7",
        "title": "Acme results",
        "dateline": "SPRINGFIELD, Nov. 30, 2026",
        "intro": "Dear {{ first_name | default('colleague') }}.",
        **extra,
    }
    return VariantSpec(**fields)  # type: ignore[arg-type]


def job(rcpt: Recipient, i: int) -> RenderJob:
    return RenderJob(
        rcpt,
        rcpt.email,
        f"https://news.example.com/u/{i:06d}",
        f"<m{i}.7@acme.example.com>",
        unsubscribe_mailto=f"mailto:u+{i}@acme.example.com",
        date=DATE,
        kit_token=f"kit{i}",
        release_token="rel7",
    )


def full(variant: CompiledVariant) -> CompiledVariant:
    """The same variant without skeletons: every template rendered in full by Jinja."""
    plain = Renderer(TEMPLATES).compile_here(variant.spec)
    plain._shapes = {}
    return plain


def both(variant: CompiledVariant, rcpts: list[Recipient]) -> None:
    """Every recipient's message bytes and parts equal the full render's."""
    reference = full(variant)
    for i, rcpt in enumerate(rcpts):
        outcomes = []
        for v in (variant, reference):
            try:
                outcomes.append(v.run(job(rcpt, i)))
            except TemplateError as exc:
                outcomes.append(str(exc))  # type: ignore[arg-type]
        assert outcomes[0] == outcomes[1], rcpt


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """VERIFY off, so that the skeletons alone give the output."""
    monkeypatch.setattr(trace, "VERIFY", False)


def test_the_suite_renders_every_skeleton_in_full_too() -> None:
    """The test suite (and every process it starts) compares each skeleton with Jinja."""
    assert trace.VERIFY
    assert os.environ["MAILER_RENDER_VERIFY"] == "1"


def test_shipped_templates_render_from_one_or_two_shapes(quiet: None) -> None:
    """Both shipped layouts and the author's parts are traced once per shape; Jinja is not run per message."""
    renderer = Renderer(TEMPLATES)
    original = CompiledVariant._full
    for template in ("press_release", "media_advisory"):
        variant = renderer.compile_here(
            spec(
                "Hello {{ first_name | default('there') }} at {{ outlet }}.\n\nBeat: {{ attributes.beat | default('-') }}",
                template=template,
                speakers=(Speaker("Dr. Jane Roe", "Chief Scientist", "Bio."),),
                questions=("What changed?",),
            )
        )
        assert len(variant._shapes) == 7  # subject, body x2, intro x2, layouts x2
        calls = 0

        def counting(self: CompiledVariant, template: object, ctx: dict[str, object], original: Any = original) -> str:
            nonlocal calls
            calls += 1
            return original(self, template, ctx)  # type: ignore[no-any-return]

        CompiledVariant._full = counting  # type: ignore[method-assign]
        try:
            both(variant, RECIPIENTS * 3)
        finally:
            CompiledVariant._full = original  # type: ignore[method-assign]
        # `both` renders each recipient twice: the traced variant never ran Jinja in full,
        # the reference (no skeletons) 7 templates a message
        assert calls == 7 * len(RECIPIENTS) * 3
        for shapes in variant._shapes.values():
            assert not shapes.failed
            assert 1 <= len(shapes.shapes) <= 2


TRICKY_BODIES = [
    "",  # nothing at all: an empty skeleton
    "{% if first_name %}{{ first_name }}{% endif %}",  # empty for some: a shape with no text
    # control flow on recipient values: one shape each way
    "{% if first_name %}Hi {{ first_name }}{% else %}Hello{% endif %}, {{ outlet | default('newsroom') }}",
    "{% if attributes.beat is defined %}Beat: {{ attributes.beat | upper }}{% endif %} {{ email }}",
    "{% if first_name is none %}none{% endif %}{{ first_name is string }} {{ first_name | length }}",
    "{% for c in last_name %}[{{ c }}]{% endfor %} {{ last_name[0] if last_name else '' }}",
    "{% if 'e' in outlet %}e!{% endif %}{% if outlet == 'Radio' %}radio{% endif %} {{ outlet | trim | title }}",
    "{{ first_name | default('x', true) }} {{ first_name | default('x') }} {{ first_name | e }}",
    "{{ attributes.beat }}",  # missing for some: the same error as the full render
    "{{ unsubscribe_url }} {{ to_addr }} {{ subject }} {{ embargo }} {% if embargo %}E{% endif %}",
    "{% for k in attributes %}{{ k }}={{ attributes[k] }};{% endfor %}",
    "{{ first_name | replace('A', '&') }} {{ [first_name, 'x'] | first }} {{ (first_name ~ '') if false else 'k' }}",
]


@pytest.mark.parametrize("body", TRICKY_BODIES)
def test_tricky_bodies_equal_the_full_render(quiet: None, body: str) -> None:
    """Author bodies that branch, loop, test and filter on recipient values give Jinja's bytes (or its error)."""
    variant = Renderer(TEMPLATES).compile_here(spec(body, embargo_at="2026-12-01T09:00:00", embargo_zone="UTC"))
    both(variant, RECIPIENTS * 2)


UNTRACEABLE_STATIC = [
    "{% set greeting %}Hi {{ first_name }}{% endset %}{{ greeting | upper }}",
    "{% filter upper %}{{ first_name }}{% endfilter %}",
    "{% macro m() %}{{ first_name }}{% endmacro %}{{ m() | length }}",
]
UNTRACEABLE_AT_RENDER = [
    "{{ first_name ~ '!' }}",
    "{{ first_name.upper() }}",
    "{{ [first_name, last_name] | join(' ') }}",
    "{{ first_name is sameas(last_name) }}",
    "{{ {first_name: 1} }}",
    "{{ first_name * 2 }}",
    "{{ '%s' ~ first_name }}",
]


@pytest.mark.parametrize("body", UNTRACEABLE_STATIC + UNTRACEABLE_AT_RENDER)
def test_untraceable_bodies_are_rendered_in_full(quiet: None, body: str) -> None:
    """What a skeleton cannot follow (captured output, ~, calls, keys) is rendered in full, with Jinja's bytes."""
    variant = Renderer(TEMPLATES).compile_here(spec(body))
    both(variant, RECIPIENTS)
    body_templates = [t for t in variant._shapes if t.name == "body.html"]
    if body in UNTRACEABLE_STATIC:
        assert body_templates == []  # refused before any render
    else:
        assert [variant._shapes[t].failed for t in body_templates] == [True]


def test_shapes_are_capped(quiet: None) -> None:
    """A guard on each recipient's own name makes a shape per name: after MAX_SHAPES the rest render in full, correctly."""
    variant = Renderer(TEMPLATES).compile_here(spec("{% if first_name == 'N3' %}three{% endif %}{{ first_name }}"))
    rcpts = [Recipient(f"n{i}@example.com", f"N{i}", "", "", {}) for i in range(MAX_SHAPES * 3)]
    both(variant, rcpts)
    # 'N3' or not is one question: two shapes, whatever the names
    body = next(s for t, s in variant._shapes.items() if t.name == "body.html")
    assert len(body.shapes) == 2
    per_name = Renderer(TEMPLATES).compile_here(spec("{% for c in first_name %}.{% endfor %}{{ first_name }}"))
    rcpts = [Recipient(f"n{i}@example.com", "x" * (i + 1), "", "", {}) for i in range(MAX_SHAPES * 2)]
    both(per_name, rcpts)
    body = next(s for t, s in per_name._shapes.items() if t.name == "body.html")
    assert len(body.shapes) == MAX_SHAPES


def test_verify_catches_a_wrong_skeleton() -> None:
    """With VERIFY on, a skeleton whose text differs from Jinja's raises: the suite's check can fail."""
    variant = Renderer(TEMPLATES).compile_here(spec("Hello {{ first_name }}"))
    variant.run(job(RECIPIENTS[0], 0))
    body = next(s for t, s in variant._shapes.items() if t.name == "body.txt")
    body.shapes[0].fill = lambda ctx: "Goodbye"
    with pytest.raises(AssertionError, match="skeleton"):
        variant.run(job(RECIPIENTS[0], 1))


NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(NAMES, NAMES, NAMES, st.dictionaries(st.sampled_from(["beat", "desk"]), NAMES)), max_size=6))
def test_any_recipients_equal_the_full_render(people: list[tuple[str, str, str, dict[str, str]]]) -> None:
    """Arbitrary names, outlets and attributes through branching author text and the shipped layout: Jinja's bytes."""
    variant = Renderer(TEMPLATES).compile_here(
        spec(
            "{% if first_name %}Dear {{ first_name }}{% else %}Hello{% endif %} ({{ outlet | default('-') }})\n\n"
            "{{ attributes.beat | default('general') | title }} {% if attributes.desk is defined %}desk{% endif %}",
            subject="{{ outlet | default('News') }}: {{ last_name }}",
        )
    )
    rcpts = [
        Recipient(f"p{i}@example.com", first.replace("\n", " "), last.replace("\n", " "), outlet, attrs)
        for i, (first, last, outlet, attrs) in enumerate(people)
    ]
    both(variant, rcpts)


def test_what_the_variant_owns_is_the_same_in_every_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """The names a skeleton bakes in (VARIANT_OWN) hold the very same values in every message's contexts; every other name is traced."""
    variant = Renderer(TEMPLATES).compile_here(spec("Hi {{ first_name }}", embargo_at="2026-12-01T09:00:00"))
    seen: list[dict[str, object]] = []
    run = CompiledVariant._run

    def capture(self: CompiledVariant, template: Any, ctx: dict[str, Any]) -> str:
        seen.append(dict(ctx))
        return run(self, template, ctx)

    monkeypatch.setattr(CompiledVariant, "_run", capture)
    for i, rcpt in enumerate(RECIPIENTS):
        variant.run(job(rcpt, i))
    assert seen[0].keys() >= trace.VARIANT_OWN
    for ctx in seen[1:]:
        for name in trace.VARIANT_OWN:
            assert ctx[name] is seen[0][name], name
    varying = {name for name in seen[0] if any(ctx.get(name) != seen[0][name] for ctx in seen)}
    assert varying and not varying & trace.VARIANT_OWN
