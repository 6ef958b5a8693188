"""The release editor's form: its fields to the front matter of a release file and back.

The editor does not validate: it turns what was typed into a release file
(:func:`mailer.releases.release_text.render_file`), and the CLI's parser and authoring
checks decide (one code path). Field names::

    title client subject template preheader dateline intro body about topics embargo
    questions_heading questions (one per line) disclosure_placement booking_contact
    booking_name booking_email booking_phone booking_note segments (repeated)
    g{i}_heading g{i}_s{j}_name g{i}_s{j}_title g{i}_s{j}_bio    speaker groups
    r{i}_title r{i}_url                                          related articles
    v__{segment}__subject|intro|template|body                    a segment's variant
    send_at not_after                                            kept as they were

Group 0 with the heading "Available for interview" is the release's ``speakers``; every
other group is one of its ``speaker_groups``. Blank slots are ignored; the form always
offers one more group, two more speakers per group and two more related links.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_HEADING", "blank_form", "fields_to_form", "form_to_fields"]

DEFAULT_HEADING = "Available for interview"
_SCALARS = (
    "title",
    "client",
    "subject",
    "template",
    "preheader",
    "dateline",
    "intro",
    "about",
    "embargo",
    "questions_heading",
    "booking_contact",
    "send_at",
    "not_after",
)
_VARIANT = re.compile(r"v__([a-z0-9][a-z0-9_\-]{0,63})__(subject|intro|template|body)")


def _one(form: Mapping[str, Sequence[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0].replace("\r\n", "\n").strip()


def form_to_fields(form: Mapping[str, Sequence[str]]) -> tuple[dict[str, Any], str]:
    """(front matter fields, body) from the posted form (name → values)."""
    fields: dict[str, Any] = {name: _one(form, name) or None for name in _SCALARS}
    fields["template"] = fields["template"] or "media_advisory"
    fields["segments"] = [s for s in (form.get("segments") or []) if s]
    fields["topics"] = [t.strip() for t in _one(form, "topics").split(",") if t.strip()]
    fields["questions"] = [q.strip() for q in _one(form, "questions").split("\n") if q.strip()]
    placement = _one(form, "disclosure_placement")
    fields["disclosure_placement"] = placement if placement and placement != "footer" else None
    fields["booking"] = {k: _one(form, f"booking_{k}") for k in ("name", "email", "phone", "note")}
    groups: list[dict[str, Any]] = []
    for i in range(50):
        if f"g{i}_heading" not in form:
            break
        people = []
        for j in range(100):
            if f"g{i}_s{j}_name" not in form:
                break
            person = {k: _one(form, f"g{i}_s{j}_{k}") for k in ("name", "title", "bio")}
            if any(person.values()):
                people.append(person)
        if people:
            groups.append({"heading": _one(form, f"g{i}_heading") or DEFAULT_HEADING, "speakers": people})
    if groups and groups[0]["heading"] == DEFAULT_HEADING:
        fields["speakers"] = groups.pop(0)["speakers"]
    fields["speaker_groups"] = groups
    related = []
    for i in range(100):
        if f"r{i}_url" not in form:
            break
        link = {"title": _one(form, f"r{i}_title"), "url": _one(form, f"r{i}_url")}
        if any(link.values()):
            related.append(link)
    fields["related"] = related
    variants: dict[str, dict[str, str]] = {}
    for name in form:
        m = _VARIANT.fullmatch(name)
        if m is not None and m.group(1) in fields["segments"] and _one(form, name):
            variants.setdefault(m.group(1), {})[m.group(2)] = _one(form, name)
    fields["variants"] = variants
    return fields, _one(form, "body")


def fields_to_form(fields: Mapping[str, Any], body: str) -> dict[str, Any]:
    """What the editor template shows for ``fields`` and ``body``, with blank slots added."""
    form: dict[str, Any] = {name: _text(fields.get(name)) for name in _SCALARS}
    form["template"] = form["template"] or "media_advisory"
    form["body"] = body
    form["segments"] = list(fields.get("segments") or [])
    form["topics"] = ", ".join(fields.get("topics") or [])
    form["questions"] = "\n".join(fields.get("questions") or [])
    form["disclosure_placement"] = fields.get("disclosure_placement") or "footer"
    booking = fields.get("booking") or {}
    for key in ("name", "email", "phone", "note"):
        form[f"booking_{key}"] = booking.get(key) or ""
    blank = {"name": "", "title": "", "bio": ""}
    groups = [{"heading": DEFAULT_HEADING, "speakers": list(fields.get("speakers") or [])}]
    groups += [dict(g) for g in fields.get("speaker_groups") or []]
    groups.append({"heading": "Other speakers available", "speakers": []})
    form["groups"] = [
        {"heading": g["heading"], "speakers": [{**blank, **s} for s in g["speakers"]] + [blank, blank]} for g in groups
    ]
    form["related"] = [dict(r) for r in fields.get("related") or []] + [{"title": "", "url": ""}] * 2
    form["variants"] = {
        slug: {k: (v or "") for k, v in variant.items()} for slug, variant in (fields.get("variants") or {}).items()
    }
    return form


def blank_form() -> dict[str, Any]:
    """The form of a new release."""
    return fields_to_form({}, "")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
