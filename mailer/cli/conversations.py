"""``mailer releases`` commands that answer a release that went out: correct, withdraw,
follow-up (new draft releases linked to it, see :mod:`mailer.releases.threads`), lift-note
(the "embargo lifted" follow-up, :mod:`mailer.releases.lift_note`), and lift-cap (an
approver lets one release past the cadence cap). :func:`add_commands` puts them on the
``releases`` group."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mailer.accounts import permits
from mailer.cli.actor import AsOpt, whoami
from mailer.cli.common import JsonOpt, ReleaseId, out, print_json, runtime
from mailer.domain.conversations import FollowUpFilter
from mailer.releases import cadence, lift_note, threads
from mailer.releases.plan import renderer_for
from mailer.releases.source import read_text_file
from mailer.store.db import transaction
from mailer.store.tables import Release

__all__ = ["add_commands"]


def add_commands(group: typer.Typer) -> None:
    """Add these commands to ``group`` (the ``releases`` group), in --help order."""
    group.command("correct")(releases_correct)
    group.command("withdraw")(releases_withdraw)
    group.command("follow-up")(releases_follow_up)
    group.command("lift-note")(releases_lift_note)
    group.command("lift-cap")(releases_lift_cap)


def _summary(release: Release) -> dict[str, Any]:
    return {
        "id": release.id,
        "title": release.title,
        "status": release.status,
        "kind": release.kind,
        "parent": release.parent_id,
        "subject": release.subject,
    }


def _said(release: Release, what: str) -> None:
    out.print(
        f"created release {release.id} (draft): {what} of release {release.parent_id}; "
        f"submit and approve it as any release",
        highlight=False,
    )


def releases_correct(
    release_id: ReleaseId,
    file: Annotated[
        Path,
        typer.Argument(help="The correction: Markdown with TOML front matter (client, template, segments optional)."),
    ],
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a correction of a release that went out: to exactly those who got it (sent or
    unknown), minus anyone suppressed since, each threaded under the message they got; the
    original's pending rows are cancelled now. The subject starts with CORRECTION:
    (config: conversations.correction_prefix)."""
    _answer(threads.correct, release_id, read_text_file(file), actor, as_json, "correction")


def releases_withdraw(
    release_id: ReleaseId,
    note: Annotated[str, typer.Option("--note", help="Why it is withdrawn: the message's text (Markdown).")],
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a withdrawal of a release that went out: the note, to exactly those who got it
    (sent or unknown), threaded under the message they got; the original's pending rows
    are cancelled now. The subject starts with WITHDRAWN: (config: conversations.withdrawal_prefix)."""
    _answer(threads.withdraw, release_id, note, actor, as_json, "withdrawal")


def _answer(
    make: Callable[..., Release], release_id: int, text: str, actor: str | None, as_json: bool, what: str
) -> None:
    """Create a correction or withdrawal (``make``) of ``release_id`` as ``actor``; print it."""
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        author = permits.cli_actor(session, given, permits.Action.WRITE)
        release = make(
            session,
            release_id,
            text,
            author=author,
            renderer=renderer_for(rt.settings),
            settings=rt.settings,
            now=rt.clock(),
        )
        summary = _summary(release)
    if as_json:
        print_json(summary)
    else:
        _said(release, what)


def releases_follow_up(
    release_id: ReleaseId,
    file: Annotated[
        Path,
        typer.Argument(help="The follow-up: Markdown with TOML front matter (client, template, segments optional)."),
    ],
    only: Annotated[
        FollowUpFilter | None,
        typer.Option(
            "--only",
            help="no-reply: only those who did not reply; no-download: only those who did not download the kit."
            " Default: only those who did neither.",
        ),
    ] = None,
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a follow-up of a release that went out: to its sent recipients, threaded under
    the message each got, skipping anyone unsubscribed (suppressed) or held (out of office)
    since, and those who replied or downloaded the kit (see --only)."""
    text = read_text_file(file)
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        author = permits.cli_actor(session, given, permits.Action.WRITE)
        release = threads.follow_up(
            session,
            release_id,
            text,
            author=author,
            renderer=renderer_for(rt.settings),
            settings=rt.settings,
            now=rt.clock(),
            only=only or FollowUpFilter.NO_RESPONSE,
        )
        summary = {**_summary(release), "only": release.follow_up_filter}
    if as_json:
        print_json(summary)
    else:
        _said(release, "follow-up")


def releases_lift_note(
    release_id: ReleaseId,
    body: Annotated[
        Path | None,
        typer.Option("--body", help="The note's text (Markdown). Default: the embargo lifted, the newsroom link."),
    ] = None,
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create the "embargo lifted" note of an embargoed release that went out: a follow-up to
    everyone it was sent to (minus anyone unsubscribed or away since), threaded under the
    message each got, to be sent at the lift. Submit and approve it as any release."""
    text = read_text_file(body) if body is not None else None
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        author = permits.cli_actor(session, given, permits.Action.WRITE)
        release = lift_note.lift_note(
            session,
            release_id,
            body=text,
            author=author,
            renderer=renderer_for(rt.settings),
            settings=rt.settings,
            now=rt.clock(),
        )
        summary = {**_summary(release), "send_at": release.send_at.isoformat() if release.send_at else None}
    if as_json:
        print_json(summary)
    else:
        out.print(
            f"created release {release.id} (draft): embargo-lifted note of release {release.parent_id}, "
            f"to be sent at the lift ({summary['send_at']}); submit and approve it as any release",
            highlight=False,
        )


def releases_lift_cap(
    release_id: ReleaseId,
    actor: Annotated[
        str,
        typer.Option(
            "--as", help="The approver who lifts it (once user accounts exist, an enabled admin or approver)."
        ),
    ],
    note: Annotated[str | None, typer.Option("--note", help="Why (kept in the release's history).")] = None,
    as_json: JsonOpt = False,
) -> None:
    r"""Lift the cadence cap (\[cadence] max_per_contact) for one release: its capped rows are
    queued again (a finished release goes back to sending), and later planning caps nobody.
    Recorded in the release's history."""
    with runtime() as rt, transaction(rt.sessions) as session:
        who = permits.cli_actor(session, actor, permits.Action.LIFT_CAP)
        count = cadence.lift_cap(session, release_id, actor=who, now=rt.clock(), note=note)
    if as_json:
        print_json({"id": release_id, "cap_lifted_by": who, "requeued": count})
    else:
        out.print(f"cadence cap lifted for release {release_id} by {who}; {count} capped rows queued", highlight=False)
