"""Starting and finishing releases: the ends of a send.

Start (:meth:`Planner.plan_due`): for every approved release whose time has come, verify
that what would be sent is what was approved (changed content: back to ``draft``; the same
content rendering to other bytes, e.g. after a library upgrade: back to ``submitted``; the
author and approver are told either way), check the holds
(:mod:`mailer.releases.holds`: a person must look first), move it to ``sending``, plan its
deliveries (one INSERT ... SELECT per segment) and write the send fence, all in one
transaction. Finish (:meth:`Planner.finish_releases`): a sending release with no pending
row becomes ``sent`` or ``partial``; the pending rows of a cancelled release are cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.config import Settings
from mailer.domain.conversations import FollowUpFilter, ReleaseKind, audience_statuses, cancels_parent
from mailer.domain.errors import MailerError
from mailer.domain.states import DeliveryStatus, ReleaseStatus, send_scopes
from mailer.message import Renderer
from mailer.releases import cadence, holds, local_hour, notify, workflow
from mailer.releases.fence import SendFence
from mailer.releases.plan import SendPlan, build_send_plan, render_digest, require_approved_plan, variant_specs
from mailer.runtime import Runtime
from mailer.store import contact_holds, planned, signals
from mailer.store import deliveries as delivery_store
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.planned import Cap, Waves
from mailer.store.tables import Release, Segment

log = logging.getLogger("mailer.engine.planner")


#: Signs a message (CRLF bytes) and gives it back with its DKIM-Signature.
Signer = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Prepared:
    """A release ready to send: its compiled plan, the suppression scopes it honours,
    and the signer of its client's identity (None: unsigned)."""

    plan: SendPlan
    scopes: tuple[str, ...]
    signer: Signer | None = None


def prepare(plan: SendPlan) -> Prepared:
    """``plan`` with its scopes and its identity's signer (the key is read now). Raises
    ConfigError when the key cannot be used."""
    signer = plan.identity.signer()
    return Prepared(plan, send_scopes(plan.client_slug, plan.topics), signer.sign if signer else None)


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
                # What would be sent is no longer what was approved (the templates or the
                # client changed): back to draft, and the author and approver are told.
                self._not_sent(session, release_id, ReleaseStatus.DRAFT, f"not sent: {exc}", now=now)
                return False
            changed = self._bytes_changed(session, release_id)
            if changed is not None:
                # Same content, other bytes (a library upgrade since approval): approval
                # needed again for what would really go out (issue 21).
                self._not_sent(session, release_id, ReleaseStatus.SUBMITTED, changed, now=now)
                return False
            reason = holds.start_hold(
                session, release, content_hash=plan.content_hash, now=now, settings=self.settings, fence=self.fence
            )
            if reason is not None:
                if holds.hold(session, release, reason, now=now):
                    log.warning(
                        "release %s waits for a person: %s",
                        release_id,
                        reason,
                        extra={"release": release_id, "event": "held"},
                    )
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
            cap = cadence.cap_for(release, self.settings.cadence, now)
            if cap is not None:
                planned.lock_planning(session)
            waves = local_hour.waves_for(session, release)
            if release.kind is not None and release.parent_id is not None:
                self._plan_thread(session, release, plan, scopes, now, cap, waves)
            else:
                self._plan_segments(session, release_id, plan, scopes, now, cap, waves)
            if plan.embargo_at is not None and plan.embargo_at > now:
                excluded = delivery_store.exclude_not_embargo_ok(session, release_id, now)
                if excluded:
                    log.info("release %s: %d contacts not embargo_ok left out", release_id, excluded)
            # Out of office (mailer.inbound): a held contact's row is recorded, never sent.
            contact_holds.hold_planned(session, release_id, now=now)
            session.flush()
            # Last before the commit, so before any message can go out: a fence that cannot
            # be written rolls the start back (the release stays approved and unsent).
            holds.record_start(
                session, release, content_hash=plan.content_hash, fence=self.fence, now=now, worker=self.owner
            )
        try:
            self._plans[release_id] = prepare(plan)
        except MailerError as exc:
            # Started all the same: its first batch pauses it with this reason (prepared()).
            log.warning("release %s cannot be signed: %s", release_id, exc)
        return True

    def _bytes_changed(self, session: Session, release_id: int) -> str | None:
        """Why the release's sample renders no longer give the approved bytes, or None
        (also None for an approval without a render digest)."""
        approval = release_store.latest_approval(session, release_id)
        if approval is None or approval.render_digest is None:
            return None
        try:
            now_digest = render_digest(variant_specs(session, release_id, self.settings), self.renderer)
        except MailerError as exc:
            return f"not sent: the release no longer renders: {exc}"
        if now_digest == approval.render_digest:
            return None
        return (
            "not sent: the message would differ from the one approved although its content did not change "
            f"(rendered {now_digest[:12]}, approved {approval.render_digest[:12]}; an upgrade of the libraries "
            "that render it?): approval needed again"
        )

    def _not_sent(self, session: Session, release_id: int, dst: ReleaseStatus, note: str, *, now: datetime) -> None:
        """Writes: an approved release that may not start goes back to ``dst``; its author
        and approver are told (not silently: issue 21)."""
        if not workflow.try_move(session, release_id, ReleaseStatus.APPROVED, dst, actor="mailer", now=now, note=note):
            return
        if self.settings.notify.enabled:
            what = "is back to draft" if dst is ReleaseStatus.DRAFT else "needs approval again"
            notify.tell_author(
                session,
                release_id,
                kind=f"returned-{dst.value}",
                what=what,
                text=f"Release {release_id} was not sent and {what}. {note}",
                settings=self.settings,
                now=now,
                also_approver=True,
            )
        log.warning("release %s not sent: %s", release_id, note, extra={"release": release_id, "event": "refused"})

    def _plan_segments(
        self,
        session: Session,
        release_id: int,
        plan: SendPlan,
        scopes: tuple[str, ...],
        now: datetime,
        cap: Cap | None,
        waves: Waves | None,
    ) -> None:
        """Writes: one INSERT ... SELECT per segment of the release, in order."""
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
                message_id_domain=plan.identity.message_id_domain,
                now=now,
                cap=cap,
                waves=waves,
            )

    def _plan_thread(
        self,
        session: Session,
        release: Release,
        plan: SendPlan,
        scopes: tuple[str, ...],
        now: datetime,
        cap: Cap | None,
        waves: Waves | None,
    ) -> None:
        """Writes: a correction, withdrawal or follow-up is planned from its parent's
        ledger (see :mod:`mailer.domain.conversations`); a correction or withdrawal first
        cancels whatever of the parent is still pending (put back in the queue since)."""
        assert release.kind is not None and release.parent_id is not None
        kind = ReleaseKind(release.kind)
        if cancels_parent(kind):
            delivery_store.cancel_pending(session, release.parent_id, now)
        leave_out = []
        if kind is ReleaseKind.FOLLOW_UP:
            # who answered in some way, or is away, is not followed up
            only = FollowUpFilter(release.follow_up_filter or FollowUpFilter.NO_RESPONSE.value)
            leave_out.append(signals.held_contact_ids(now))
            if only.skips_repliers:
                leave_out.append(signals.replied_contact_ids([release.parent_id]))
            if only.skips_downloaders:
                leave_out.append(signals.downloaded_contact_ids([release.parent_id]))
        delivery_store.plan_thread(
            session,
            release_id=release.id,
            parent_id=release.parent_id,
            statuses=audience_statuses(kind),
            scopes=scopes,
            message_id_domain=plan.identity.message_id_domain,
            now=now,
            leave_out=leave_out,
            cap=cap,
            waves=waves,
        )

    def prepared(self, release_id: int) -> Prepared:
        """The release's plan, compiled once per process (raises :class:`MailerError` when
        it cannot be built, no longer matches its approval, or its DKIM key is unusable)."""
        cached = self._plans.get(release_id)
        if cached is None:
            with transaction(self.rt.sessions) as session:
                plan = build_send_plan(session, release_id, self.renderer, self.settings)
                require_approved_plan(session, release_id, plan)
            cached = self._plans[release_id] = prepare(plan)
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
                    if self.settings.notify.enabled:
                        notify.tell_author(
                            session,
                            release_id,
                            kind="finished",
                            what=f"finished ({final.value})",
                            text=f"Release {release_id} finished sending: {final.value}. Deliveries: {note}.",
                            settings=self.settings,
                            now=now,
                        )
        for release_id in done:
            self._plans.pop(release_id, None)
        return done
