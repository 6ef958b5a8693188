"""Turn a release variant and a recipient into the exact bytes of one message.

Two phases, because a release goes to up to a million people: ``Renderer.compile(spec)``
once per variant (:mod:`mailer.message.templates`), then ``variant.render(recipient, ...)``
per message (:mod:`mailer.message.mime`). Every template runs in one sandbox with only
the names and filters templates need (:mod:`mailer.message.sandbox`). User-authored
content is rendered in a render process under a time limit, a size cap and a memory
limit (:mod:`mailer.message.isolated`): :class:`IsolatedRenderer` for previews, checks
and proofs, :class:`AsyncRenderer` for the delivery engine.

    spec         inputs and outputs: VariantSpec, Sender, Speaker, Recipient, RenderJob,
                 Rendered, RenderedParts; Variant (render / render_parts over run(job))
    sandbox      the Jinja environment: names in scope, filters, intercepted operators
    origins      template errors with the author's template and line
    templates    Renderer (read templates, compile a variant)
    images       Markdown images: which are shown (https, the kit's own) and how; which submit refuses
    fingerprint  fingerprint(spec, renderer), RENDER_VERSION
    mime         CompiledVariant: Jinja renders + MIME assembly, bytes out
    headers      header encoding and the header-injection check
    qp           quoted-printable bodies, each distinct line encoded once per variant
    isolated     the faces of the render process: IsolatedRenderer, IsolatedVariant, AsyncRenderer
    worker       RenderWorker: starts, feeds and kills the render process
    child        the render process (``python -m mailer.message.child``)
    exchange     what passes between worker and child
    limits       RenderLimits, RenderLimitError, RenderCancelled
    tokens, dkim unsubscribe/VERP tokens; DKIM signing
"""

from mailer.message.fingerprint import RENDER_VERSION, fingerprint
from mailer.message.headers import check_header_value
from mailer.message.isolated import AsyncRenderer, IsolatedRenderer, IsolatedVariant
from mailer.message.limits import RenderCancelled, RenderLimitError, RenderLimits
from mailer.message.mime import LOCAL_HTTP_PREFIXES, CompiledVariant
from mailer.message.spec import (
    Booking,
    Recipient,
    RelatedLink,
    RenderedParts,
    RenderJob,
    Sender,
    Speaker,
    SpeakerGroup,
    Variant,
    VariantSpec,
    paragraphs,
)
from mailer.message.templates import Renderer
from mailer.message.worker import RenderWorker

__all__ = [
    "LOCAL_HTTP_PREFIXES",
    "RENDER_VERSION",
    "AsyncRenderer",
    "Booking",
    "CompiledVariant",
    "IsolatedRenderer",
    "IsolatedVariant",
    "Recipient",
    "RelatedLink",
    "RenderCancelled",
    "RenderJob",
    "RenderLimitError",
    "RenderLimits",
    "RenderWorker",
    "RenderedParts",
    "Renderer",
    "Sender",
    "Speaker",
    "SpeakerGroup",
    "Variant",
    "VariantSpec",
    "check_header_value",
    "fingerprint",
    "paragraphs",
]
