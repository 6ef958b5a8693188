"""The fingerprint of what a variant's bytes depend on (:func:`fingerprint`): an approval
holds it, and a change to the spec, the templates or the renderer invalidates the approval."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib.metadata import PackageNotFoundError, version

from mailer.message.spec import VariantSpec
from mailer.message.templates import Renderer

#: Bump when a change in :mod:`mailer.message` alters the bytes produced from the same spec
#: and templates; it is part of :func:`fingerprint`, so approvals taken before the change are
#: invalidated.
RENDER_VERSION = "1"

_VERSIONED = ("jinja2", "markdown-it-py", "nh3", "css-inline")
_library_versions: dict[str, str] = {}


def _versions() -> dict[str, str]:
    if not _library_versions:
        for dist in _VERSIONED:
            try:
                _library_versions[dist] = version(dist)
            except PackageNotFoundError:
                _library_versions[dist] = "?"
    return _library_versions


def fingerprint(spec: VariantSpec, renderer: Renderer) -> str:
    """SHA-256 hex of the spec, the sources of the templates it uses and the renderer.

    Canonical JSON (sorted keys, no whitespace) over every field of ``spec`` but
    ``site_url`` (where this install is reached, like the unsubscribe links), the text
    of ``{template}.html``/``.txt`` and every file they extend or include, plus
    :data:`RENDER_VERSION` and the versions of the libraries that shape the bytes. Same
    inputs give the same hash; a change to any of them gives a different one.
    Raises TemplateError if a template is missing or does not parse.
    """
    fields = dataclasses.asdict(spec)
    # The web base of the kit and "View online" links is where this install is reached,
    # like the unsubscribe link's: a deployment setting, not content the approver judged.
    fields.pop("site_url", None)
    payload = {
        "render_version": RENDER_VERSION,
        "libraries": _versions(),
        "spec": fields,
        "templates": {name: renderer.sources[name] for name in renderer.referenced_templates(spec.template)},
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
