"""Proofs (test sends of a release, never deliveries): recording one, its SMTP result, its
removal when it never reached a server, a returned proof, and a release's proofs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.store.tables import Proof

__all__ = ["add_proof", "delete_proof", "get_proof", "record_proof_bounce", "release_proofs", "set_proof_result"]


def set_proof_result(session: Session, proof_id: int, result: str) -> None:
    """Writes: what the SMTP server answered to proof ``proof_id``."""
    proof = session.get(Proof, proof_id)
    if proof is not None:
        proof.result = result


def record_proof_bounce(session: Session, proof_id: int, bounce: str, *, now: datetime) -> bool:
    """Writes: a returned proof on its row (the first notice only). Returns False when
    there is no such proof or it was already recorded as bounced."""
    proof = session.get(Proof, proof_id)
    if proof is None or proof.bounced_at is not None:
        return False
    proof.bounced_at = now
    proof.bounce = bounce
    return True


def delete_proof(session: Session, proof_id: int) -> None:
    """Writes: removes the record of a proof that never reached an SMTP server."""
    proof = session.get(Proof, proof_id)
    if proof is not None:
        session.delete(proof)


def get_proof(session: Session, proof_id: int) -> Proof | None:
    """The proof ``proof_id``, or None."""
    return session.get(Proof, proof_id)


def add_proof(
    session: Session,
    release_id: int,
    *,
    segment_id: int | None,
    to_address: str,
    content_hash: str,
    message_id: str,
    result: str,
    now: datetime,
) -> Proof:
    """Writes: a record of one proof sent (never a delivery)."""
    proof = Proof(
        release_id=release_id,
        segment_id=segment_id,
        to_address=to_address,
        content_hash=content_hash,
        message_id=message_id,
        result=result,
        sent_at=now,
    )
    session.add(proof)
    session.flush()
    return proof


def release_proofs(session: Session, release_id: int) -> list[Proof]:
    """The proofs sent for the release, oldest first."""
    return list(session.scalars(select(Proof).where(Proof.release_id == release_id).order_by(Proof.id)))
