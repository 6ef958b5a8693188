"""Turn a release variant and a recipient into the exact bytes of one message.

Two phases, because a release goes to up to a million people: ``Renderer.compile(spec)``
once per variant (:mod:`mailer.message.templates`), then ``variant.render(recipient, ...)``
per message (:mod:`mailer.message.mime`). Every template runs in one sandbox with only
the names and filters templates need (:mod:`mailer.message.sandbox`). User-authored
content is rendered in a render process under a time limit, a size cap and a memory
limit (:mod:`mailer.message.isolated`): :class:`IsolatedRenderer` for previews, checks
and proofs, :class:`AsyncRenderer` for the delivery engine.

    spec         inputs: VariantSpec, Sender, Speaker, Recipient, RenderedParts, Variant
    sandbox      the Jinja environment: names in scope, filters, intercepted operators
    origins      template errors with the author's template and line
    templates    Renderer (read templates, compile a variant), fingerprint
    message      CompiledVariant: Jinja renders + MIME assembly, bytes out
    isolated     the render process: RenderLimits, RenderWorker, IsolatedRenderer, AsyncRenderer
"""

from mailer.message.headers import check_header_value
from mailer.message.isolated import (
    AsyncRenderer,
    IsolatedRenderer,
    IsolatedVariant,
    RenderCancelled,
    RenderJob,
    RenderLimitError,
    RenderLimits,
    RenderWorker,
)
from mailer.message.mime import LOCAL_HTTP_PREFIXES, CompiledVariant
from mailer.message.spec import Recipient, RenderedParts, Sender, Speaker, Variant, VariantSpec
from mailer.message.templates import RENDER_VERSION, Renderer, fingerprint

__all__ = [
    "LOCAL_HTTP_PREFIXES",
    "RENDER_VERSION",
    "AsyncRenderer",
    "CompiledVariant",
    "IsolatedRenderer",
    "IsolatedVariant",
    "Recipient",
    "RenderCancelled",
    "RenderJob",
    "RenderLimitError",
    "RenderLimits",
    "RenderWorker",
    "RenderedParts",
    "Renderer",
    "Sender",
    "Speaker",
    "Variant",
    "VariantSpec",
    "check_header_value",
    "fingerprint",
]
