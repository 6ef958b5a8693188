"""Proofs: one real message to a person on staff, through SMTP, recorded but never a delivery.

:func:`send_proof` is a coroutine that takes the :class:`~mailer.smtp.transport.Transport`
to send through; it starts no event loop of its own. The blocking work (reading the
release, rendering, recording the proof) runs in a worker thread, so only the SMTP
exchange runs on the caller's loop. The command line runs it with ``asyncio.run``; the
staff page hands it to the web server's loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from mailer.audience.contacts import normalize_email
from mailer.config import Settings
from mailer.domain.errors import TransportError
from mailer.domain.states import Outcome
from mailer.message import Renderer
from mailer.message.tokens import Tokens
from mailer.releases import compliance
from mailer.releases.identity import identity_for
from mailer.releases.plan import (
    content_hash,
    pick_segment,
    release_topics,
    sample_recipient,
    segment_rule,
    variant_specs,
)
from mailer.smtp.factory import make_transport
from mailer.smtp.transport import SendResult, Transport
from mailer.store import proofs as proof_store
from mailer.store import releases as release_store
from mailer.store.db import transaction

__all__ = ["PROOF_HEADER", "PROOF_SUBJECT_PREFIX", "ProofResult", "proof_transport", "send_proof"]

PROOF_SUBJECT_PREFIX = "[PROOF] "
PROOF_HEADER = b"X-Mailer-Proof: yes\r\n"


@dataclass(frozen=True)
class ProofResult:
    """A proof that reached the SMTP server's reply (sent or refused), as recorded."""

    proof_id: int
    to_address: str
    segment_slug: str
    message_id: str
    sent: bool
    reply: str


@dataclass(frozen=True)
class _Proof:
    """A rendered (and signed) proof, recorded, ready to send."""

    proof_id: int
    release_id: int
    segment_id: int
    segment_slug: str
    to_address: str
    content_hash: str
    message_id: str
    envelope_sender: str
    data: bytes


@asynccontextmanager
async def proof_transport(settings: Settings) -> AsyncIterator[Transport]:
    """A one-connection transport over ``settings.smtp`` for proofs (it connects on first
    use), closed on leaving the block."""
    transport = make_transport(settings.smtp.model_copy(update={"pool_size": 1}))
    try:
        yield transport
    finally:
        await transport.close()


async def send_proof(
    sessions: sessionmaker[Session],
    release_id: int,
    *,
    to_address: str,
    segment_slug: str | None,
    renderer: Renderer,
    settings: Settings,
    now: datetime,
    transport: Transport,
) -> ProofResult:
    """Writes (own transactions): send one proof through ``transport`` and record it.

    The message is the one the segment's first contact would get, addressed to
    ``to_address``, its subject prefixed ``[PROOF] `` and marked ``X-Mailer-Proof: yes``,
    sent like the release: signed with the client's DKIM key (or the instance one), from
    its return-path domain, with a Message-ID at its Message-ID domain. It is recorded
    in ``proofs`` (never as a delivery) before it is sent: the envelope sender
    ``bounces+p<proof id>-<mac>@<client bounce domain>`` carries a signed proof token, so
    the bounce receiver accepts a returned proof and records it on the proof, never
    against a contact (a proof's bounce suppresses no one). No database transaction is
    held during SMTP. Raises TransportError when SMTP cannot be reached (the proof's
    record is removed again), InputError, NotFoundError, TemplateError, ConfigError (an
    unusable DKIM key); a refusal by the server is recorded and returned. The caller
    owns ``transport`` (and closes it).
    """
    to = normalize_email(to_address)
    proof = await asyncio.to_thread(_render, sessions, release_id, to, segment_slug, renderer, settings, now)
    try:
        result = await transport.send(proof.envelope_sender, proof.to_address, proof.data)
    except TransportError:
        await asyncio.to_thread(_forget, sessions, proof.proof_id)
        raise
    return await asyncio.to_thread(_record, sessions, proof, result)


def _render(
    sessions: sessionmaker[Session],
    release_id: int,
    to: str,
    segment_slug: str | None,
    renderer: Renderer,
    settings: Settings,
    now: datetime,
) -> _Proof:
    with transaction(sessions) as session:
        specs = variant_specs(session, release_id, settings)
        segment_id, slug, spec = pick_segment(specs, segment_slug, release_id)
        rcpt = sample_recipient(session, segment_rule(session, release_id, segment_id))
        digest = content_hash(specs, renderer, release_topics(session, release_id))
        release = release_store.get_release(session, release_id)
        identity = identity_for(release_store.get_client_by_id(session, release.client_id), settings)
        signer = identity.signer()
        label = f"proof.{release_id}.{segment_id}.{uuid.uuid4().hex}"
        message_id = f"<{label}@{identity.message_id_domain}>"
        proof_spec = dataclasses.replace(spec, subject=PROOF_SUBJECT_PREFIX + spec.subject)
        raw = renderer.compile(proof_spec).render(
            rcpt,
            to_addr=to,
            message_id=message_id,
            unsubscribe_url=compliance.sample_unsubscribe_url(settings),
            unsubscribe_mailto=None,
            date=now,
            release_token=Tokens.from_settings(settings).release_kit(release_id),
        )
        # The proof marker is part of what is signed: a proof cannot pass for a release.
        data = PROOF_HEADER + raw
        if signer is not None:
            data = signer.sign(data)
        row = proof_store.add_proof(
            session,
            release_id,
            segment_id=segment_id,
            to_address=to,
            content_hash=digest,
            message_id=message_id,
            result="sending",
            now=now,
        )
        proof_id = row.id
    envelope_sender = f"bounces+{Tokens.from_settings(settings).proof_verp(proof_id)}@{identity.bounce_domain}"
    return _Proof(proof_id, release_id, segment_id, slug, to, digest, message_id, envelope_sender, data)


def _forget(sessions: sessionmaker[Session], proof_id: int) -> None:
    with transaction(sessions) as session:
        proof_store.delete_proof(session, proof_id)


def _record(sessions: sessionmaker[Session], proof: _Proof, result: SendResult) -> ProofResult:
    with transaction(sessions) as session:
        proof_store.set_proof_result(session, proof.proof_id, f"{result.outcome.value}: {result.reply}")
    sent = result.outcome is Outcome.SENT
    return ProofResult(proof.proof_id, proof.to_address, proof.segment_slug, proof.message_id, sent, result.reply)
