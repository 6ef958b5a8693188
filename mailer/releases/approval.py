"""Submission and approval: the two-person rule bound to the content hash.

``draft → submitted`` runs :func:`mailer.releases.compliance.check_release` and stores the
content hash (:mod:`mailer.releases.plan`); ``submitted → approved`` needs a second person
(not the author, not anyone who edited the content, not the submitter) and the same hash.
Both moves go through :func:`mailer.releases.workflow.move`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.config import Settings
from mailer.domain.errors import InputError, WorkflowError
from mailer.domain.states import ReleaseStatus, require_release_move
from mailer.message import Renderer
from mailer.releases import compliance, holds, notify, workflow
from mailer.releases.compliance import ComplianceReport
from mailer.releases.embargo import require_embargo_fits
from mailer.releases.identity import identity_for
from mailer.releases.plan import (
    content_hash,
    release_content_hash,
    release_topics,
    render_digest,
    sample_recipient,
    variant_specs,
)
from mailer.releases.release_text import release_file
from mailer.store import audit
from mailer.store import contacts as contact_store
from mailer.store import releases as release_store
from mailer.store import reviews as review_store
from mailer.store.segment_checks import unknown_names
from mailer.store.tables import Approval, Release

__all__ = ["ApprovalResult", "approve_release", "request_changes", "second_person_problem", "submit_release"]


def _check_smtputf8(
    session: Session, rules: list[str], settings: Settings, report: ComplianceReport
) -> ComplianceReport:
    """``report`` plus a failure when the audience holds addresses with a non-ASCII local
    part and the relay is not known to offer SMTPUTF8 (RFC 6531; issue 12): they would
    fail at send."""
    setting = settings.smtp.smtputf8
    if setting == "yes":
        return report
    count, sample = contact_store.addresses_needing_smtputf8(session, rules)
    if not count:
        return report
    shown = ", ".join(sample) + (", ..." if count > len(sample) else "")
    failure = (
        f"{count} recipient{'s have' if count > 1 else ' has'} a non-ASCII local part ({shown}), which needs a "
        f'relay offering SMTPUTF8 (RFC 6531), and smtp.smtputf8 is "{setting}": set it to "yes" if the relay '
        "offers SMTPUTF8, or leave these contacts out of the segments"
    )
    return dataclasses.replace(report, failures=(*report.failures, failure))


def _check_alignment(
    session: Session, release: Release, settings: Settings, report: ComplianceReport
) -> ComplianceReport:
    """``report`` plus a failure when the client's From domain aligns with neither its
    DKIM domain nor its return-path domain (DMARC fails: Gmail's and Yahoo's bulk-sender
    rules), unless the client records an override (a warning then names it)."""
    client = release_store.get_client_by_id(session, release.client_id)
    identity = identity_for(client, settings)
    problem = identity.alignment_problem()
    if problem is None:
        return report
    if identity.alignment_override:
        who = f" by {client.alignment_override_by}" if client.alignment_override_by else ""
        note = f"client {client.slug} is not aligned (DMARC), waived{who}: {identity.alignment_override}"
        return dataclasses.replace(report, warnings=(*report.warnings, note))
    return dataclasses.replace(report, failures=(*report.failures, problem))


def submit_release(
    session: Session, release_id: int, *, actor: str, renderer: Renderer, settings: Settings, now: datetime
) -> ComplianceReport:
    """Writes: ``draft → submitted`` after the compliance checks; stores the content hash.

    Raises WorkflowError when the move is not allowed or when any check fails (all
    failures listed in one message); returns the report (its warnings) on success.
    """
    actor = workflow.check_actor(actor)
    release = release_store.get_release(session, release_id, for_update=True)
    status = ReleaseStatus(release.status)
    if status is not ReleaseStatus.DRAFT:
        # approved → submitted is the engine's and the scheduler's move (approval needed
        # again), not a submission: a person submits drafts only
        article = "an" if status.value[0] in "aeiou" else "a"
        raise WorkflowError(f"{article} {status.value} release cannot become submitted")
    require_embargo_fits(release)
    specs = variant_specs(session, release_id, settings)
    segments = {seg.id: seg for _, seg in release_store.release_segments(session, release_id)}
    checks = [(slug, spec, sample_recipient(session, segments[sid].rule)) for sid, slug, spec in specs]
    report = compliance.check_release(checks, renderer, settings)
    report = _check_smtputf8(session, [seg.rule for seg in segments.values()], settings, report)
    report = _check_alignment(session, release, settings, report)
    report = _audience_warnings(session, [(slug, segments[sid].rule) for sid, slug, _ in specs], report)
    report.require_ok(f"release {release_id}")
    release.content_hash = content_hash(specs, renderer, release_topics(session, release_id))
    note = "checks passed" + "".join(f"; warning: {w}" for w in report.warnings)
    workflow.move(session, release_id, ReleaseStatus.SUBMITTED, actor=actor, now=now, note=note, src=status)
    if settings.notify.enabled:
        notify.tell_approvers(session, release_id, actor=actor, settings=settings, now=now)
    return report


def _audience_warnings(session: Session, segments: list[tuple[str, str]], report: ComplianceReport) -> ComplianceReport:
    """``report`` plus a warning for each segment that matches no contact now, each list,
    beat or tag a rule names that nothing has (issue 21: a misspelt list selected nobody,
    silently), and one when the release as a whole reaches nobody."""
    warnings: list[str] = []
    total = 0
    for slug, rule in segments:
        count = contact_store.segment_count(session, rule)
        total += count
        if count == 0:
            warnings.append(f"segment {slug} matches 0 contacts now ({rule})")
        warnings += [f"segment {slug}: {problem}" for problem in unknown_names(session, rule)]
    if segments and total == 0:
        warnings.append("the release reaches nobody: every segment is empty")
    return dataclasses.replace(report, warnings=(*report.warnings, *warnings))


@dataclass(frozen=True)
class ApprovalResult:
    """The outcome of :func:`approve_release`.

    ``approval`` is None when the approval was refused because the content changed
    since submission; the release was then returned to draft (``refused`` says why).
    The caller commits first, then reports the refusal.
    """

    approval: Approval | None
    content_hash: str
    refused: str | None = None


def approve_release(
    session: Session, release_id: int, *, approver: str, renderer: Renderer, settings: Settings, now: datetime
) -> ApprovalResult:
    """Writes: ``submitted → approved`` with an Approval bound to the content hash.

    Raises WorkflowError when the release is not submitted, or when the approver wrote
    it, edited its content or submitted it (two-person rule). When the content hash no
    longer matches the one stored at submission (templates or client changed), the
    release goes back to draft and the result says so (no exception: the move must be
    committed).
    """
    approver = workflow.check_actor(approver)
    release = release_store.get_release(session, release_id, for_update=True)
    status = ReleaseStatus(release.status)
    require_release_move(status, ReleaseStatus.APPROVED)
    _require_second_person(session, release, approver)
    current = release_content_hash(session, release_id, renderer, settings)
    if current != release.content_hash:
        reason = (
            f"release {release_id} changed since it was submitted "
            f"({(release.content_hash or '-')[:12]} → {current[:12]}): back to draft, submit it again"
        )
        workflow.move(session, release_id, ReleaseStatus.DRAFT, actor=approver, now=now, note=reason, src=status)
        release.content_hash = None
        return ApprovalResult(None, current, reason)
    digest = render_digest(variant_specs(session, release_id, settings), renderer)
    approval = review_store.add_approval(
        session,
        release_id,
        approver=approver,
        content_hash=current,
        now=now,
        send_at=release.send_at,
        render_digest=digest,
        snapshot=release_file(session, release_id),
    )
    holds.clear(release)
    # The identity must exist before any backup of an approved release can be taken (the
    # migration creates it; this covers a database whose meta row was lost).
    release_store.database_identity(session)
    when = f" to go at {release.send_at:%Y-%m-%d %H:%M} UTC" if release.send_at else " without a send time yet"
    note = f"approved {current[:12]}{when}"
    workflow.move(session, release_id, ReleaseStatus.APPROVED, actor=approver, now=now, note=note, src=status)
    audit.record(
        session, actor=approver, action="release.approve", target=f"release {release_id}", detail=note, now=now
    )
    if settings.notify.enabled:
        schedule_hint = "" if release.send_at else " It has no send time yet: schedule it."
        notify.tell_author(
            session,
            release_id,
            kind="approved",
            what="approved",
            text=f"{approver} approved release {release_id}{when}.{schedule_hint}",
            settings=settings,
            now=now,
        )
    return ApprovalResult(approval, current)


def request_changes(
    session: Session, release_id: int, *, actor: str, note: str, settings: Settings, now: datetime
) -> None:
    """Writes: ``submitted → draft`` with the approver's note (kept as a comment and in the
    history); the author is told. Raises WorkflowError when the release is not
    submitted, InputError for an empty note."""
    actor = workflow.check_actor(actor)
    text = note.strip()
    if not text:
        raise InputError("note: say what should change")
    release = release_store.get_release(session, release_id, for_update=True)
    status = ReleaseStatus(release.status)
    if status is not ReleaseStatus.SUBMITTED:
        raise WorkflowError(f"release {release_id} is {status.value}: changes can be requested only while submitted")
    review_store.add_comment(session, release_id, author=actor, kind="changes", body=text[:10_000], now=now)
    workflow.move(
        session,
        release_id,
        ReleaseStatus.DRAFT,
        actor=actor,
        now=now,
        note=f"changes requested: {text[:300]}",
        src=status,
    )
    release.content_hash = None
    if settings.notify.enabled:
        notify.tell_author(
            session,
            release_id,
            kind="changes",
            what="needs changes",
            text=f"{actor} asked for changes to release {release_id}:\n\n{text}",
            settings=settings,
            now=now,
        )


def _require_second_person(session: Session, release: Release, approver: str) -> None:
    """WorkflowError unless ``approver`` is none of: the author, anyone who edited the
    content, the person who submitted it (names compared case-insensitively)."""
    problem = second_person_problem(session, release, approver)
    if problem is not None:
        raise WorkflowError(problem)


def second_person_problem(session: Session, release: Release, approver: str) -> str | None:
    """Why ``approver`` may not approve ``release`` under the two-person rule, or None
    (the pages ask it to leave out the Approve button on one's own release)."""
    me = approver.casefold()
    roles = [("wrote", release.author)]
    roles += [("edited", editor) for editor in release_store.release_editors(session, release.id)]
    submitter = release_store.latest_submitter(session, release.id)
    if submitter is not None:
        roles.append(("submitted", submitter))
    done = [what for what, who in roles if who.strip().casefold() == me]
    if "wrote" in done and "edited" in done:
        done.remove("edited")  # the author is recorded as the first editor
    if done:
        return (
            f"{approver} {' and '.join(dict.fromkeys(done))} release {release.id}: "
            "a second person, who did not write, edit or submit it, must approve it"
        )
    return None
