"""``mailer releases`` commands that decide whether and when a release goes on: confirm a
held start, cancel, pause, resume, retry. :func:`add_commands` puts them on the
``releases`` group, after the authoring and approval commands of :mod:`mailer.cli.releases`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mailer.accounts import permits
from mailer.accounts.permits import Action
from mailer.cli.actor import AsOpt, whoami
from mailer.cli.common import JsonOpt, ReleaseId, out, print_json, runtime
from mailer.domain.errors import InputError
from mailer.domain.states import DeliveryStatus, ReleaseStatus
from mailer.releases import workflow
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.tables import Release

__all__ = ["add_commands", "release_summary"]


def add_commands(group: typer.Typer) -> None:
    """Add these commands to ``group`` (the ``releases`` group), in --help order."""
    group.command("confirm-late")(releases_confirm_late)
    group.command("cancel")(releases_cancel)
    group.command("pause")(releases_pause)
    group.command("resume")(releases_resume)
    group.command("retry")(releases_retry)


def release_summary(release: Release) -> dict[str, Any]:
    """The short JSON of a release a command changed."""
    return {"id": release.id, "title": release.title, "status": release.status}


def releases_confirm_late(
    release_id: ReleaseId,
    resend_after_restore: Annotated[
        bool,
        typer.Option(
            "--resend-after-restore",
            help="Send even though the send fence says this database already started it (a restored copy?).",
        ),
    ] = False,
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let an approved release that waits (late past its not_after, or already started per
    the send fence) start at the next `mailer run` tick; or let a release the send fence
    paused mid-send (a restored copy?) go on sending the rows this database shows as unsent."""
    given = workflow.check_actor(whoami(actor))
    with runtime() as rt, transaction(rt.sessions) as session:
        who = permits.cli_actor(session, given, Action.SCHEDULE)
        release = workflow.confirm_start(
            session, release_id, actor=who, resend_after_restore=resend_after_restore, now=rt.clock()
        )
        summary = release_summary(release)
    if as_json:
        print_json({**summary, "confirmed_by": who, "resend_after_restore": resend_after_restore})
    else:
        verb = "goes on sending" if summary["status"] == ReleaseStatus.SENDING.value else "starts"
        out.print(f"confirmed release {release_id}: `mailer run` {verb} it at its next tick")


def releases_cancel(release_id: ReleaseId, actor: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Cancel a release.

    Once user accounts exist, --as must name an enabled admin (a publicist: only their own draft)."""
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        release = release_store.get_release(session, release_id)
        who = permits.cli_actor(session, given, Action.CANCEL, author=release.author, status=release.status)
        cancelled = workflow.cancel(session, release_id, actor=who, now=rt.clock())
    if as_json:
        print_json(release_summary(cancelled.release))
    else:
        out.print(f"cancelled release {release_id}")


def releases_pause(
    release_id: ReleaseId,
    reason: Annotated[str | None, typer.Option(help="Why (shown to staff).")] = None,
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pause a release that is being sent: nothing more is claimed; messages in flight finish."""
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        who = permits.cli_actor(session, given, Action.PAUSE)
        workflow.pause(session, release_id, actor=who, now=rt.clock(), reason=reason)
    if as_json:
        print_json({"id": release_id, "status": "paused"})
    else:
        out.print(f"paused release {release_id}")


def releases_resume(release_id: ReleaseId, actor: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Resume a paused release."""
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        who = permits.cli_actor(session, given, Action.RESUME)
        status = workflow.resume(session, release_id, actor=who, now=rt.clock())
    if as_json:
        print_json({"id": release_id, "status": status.value})
    else:
        out.print(f"resumed release {release_id}")


def releases_retry(
    release_id: ReleaseId,
    status: Annotated[
        list[str], typer.Option("--status", help="unknown, failed, deferred or queued (repeat for several).")
    ],
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-queue the release's rows in these states; they keep their Message-ID.

    `unknown` rows may already have been delivered: retrying them can send a second copy.
    Suppressed addresses are checked again before anything is sent.
    """
    try:
        chosen = [DeliveryStatus(s) for s in status]
    except ValueError as exc:
        raise InputError(f"--status: {exc}; use unknown, failed, deferred or queued") from exc
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        who = permits.cli_actor(session, given, Action.RETRY)
        count = workflow.retry(session, release_id, chosen, actor=who, now=rt.clock())
    if as_json:
        print_json({"id": release_id, "requeued": count})
    else:
        out.print(f"re-queued {count} deliveries of release {release_id}; `mailer run` sends them")
