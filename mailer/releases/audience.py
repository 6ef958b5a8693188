"""Who a release would reach now, for the people deciding: the approval page, the editor's
live counts, "Send now"'s confirmation and ``releases schedule --now``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailer.domain.states import send_scopes
from mailer.store import audience as audience_store
from mailer.store import releases as release_store

__all__ = ["SegmentAudience", "audience_size", "segment_audiences"]


@dataclass(frozen=True)
class SegmentAudience:
    """One segment of a release: how many it reaches now, and a few of them."""

    slug: str
    rule: str
    count: int
    sample: tuple[str, ...]  # "Name <address>" or the address


def _scopes(session: Session, release_id: int) -> tuple[str, ...]:
    release = release_store.get_release(session, release_id)
    client = release_store.get_client_by_id(session, release.client_id)
    return send_scopes(client.slug, tuple((release.extra or {}).get("topics") or ()))


def audience_size(session: Session, release_id: int) -> int:
    """Contacts the release would reach now (each once, suppressions left out)."""
    rules = [seg.rule for _, seg in release_store.release_segments(session, release_id)]
    return audience_store.audience_count(session, rules, _scopes(session, release_id))


def segment_audiences(session: Session, release_id: int, *, sample: int = 5) -> list[SegmentAudience]:
    """Per segment of the release, by position: its count now and ``sample`` names."""
    scopes = _scopes(session, release_id)
    out: list[SegmentAudience] = []
    for _, seg in release_store.release_segments(session, release_id):
        people = audience_store.reachable_sample(session, seg.rule, scopes, sample)
        names = tuple(
            (f"{' '.join(p for p in (c.first_name, c.last_name) if p)} <{c.email}>" if c.first_name else c.email or "")
            for c in people
        )
        out.append(
            SegmentAudience(seg.slug, seg.rule, audience_store.audience_count(session, [seg.rule], scopes), names)
        )
    return out
