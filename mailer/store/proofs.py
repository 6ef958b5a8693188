"""Queries about a proof after it is recorded (:func:`mailer.store.releases.add_proof`):
its SMTP result, its removal when it never reached a server, and a returned proof."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from mailer.store.tables import Proof

__all__ = ["delete_proof", "get_proof", "record_proof_bounce", "set_proof_result"]


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
