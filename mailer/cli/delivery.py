"""Commands of the delivery engine: run, report, log."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from mailer.cli.common import STATE, JsonOpt, ReleaseId, err, id_check, out, print_json, runtime
from mailer.domain.states import DeliveryStatus, ReleaseStatus
from mailer.engine.dispatch import Dispatcher
from mailer.engine.scheduler import run_forever
from mailer.engine.sender import SendProgress
from mailer.message.dkim import DkimSigner
from mailer.ops import heartbeat
from mailer.ops.logs import configure_logging
from mailer.ops.service import sender_jobs
from mailer.smtp.factory import make_transport
from mailer.smtp.loop import run as run_loop
from mailer.store import releases as release_store
from mailer.store import replies as reply_store
from mailer.store.db import transaction
from mailer.store.ledger.log import LogFilter, LogLine, delivery_log
from mailer.store.ledger.paging import MAX_PAGE
from mailer.store.ledger.report import ProblemCounts, release_report


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("report")(report)
    app.command("log")(log_cmd)


def run(
    once: Annotated[bool, typer.Option("--once", help="Do everything due now, wait for it, then exit.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Send approved releases when they are due (until stopped with Ctrl-C / SIGTERM)."""
    configure_logging(STATE.settings.log)
    paused: dict[int, str] = {}
    with runtime() as rt:
        DkimSigner.from_settings(rt.settings.dkim)  # a broken instance key stops here, before any send
        pool = make_transport(rt.settings.smtp)
        show_bar = once and not as_json and err.is_terminal
        bars = Progress(
            TextColumn("release {task.fields[release]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=err,
            disable=not show_bar,
        )
        tasks: dict[int, TaskID] = {}

        def on_progress(release_id: int, progress: SendProgress) -> None:
            # Called on the event loop: no database work here (the engine counted the total).
            if release_id not in tasks:
                tasks[release_id] = bars.add_task("send", total=progress.total, release=release_id, detail="")
            detail = ", ".join(f"{k} {v}" for k, v in sorted(progress.by_status.items()))
            bars.update(tasks[release_id], completed=progress.attempted, detail=detail)

        # Each release is signed with its client's key (else the instance [dkim] key).
        dispatcher = Dispatcher(rt, pool, on_progress=on_progress)

        async def main() -> int:
            try:
                if once:
                    return await dispatcher.run_once()
                await run_forever(dispatcher, extra_jobs=sender_jobs(rt))
                heartbeat.forget(rt, "sender")
                return 0
            finally:
                await pool.close()

        with bars:
            attempted = run_loop(main(), rt.settings.smtp.event_loop)
        finished = {rid: p.attempted for rid, p in dispatcher.progress.items()}
        if once and not as_json:
            with transaction(rt.sessions) as session:
                paused = {
                    rid: release.pause_reason or ""
                    for rid in sorted(finished)
                    if (release := release_store.get_release(session, rid)).status == ReleaseStatus.PAUSED.value
                }
    if as_json:
        print_json({"attempted": attempted, "releases": finished})
    elif once:
        for line in run_summary(attempted, dispatcher.progress, paused):
            out.print(line, markup=False, highlight=False)


#: How ``run --once`` names the state a tried message ended in.
_RESULT_WORDS = {
    DeliveryStatus.SENT.value: "sent",
    DeliveryStatus.QUEUED.value: "requeued",
    DeliveryStatus.DEFERRED.value: "deferred",
    DeliveryStatus.FAILED.value: "failed",
    DeliveryStatus.UNKNOWN.value: "unknown (may have arrived)",
    DeliveryStatus.SUPPRESSED.value: "suppressed",
    DeliveryStatus.CANCELLED.value: "cancelled",
}


def run_summary(claimed: int, progress: dict[int, SendProgress], paused: dict[int, str]) -> list[str]:
    """What ``run --once`` did, in words: how the tried messages ended (one refused for our
    own sender is requeued, not sent), how many claimed were never started (back in the
    queue), and which releases paused and why."""
    if claimed == 0 and not progress and not paused:
        return ["nothing was due"]
    counts: dict[str, int] = {}
    for p in progress.values():
        for status, n in p.by_status.items():
            counts[status] = counts.get(status, 0) + n
    parts = [f"{counts.pop(DeliveryStatus.SENT.value, 0)} sent"]
    parts += [f"{n} {_RESULT_WORDS.get(status, status)}" for status, n in sorted(counts.items()) if n]
    untried = claimed - sum(p.attempted for p in progress.values())
    if untried > 0:
        parts.append(f"{untried} not started (back in the queue)")
    line = ", ".join(parts)
    if progress:
        noun = "release" if len(progress) == 1 else "releases"
        line += f" in {noun} {', '.join(map(str, sorted(progress)))}"
    return [line, *(f"release {rid} paused: {reason}" for rid, reason in paused.items())]


def report(release_id: ReleaseId, as_json: JsonOpt = False) -> None:
    """Delivery report of one release: counts by status, by segment, by recipient domain;
    hard and soft bounces, complaints (rate against Gmail's 0.3% line) and refusals of
    our own sender, each apart; replies by kind (JSON: "replies")."""
    with runtime() as rt, transaction(rt.sessions) as session:
        data = release_report(session, release_id)
        replies = reply_store.reply_counts(session, release_id)
    if as_json:
        print_json({**asdict(data), "replies": replies})
        return
    out.print(f"[bold]release {data.release}[/]: {data.title} — {data.status}", highlight=False)
    if data.pause_reason:
        out.print(f"paused: {data.pause_reason}", highlight=False)
    statuses = [s.value for s in DeliveryStatus if s.value in data.counts]
    table = Table("", *statuses, "total")
    table.add_row("[bold]all[/]", *(str(data.counts[s]) for s in statuses), str(data.total))
    for name, counts in sorted(data.segments.items()):
        table.add_row(f"segment {name}", *(str(counts.get(s, 0)) for s in statuses), str(sum(counts.values())))
    out.print(table)
    dom = Table("domain", *statuses)
    for name, counts in data.domains.items():
        dom.add_row(name, *(str(counts.get(s, 0)) for s in statuses))
    out.print(dom)
    if data.waves:
        waves = Table("wave (UTC)", *statuses, "total")
        for wave in data.waves:
            waves.add_row(f"{wave.at:%Y-%m-%d %H:%M}", *(str(wave.counts.get(s, 0)) for s in statuses), str(wave.total))
        out.print(waves)
    for line in problem_lines(data.problems):
        out.print(line, highlight=False)
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(replies.items()))
    out.print(f"replies: {sum(replies.values())}" + (f" ({kinds})" if kinds else ""), highlight=False)
    out.print(f"press kit: {data.kit_downloads} downloads by {data.kit_downloaders} recipients", highlight=False)


def problem_lines(problems: ProblemCounts) -> list[str]:
    """The report's problem counts as lines (rich markup)."""
    rate = problems.complaint_rate
    shown = "-" if rate is None else f"{rate:.2%}"
    complaint = f"complaints: {problems.complaints} ({shown} of {problems.delivered} delivered"
    if problems.complaint_rate_high:
        complaint += "; [bold red]above Gmail's 0.3% line[/]"
    refusals = (
        f"sender-side refusals (our fault, no recipient blamed): {problems.sender_refusals} deliveries, "
        f"{problems.sender_refusal_events} refusals"
    )
    return [
        f"hard bounces: {problems.hard_bounces}",
        f"soft bounces: {problems.soft_bounces}",
        complaint + ")",
        refusals,
    ]


#: The most rows one `mailer log` prints (it reads them page by page).
MAX_LOG_ROWS = 10_000


def log_cmd(
    release: Annotated[
        int | None,
        typer.Option("--release", callback=id_check("release", see="mailer releases list"), help="Only this release."),
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only rows in this state.")] = None,
    segment: Annotated[str | None, typer.Option("--segment", help="Only this segment.")] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="This address (with @), or addresses containing this text.")
    ] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="Only this recipient domain.")] = None,
    after: Annotated[
        int | None,
        typer.Option(
            "--after",
            callback=id_check("delivery", lowest=0, see="mailer log"),
            help="Rows after this delivery id (paging).",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_LOG_ROWS, help=f"How many rows (1 to {MAX_LOG_ROWS:,}).")
    ] = 100,
    as_json: JsonOpt = False,
) -> None:
    """The delivery ledger: who got what, who bounced and why, what is still queued.

    --json prints {"rows": [...], "next_after": ID or null}: pass ID as --after for the next page."""
    if status is not None and status not in {s.value for s in DeliveryStatus}:
        raise typer.BadParameter(f"unknown status {status!r}", param_hint="--status")
    filters = LogFilter(release_id=release, status=status, segment=segment, domain=domain, email=email)
    rows: list[LogLine] = []
    next_after = after
    with runtime() as rt, transaction(rt.sessions) as session:
        # The ledger's pages hold at most MAX_PAGE rows: read as many as --limit asks.
        while len(rows) < limit:
            page = delivery_log(session, filters, after=next_after, limit=min(MAX_PAGE, limit - len(rows)))
            rows.extend(page.rows)
            next_after = page.next_after
            if next_after is None:
                break
    if as_json:
        print_json({"rows": [_log_json(r) for r in rows], "next_after": next_after})
        return
    table = Table("id", "release", "email", "segment", "status", "tries", "last reply")
    for r in rows:
        reply = (r.last_reply or r.reason or "")[:60]
        table.add_row(
            str(r.id), str(r.release_id), r.email or "(erased)", r.segment or "", r.status, str(r.attempts), reply
        )
    out.print(table)
    if next_after is not None:
        err.print(f"more: --after {next_after}")


def _log_json(r: LogLine) -> dict[str, object]:
    return {
        "id": r.id,
        "release": r.release_id,
        "email": r.email,
        "domain": r.domain,
        "segment": r.segment,
        "status": r.status,
        "attempts": r.attempts,
        "last_code": r.last_code,
        "last_reply": r.last_reply,
        "reason": r.reason,
        "message_id": r.message_id,
        "sent_at": r.sent_at.isoformat() if r.sent_at else None,
        "updated_at": r.updated_at.isoformat(),
    }
