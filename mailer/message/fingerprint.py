"""The fingerprint of what a variant's bytes depend on (:func:`fingerprint`): an approval
holds it, and a change to the spec, the templates or the renderer invalidates the approval.

Library versions are not part of it (issue 21: an upgrade of nh3 or Jinja2 between
approval and send time silently dropped approved releases to draft). Whether an upgrade
changed the *bytes* is asked of the bytes themselves: an approval also keeps a digest of
sample renders (:func:`mailer.releases.plan.render_digest`), compared before the send."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from mailer.message.spec import VariantSpec
from mailer.message.templates import Renderer

#: Bump when a change in :mod:`mailer.message` alters the bytes produced from the same spec
#: and templates; it is part of :func:`fingerprint`, so approvals taken before the change are
#: invalidated.
#: 2: the text part rendered from Markdown and wrapped (issue 14); single line breaks in
#: Markdown kept (issue 21).
RENDER_VERSION = "2"

#: Spec fields added after approvals were first taken: left out of the fingerprint while
#: they hold their default, so releases that do not use them keep their hash.
_LATER_FIELDS = frozenset(
    {"preheader", "speaker_groups", "questions_heading", "related", "booking", "disclosure_placement"}
)


def _spec_payload(spec: VariantSpec) -> dict[str, object]:
    defaults = {f.name: f.default for f in dataclasses.fields(spec) if f.name in _LATER_FIELDS}
    return {k: v for k, v in dataclasses.asdict(spec).items() if not (k in defaults and v == defaults[k])}


def fingerprint(spec: VariantSpec, renderer: Renderer) -> str:
    """SHA-256 hex of the spec, the sources of the templates it uses and :data:`RENDER_VERSION`.

    Canonical JSON (sorted keys, no whitespace) over every field of ``spec`` (later
    fields at their default left out), the text of ``{template}.html``/``.txt`` and every
    file they extend or include. Same inputs give the same hash; a change to any of them
    gives a different one. Raises TemplateError if a template is missing or does not parse.
    """
    spec_fields = _spec_payload(spec)
    # The web base of the kit and "View online" links is where this install is reached,
    # like the unsubscribe link's: a deployment setting, not content the approver judged.
    spec_fields.pop("site_url", None)
    payload: dict[str, object] = {
        "render_version": RENDER_VERSION,
        "spec": spec_fields,
        "templates": {name: renderer.sources[name] for name in renderer.referenced_templates(spec.template)},
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
