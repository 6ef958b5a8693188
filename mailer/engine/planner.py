"""Starting and finishing releases: the ends of a send.

Start (:meth:`Planner.start_due`): for every approved release whose time has come, verify
that what would be sent is what was approved (changed content: back to ``draft``; the same
content rendering to other bytes, e.g. after a library upgrade: back to ``submitted``; the
author and approver are told either way), check the holds
(:mod:`mailer.releases.holds`: a person must look first), move it to ``planning`` and write
the send fence, in one short transaction that plans no row: the fence is on disk before
any row of the release exists, so before any message of it can go out.

Plan (:meth:`Planner.plan_step`), in bounded steps: each step takes the next
``step_contacts`` contacts by id (:class:`~mailer.store.planned.Step`) and, in its own
short transaction, plans them with every rule of a start: one INSERT ... SELECT per
segment in the release's order (a contact in two segments gets the first one's variant:
later segments leave out contacts with a row; a step run again finds its rows there and
adds none), or from the parent's ledger for
a correction, withdrawal or follow-up; suppressions, the cadence cap (under the planning
lock), local-hour waves, the embargo exclusion and out-of-office holds. A step first
moves the release's ``plan_cursor`` by compare-and-set, so two workers never plan the
same step, and a crash between steps leaves the cursor at the last committed step: any
worker goes on from there, nobody planned twice, nobody skipped. Rules that depend on the
moment use the release's ``planned_at`` (the start), so every step decides alike. Workers
claim the rows of a ``planning`` release as they appear: the first recipients receive
while the rest is planned. The last step moves it to ``sending``. A paused release goes
on being planned (nothing of it is claimed); a cancelled one is not planned further.

Why steps: one INSERT ... SELECT over a million contacts held SQLite's write lock for
18 s (mostly index maintenance of ``deliveries``), and every other writer (a one-click
unsubscribe) failed after its busy timeout. A step holds it for tens of milliseconds.

Finish (:meth:`Planner.finish_releases`): a sending release with no pending row becomes
``sent`` or ``partial`` (a ``planning`` one never: its rows are not all there); the
pending rows of a cancelled release are cancelled.

Over 400 lines on purpose: one noun (a release's planning, start to finish); the start's
checks, the steps and the finish share the cursor and the fence, and split apart they
would each have to re-derive where a release stands.
"""

from __future__ import annotations

import logging
import time
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
from mailer.store import reviews as review_store
from mailer.store.db import transaction
from mailer.store.deliveries import Guard
from mailer.store.planned import Cap, Step, Waves
from mailer.store.tables import Release, Segment

log = logging.getLogger("mailer.engine.planner")


@dataclass(frozen=True)
class Prepared:
    """A release ready to send: its compiled plan, the suppression scopes it honours,
    and the DKIM key of its client's identity as (key file, selector, domain), which the
    render process signs each message with (None: unsigned)."""

    plan: SendPlan
    scopes: tuple[str, ...]
    dkim: tuple[str, str, str] | None = None


def prepare(plan: SendPlan) -> Prepared:
    """``plan`` with its scopes and its identity's DKIM key (read and checked now: the
    render process reads the same file). Raises ConfigError when the key cannot be used."""
    signer = plan.identity.signer()
    dkim = (str(signer.key_file), signer.selector, signer.domain) if signer is not None else None
    return Prepared(plan, send_scopes(plan.client_slug, plan.topics), dkim)


#: contacts per planning step at most (the size adapts to STEP_SECONDS below it)
STEP_CONTACTS = 20_000
#: how long a step should hold the write lock at most; longer steps halve the next one
STEP_SECONDS = 0.25
#: SQLite: a pause between two steps once the steps since the last pause held the write
#: lock this long. SQLite has no queue of waiting writers: each polls (its busy handler
#: sleeps 1, 2, 5 ... up to 100 ms between tries), so a planner that began its next step
#: at once would win every time and a one-click unsubscribe would wait for the whole
#: planning. A pause longer than the longest poll interval lets every waiting writer in:
#: none waits much more than REST_AFTER_SECONDS and one step (under a second).
SQLITE_REST_SECONDS = 0.11
REST_AFTER_SECONDS = 0.5

#: release states whose planning goes on (a paused release is planned, not sent)
_PLANS = frozenset({ReleaseStatus.PLANNING.value, ReleaseStatus.PAUSED.value})


@dataclass(frozen=True)
class _StepPlan:
    """What each planning step needs of a release's plan."""

    segment_order: tuple[int, ...]
    scopes: tuple[str, ...]
    message_id_domain: str
    embargo_at: datetime | None

    @classmethod
    def of(cls, plan: SendPlan) -> _StepPlan:
        return cls(
            tuple(plan.segment_order),
            send_scopes(plan.client_slug, plan.topics),
            plan.identity.message_id_domain,
            plan.embargo_at,
        )


class Planner:
    """Starts due releases and finishes done ones; caches each sending release's plan."""

    def __init__(self, rt: Runtime, renderer: Renderer, *, owner: str, step_contacts: int = STEP_CONTACTS) -> None:
        self.rt = rt
        self.settings: Settings = rt.settings
        self.renderer = renderer
        self.owner = owner
        self.fence = SendFence(rt.settings.paths.data_dir)
        self._plans: dict[int, Prepared] = {}
        #: contacts per planning step (a step holds the write lock for tens of ms)
        self.step_contacts = step_contacts
        #: called inside each step's transaction, last (tests: a slow step)
        self.step_hook: Callable[[Session, int], None] | None = None
        self._steps: dict[int, _StepPlan] = {}
        self._sizes: dict[int, int] = {}
        #: the pause between two steps (see SQLITE_REST_SECONDS; PostgreSQL locks rows)
        self.rest_seconds = SQLITE_REST_SECONDS if rt.engine.dialect.name == "sqlite" else 0.0
        self._held = 0.0  # seconds of write lock since the last pause
        #: a step longer than this halves the next one (see STEP_SECONDS)
        self.step_seconds = STEP_SECONDS
        self._waves: dict[int, Waves | None] = {}

    def plan_due(self) -> list[int]:
        """Start every approved release whose time has come (:meth:`start_due`), then plan
        every release with steps left to the end (:meth:`plan_steps`). Returns the
        releases started."""
        started = self.start_due()
        self.plan_steps()
        return started

    def start_due(self) -> list[int]:
        """Start every approved release whose time has come: verify its approval, move it
        to ``planning``, write the send fence. Returns the releases started."""
        with transaction(self.rt.sessions) as session:
            due = delivery_store.due_release_ids(session, self.rt.clock())
        return [release_id for release_id in due if self._start(release_id)]

    def planning_ids(self) -> list[int]:
        """Releases with planning steps left (or a last step done, to be moved on)."""
        with transaction(self.rt.sessions) as session:
            return release_store.planning_release_ids(session)

    def plan_steps(self) -> int:
        """Plan every release with steps left, step after step, to the end; returns the
        steps done (by this process)."""
        steps = 0
        while True:
            progressed = False
            for release_id in self.planning_ids():
                while self.plan_step(release_id):
                    steps += 1
                    progressed = True
                    time.sleep(self.rest_due())  # other writers' turn
            if not progressed:
                return steps

    def _start(self, release_id: int) -> bool:
        now = self.rt.clock()
        # The checks render sample messages (tens to hundreds of milliseconds): read only,
        # so not under SQLite's write lock; what they decide is written below, guarded.
        with transaction(self.rt.sessions) as session:
            session.connection(execution_options={"sqlite_deferred": True})
            release = session.get(Release, release_id)
            if release is None or release.status != ReleaseStatus.APPROVED.value:
                return False
            seen = release.updated_at
            refused, plan = self._check(session, release, now)
        with transaction(self.rt.sessions) as session:
            release = session.get(Release, release_id)
            if release is None or release.status != ReleaseStatus.APPROVED.value or release.updated_at != seen:
                return False  # changed since the checks: the next tick checks again
            if refused is not None:
                dst, note = refused
                if dst is not ReleaseStatus.APPROVED:
                    self._not_sent(session, release_id, dst, note, now=now)
                elif holds.hold(session, release, note, now=now):
                    log.warning(
                        "release %s waits for a person: %s",
                        release_id,
                        note,
                        extra={"release": release_id, "event": "held"},
                    )
                return False
            assert plan is not None
            if not workflow.try_move(
                session,
                release_id,
                ReleaseStatus.APPROVED,
                ReleaseStatus.PLANNING,
                actor=f"mailer ({self.owner})",
                now=now,
                note="planning",
            ):
                return False
            if release.kind is not None and release.parent_id is not None and cancels_parent(ReleaseKind(release.kind)):
                # A correction or withdrawal first cancels whatever of the parent is still
                # pending (put back in the queue since), before its first step.
                delivery_store.cancel_pending(session, release.parent_id, now)
            session.flush()
            # Last before the commit, so before any row (and message) of the release
            # exists: a fence that cannot be written rolls the start back (the release
            # stays approved and unsent).
            holds.record_start(
                session, release, content_hash=plan.content_hash, fence=self.fence, now=now, worker=self.owner
            )
        self._steps[release_id] = _StepPlan.of(plan)
        try:
            self._plans[release_id] = prepare(plan)
        except MailerError as exc:
            # Started all the same: its first batch pauses it with this reason (prepared()).
            log.warning("release %s cannot be signed: %s", release_id, exc)
        return True

    def plan_step(self, release_id: int) -> bool:
        """Writes: plan the release's next step (see the module docstring), in one
        transaction. True when a step was planned here and more may follow; False when
        the release has nothing left to plan (or is not planning, or another worker took
        this step: the caller looks again later)."""
        step_plan = self._steps.get(release_id) or self._step_plan(release_id)
        size = self._sizes.get(release_id, self.step_contacts)
        now = self.rt.clock()
        began = time.monotonic()
        with transaction(self.rt.sessions) as session, planned.step_cache(session):
            release = session.get(Release, release_id)
            if release is None or release.status not in _PLANS:
                return False
            if release.plan_cursor is None:
                # every step done, the release still planning (resumed meanwhile): move on
                self._planned(session, release_id, now)
                return False
            after = int(release.plan_cursor)
            through = planned.step_end(session, after, size)
            if not release_store.advance_plan_cursor(session, release_id, after, through):
                return False  # another worker took this step (or the release stopped planning)
            step = Step(after, through)
            # The step's contacts were just claimed by the cursor, so none has a row of the
            # release unless the step runs again (one probe): then every statement skips
            # those that have one; else the first one inserts without looking.
            guard = Guard.NOT_EXISTS if delivery_store.step_has_rows(session, release_id, step) else Guard.NONE
            at = release.planned_at or now
            cap = cadence.cap_for(release, self.settings.cadence, at)
            if cap is not None:
                planned.lock_planning(session)
            if release.kind is not None and release.parent_id is not None:
                self._plan_thread(session, release, step_plan, now, cap, step, guard)
            else:
                self._plan_segments(session, release_id, step_plan, now, cap, step, guard)
            if step_plan.embargo_at is not None and step_plan.embargo_at > at:
                excluded = delivery_store.exclude_not_embargo_ok(session, release_id, now, step=step)
                if excluded:
                    log.info("release %s: %d contacts not embargo_ok left out", release_id, excluded)
            # Out of office (mailer.inbound): a held contact's row is recorded, never sent.
            contact_holds.hold_planned(session, release_id, now=now, step=step)
            if self.step_hook is not None:
                self.step_hook(session, release_id)
            if through is None:
                self._planned(session, release_id, now)
        if through is None:
            self._steps.pop(release_id, None)
            self._waves.pop(release_id, None)
            self._sizes.pop(release_id, None)
            return False
        # The next step's size: a step that held the lock too long (a loaded machine, a
        # big segment rule) halves it, a quick one doubles it back, up to step_contacts.
        took = time.monotonic() - began
        self._held += took
        if took > self.step_seconds:
            size = max(self.step_contacts // 32, 1, size // 2)
        elif took < self.step_seconds / 3:
            size = min(self.step_contacts, size * 2)
        self._sizes[release_id] = size
        return True

    def rest_due(self) -> float:
        """Seconds to pause before the next step (see SQLITE_REST_SECONDS): 0 until the
        steps since the last pause held the lock REST_AFTER_SECONDS."""
        if self._held < REST_AFTER_SECONDS:
            return 0.0
        self._held = 0.0
        return self.rest_seconds

    def _planned(self, session: Session, release_id: int, now: datetime) -> None:
        """Writes: the last step is done: a planning release becomes ``sending`` (a paused
        one stays paused, and resumes as ``sending``)."""
        workflow.try_move(
            session,
            release_id,
            ReleaseStatus.PLANNING,
            ReleaseStatus.SENDING,
            actor=f"mailer ({self.owner})",
            now=now,
            note="planned",
        )

    def _step_plan(self, release_id: int) -> _StepPlan:
        """What the steps of a started release need, read once per process (a worker
        that resumes another's planning)."""
        with transaction(self.rt.sessions) as session:
            plan = build_send_plan(session, release_id, self.renderer, self.settings)
        step_plan = self._steps[release_id] = _StepPlan.of(plan)
        return step_plan

    def _waves_of(self, session: Session, release: Release) -> Waves | None:
        """The release's local-hour waves, worked out once per process (it reads every
        contact's time zone)."""
        if release.id not in self._waves:
            self._waves[release.id] = local_hour.waves_for(session, release)
        return self._waves[release.id]

    def _check(
        self, session: Session, release: Release, now: datetime
    ) -> tuple[tuple[ReleaseStatus, str] | None, SendPlan | None]:
        """Reads: may the approved ``release`` start now? (None, its plan) when it may;
        else ((the state it goes back to, why), None), ``approved`` meaning it waits for a
        person (a hold)."""
        try:
            plan = build_send_plan(session, release.id, self.renderer, self.settings)
            require_approved_plan(session, release.id, plan)
        except MailerError as exc:
            # What would be sent is no longer what was approved (the templates or the
            # client changed): back to draft, and the author and approver are told.
            return (ReleaseStatus.DRAFT, f"not sent: {exc}"), None
        changed = self._bytes_changed(session, release.id)
        if changed is not None:
            # Same content, other bytes (a library upgrade since approval): approval
            # needed again for what would really go out (issue 21).
            return (ReleaseStatus.SUBMITTED, changed), None
        reason = holds.start_hold(
            session, release, content_hash=plan.content_hash, now=now, settings=self.settings, fence=self.fence
        )
        if reason is not None:
            return (ReleaseStatus.APPROVED, reason), None
        return None, plan

    def _bytes_changed(self, session: Session, release_id: int) -> str | None:
        """Why the release's sample renders no longer give the approved bytes, or None
        (also None for an approval without a render digest)."""
        approval = review_store.latest_approval(session, release_id)
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
        plan: _StepPlan,
        now: datetime,
        cap: Cap | None,
        step: Step,
        guard: Guard,
    ) -> None:
        """Writes: one INSERT ... SELECT per segment of the release, in order, over the
        step's contacts; the first as ``guard`` says, the others leaving out contacts an
        earlier one planned."""
        release = session.get(Release, release_id)
        assert release is not None
        waves = self._waves_of(session, release)
        for segment_id in plan.segment_order:
            segment = session.get(Segment, segment_id)
            if segment is None:
                continue
            delivery_store.plan_segment(
                session,
                release_id=release_id,
                segment_id=segment_id,
                rule=segment.rule,
                scopes=plan.scopes,
                message_id_domain=plan.message_id_domain,
                now=now,
                cap=cap,
                waves=waves,
                step=step,
                guard=guard,
            )
            guard = Guard.NOT_EXISTS

    def _plan_thread(
        self,
        session: Session,
        release: Release,
        plan: _StepPlan,
        now: datetime,
        cap: Cap | None,
        step: Step,
        guard: Guard,
    ) -> None:
        """Writes: a correction, withdrawal or follow-up is planned from its parent's
        ledger (see :mod:`mailer.domain.conversations`), over the step's contacts (the
        parent's pending rows were cancelled at the start)."""
        assert release.kind is not None and release.parent_id is not None
        kind = ReleaseKind(release.kind)
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
            scopes=plan.scopes,
            message_id_domain=plan.message_id_domain,
            now=now,
            leave_out=leave_out,
            cap=cap,
            waves=self._waves_of(session, release),
            step=step,
            guard=guard,
        )

    def forget(self, release_id: int) -> None:
        """Drop the release's compiled plan: :meth:`prepared` builds it afresh (its DKIM
        key read again) next time."""
        self._plans.pop(release_id, None)

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
            # only sending releases: a planning one has rows still to come
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
