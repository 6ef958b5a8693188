"""``mailer webhooks``: register endpoints, read the delivery log, POST what is due."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mailer.cli.actor import AsOpt, whoami
from mailer.cli.common import JsonOpt, err, id_check, out, print_json, runtime
from mailer.ops import webhooks
from mailer.store import webhooks as webhook_store
from mailer.store.db import transaction

webhooks_app = typer.Typer(help="Outgoing webhooks: signed POSTs of events to your URLs.", no_args_is_help=True)

WebhookId = Annotated[int, typer.Argument(metavar="ID", callback=id_check("webhook", see="mailer webhooks list"))]


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="The https:// URL to POST to.")],
    event: Annotated[
        list[str],
        typer.Option(
            "--event",
            help="An event type (repeatable): delivery.sent, delivery.bounced, delivery.complained, "
            "contact.unsubscribed, reply.received, release.* (or release.sent ...), or * for all.",
        ),
    ],
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a URL; prints its signing secret once (keep it: it verifies Mailer-Signature)."""
    with runtime() as rt, transaction(rt.sessions) as session:
        made = webhooks.register(session, url, event, actor=whoami(as_user), now=rt.clock())
    if as_json:
        print_json({"id": made.id, "secret": made.secret})
        return
    out.print(f"webhook {made.id} added; signing secret (shown once):", highlight=False)
    out.print(made.secret, markup=False, highlight=False)


@webhooks_app.command("list")
def webhooks_list(as_json: JsonOpt = False) -> None:
    """Every endpoint with its events and what waits or failed for it."""
    with runtime() as rt, transaction(rt.sessions) as session:
        rows = webhook_store.endpoints(session)
    if as_json:
        print_json(
            [
                {"id": e.id, "url": e.url, "events": e.events.split(), "active": e.active}
                | {"pending": e.pending, "failed": e.failed, "created_by": e.created_by}
                for e in rows
            ]
        )
        return
    table = Table("id", "url", "events", "active", "pending", "failed")
    for e in rows:
        table.add_row(str(e.id), e.url, e.events, "yes" if e.active else "no", str(e.pending), str(e.failed))
    out.print(table)


@webhooks_app.command("disable")
def webhooks_disable(webhook_id: WebhookId, as_user: AsOpt = None) -> None:
    """Stop queueing events for an endpoint (what is queued still goes)."""
    with runtime() as rt, transaction(rt.sessions) as session:
        webhooks.set_active(session, webhook_id, False, actor=whoami(as_user), now=rt.clock())
    out.print(f"webhook {webhook_id} disabled")


@webhooks_app.command("enable")
def webhooks_enable(webhook_id: WebhookId, as_user: AsOpt = None) -> None:
    """Queue events for a disabled endpoint again."""
    with runtime() as rt, transaction(rt.sessions) as session:
        webhooks.set_active(session, webhook_id, True, actor=whoami(as_user), now=rt.clock())
    out.print(f"webhook {webhook_id} enabled")


@webhooks_app.command("retry")
def webhooks_retry(webhook_id: WebhookId) -> None:
    """Queue an endpoint's given-up events again (after its receiver is fixed)."""
    with runtime() as rt, transaction(rt.sessions) as session:
        count = webhook_store.retry_failed(session, webhook_id, now=rt.clock())
    out.print(f"{count} event(s) queued again for webhook {webhook_id}")


@webhooks_app.command("log")
def webhooks_log(
    webhook_id: Annotated[
        int | None, typer.Option("--webhook", callback=id_check("webhook"), help="Only this endpoint.")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="pending, delivered or failed.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The delivery log: events queued for endpoints, newest first, with attempts and the last answer."""
    with runtime() as rt, transaction(rt.sessions) as session:
        rows = webhook_store.outbox(session, endpoint_id=webhook_id, status=status, limit=limit)
    if as_json:
        print_json(
            [
                {"id": r.id, "webhook": r.endpoint_id, "event": r.event, "event_id": r.event_id, "status": r.status}
                | {"attempts": r.attempts, "last_code": r.last_code, "last_error": r.last_error}
                | {"next_attempt_at": r.next_attempt_at.isoformat(), "created_at": r.created_at.isoformat()}
                for r in rows
            ]
        )
        return
    table = Table("id", "webhook", "event", "status", "attempts", "last answer", "queued")
    for r in rows:
        answer = str(r.last_code or "") or (r.last_error or "")[:60]
        table.add_row(
            str(r.id), str(r.endpoint_id), r.event, r.status, str(r.attempts), answer, f"{r.created_at:%Y-%m-%d %H:%M}"
        )
    out.print(table)


@webhooks_app.command("deliver")
def webhooks_deliver(as_json: JsonOpt = False) -> None:
    """POST what is due now, once (`mailer run` does this every webhooks.poll_seconds)."""
    with runtime() as rt:
        count = webhooks.deliver_due(rt)
    if as_json:
        print_json({"posted": count})
    else:
        err.print(f"{count} POST(s) made")
