"""Starting and finishing releases: the ends of a send.

Start (:meth:`Planner.plan_due`): for every approved release whose time has come, verify
that what would be sent is what was approved (else back to ``draft``), check the holds
(:mod:`mailer.releases.holds`: a person must look first), move it to ``sending``, plan its
deliveries (one INSERT ... SELECT per segment) and write the send fence, all in one
transaction. Finish (:meth:`Planner.finish_releases`): a sending release with no pending
row becomes ``sent`` or ``partial``; the pending rows of a cancelled release are cancelled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mailer.config import Settings
from mailer.domain.errors import MailerError
from mailer.domain.states import DeliveryStatus, ReleaseStatus, send_scopes
from mailer.message import Renderer
from mailer.releases import holds, workflow
from mailer.releases.fence import SendFence
from mailer.releases.plan import SendPlan, build_send_plan, require_approved_plan
from mailer.runtime import Runtime
from mailer.store import deliveries as delivery_store
from mailer.store.db import transaction
from mailer.store.tables import Release, Segment

log = logging.getLogger("mailer.engine.planner")


@dataclass(frozen=True)
class Prepared:
    """A release ready to send: its compiled plan and the suppression scopes it honours."""

    plan: SendPlan
    scopes: tuple[str, ...]


class Planner:
    """Starts due releases and finishes done ones; caches each sending release's plan."""

    def __init__(self, rt: Runtime, renderer: Renderer, *, owner: str) -> None:
        self.rt = rt
        self.settings: Settings = rt.settings
        self.renderer = renderer
        self.owner = owner
        self.fence = SendFence(rt.settings.paths.data_dir)
        self._plans: dict[int, Prepared] = {}

    def plan_due(self) -> list[int]:
        """Start every approved release whose time has come: verify its approval, then
        plan its deliveries in the same transaction. Returns the releases started."""
        with transaction(self.rt.sessions) as session:
            due = delivery_store.due_release_ids(session, self.rt.clock())
        return [release_id for release_id in due if self._start(release_id)]

    def _start(self, release_id: int) -> bool:
        now = self.rt.clock()
        with transaction(self.rt.sessions) as session:
            release = session.get(Release, release_id)
            if release is None or release.status != ReleaseStatus.APPROVED.value:
                return False
            try:
                plan = build_send_plan(session, release_id, self.renderer, self.settings)
                require_approved_plan(session, release_id, plan)
            except MailerError as exc:
                # What would be sent is no longer what was approved: back to draft.
                workflow.try_move(
                    session,
                    release_id,
                    ReleaseStatus.APPROVED,
                    ReleaseStatus.DRAFT,
                    actor="mailer",
                    now=now,
                    note=f"not sent: {exc}",
                )
                log.warning("release %s not sent: %s", release_id, exc)
                return False
            reason = holds.start_hold(
                session, release, content_hash=plan.content_hash, now=now, settings=self.settings, fence=self.fence
            )
            if reason is not None:
                if holds.hold(session, release, reason, now=now):
                    log.warning("release %s waits for a person: %s", release_id, reason)
                return False
            if not workflow.try_move(
                session,
                release_id,
                ReleaseStatus.APPROVED,
                ReleaseStatus.SENDING,
                actor=f"mailer ({self.owner})",
                now=now,
                note="planned",
            ):
                return False
            scopes = send_scopes(plan.client_slug, plan.topics)
            for segment_id in plan.segment_order:
                segment = session.get(Segment, segment_id)
                if segment is None:
                    continue
                delivery_store.plan_segment(
                    session,
                    release_id=release_id,
                    segment_id=segment_id,
                    rule=segment.rule,
                    scopes=scopes,
                    message_id_domain=self.settings.sender.message_id_domain,
                    now=now,
                )
            if plan.embargo_at is not None and plan.embargo_at > now:
                excluded = delivery_store.exclude_not_embargo_ok(session, release_id, now)
                if excluded:
                    log.info("release %s: %d contacts not embargo_ok left out", release_id, excluded)
            session.flush()
            # Last before the commit, so before any message can go out: a fence that cannot
            # be written rolls the start back (the release stays approved and unsent).
            holds.record_start(
                session, release, content_hash=plan.content_hash, fence=self.fence, now=now, worker=self.owner
            )
        self._plans[release_id] = Prepared(plan, scopes)
        return True

    def prepared(self, release_id: int) -> Prepared:
        """The release's plan, compiled once per process (raises :class:`MailerError` when
        it cannot be built or no longer matches its approval)."""
        cached = self._plans.get(release_id)
        if cached is None:
            with transaction(self.rt.sessions) as session:
                plan = build_send_plan(session, release_id, self.renderer, self.settings)
                require_approved_plan(session, release_id, plan)
            cached = self._plans[release_id] = Prepared(plan, send_scopes(plan.client_slug, plan.topics))
        return cached

    def finish_releases(self) -> list[int]:
        """Sending releases with no pending row become ``sent`` (or ``partial`` when some
        rows failed or are unknown); cancelled releases' pending rows become ``cancelled``.
        Returns the releases finished."""
        done: list[int] = []
        now = self.rt.clock()
        with transaction(self.rt.sessions) as session:
            for release_id in delivery_store.cancelled_with_pending(session):
                delivery_store.cancel_pending(session, release_id, now)
            for release_id in delivery_store.sending_release_ids(session):
                if delivery_store.pending_count(session, release_id):
                    continue
                counts = delivery_store.status_counts(session, release_id)
                bad = counts.get(DeliveryStatus.FAILED.value, 0) + counts.get(DeliveryStatus.UNKNOWN.value, 0)
                final = ReleaseStatus.PARTIAL if bad else ReleaseStatus.SENT
                note = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                if workflow.try_move(
                    session, release_id, ReleaseStatus.SENDING, final, actor="mailer", now=now, note=note
                ):
                    done.append(release_id)
        for release_id in done:
            self._plans.pop(release_id, None)
        return done
