"""The delivery log page: filters from the query string, keyset pages, CSV export;
each row links to the contact."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from mailer.domain.errors import InputError
from mailer.domain.states import DeliveryStatus
from mailer.store.ledger.log import LogFilter, LogLine, delivery_log
from mailer.store.ledger.release_list import segment_slugs
from mailer.web.staff.export import csv_response, csv_rows
from mailer.web.staff.forms import form_int, form_text, parse_when, query_string
from mailer.web.staff.view import PAGE_SIZE, CurrentUser, StaffView


@dataclass(frozen=True)
class LogQuery:
    """The delivery log's query string, parsed: filters, cursors, and what to show
    again in the form (``raw``)."""

    filters: LogFilter
    after: int | None
    before: int | None
    raw: dict[str, str]
    error: str | None


def parse_log_query(params: dict[str, str]) -> LogQuery:
    """Filters from the query string; a bad value is reported and dropped, not a 422."""
    raw = {k: params.get(k, "") for k in ("release", "status", "segment", "domain", "email", "since", "until")}
    errors: list[str] = []

    def attempt(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except InputError as exc:
            errors.append(str(exc))
            return None

    status = form_text(raw["status"]) if "\x00" not in raw["status"] else None
    if status is not None and status not in {s.value for s in DeliveryStatus}:
        errors.append(f"status: unknown status {status!r}")
        status = None
    filters = LogFilter(
        release_id=attempt(lambda: form_int(raw["release"], "release")),
        status=status,
        segment=attempt(lambda: form_text(raw["segment"])),
        domain=attempt(lambda: form_text(raw["domain"])),
        email=attempt(lambda: form_text(raw["email"])),
        since=attempt(lambda: parse_when(raw["since"], "since")),
        until=attempt(lambda: parse_when(raw["until"], "until")),
    )
    after = attempt(lambda: form_int(params.get("after"), "after"))
    before = attempt(lambda: form_int(params.get("before"), "before"))
    return LogQuery(filters, after, before, raw, "; ".join(errors) or None)


class LogPages:
    """``/log`` and ``/log.csv``."""

    def __init__(self, view: StaffView) -> None:
        self.view = view

    def log_page(self, request: Request, user: CurrentUser) -> Response:
        """The delivery log: filters, keyset pages; each row links to the contact."""
        parsed = parse_log_query(dict(request.query_params))
        with self.view.read() as session:
            page = delivery_log(session, parsed.filters, after=parsed.after, before=parsed.before, limit=PAGE_SIZE)
            segments = segment_slugs(session)
        context = {
            "page": page,
            "form": parsed.raw,
            "error": parsed.error,
            "statuses": [s.value for s in DeliveryStatus],
            "segments": segments,
            "query": query_string(parsed.raw),
        }
        return self.view.page(request, "staff/log.html", context, user=user)

    def log_csv(self, request: Request, user: CurrentUser) -> Response:
        """The filtered log as CSV (every matching row, streamed)."""
        filters = parse_log_query(dict(request.query_params)).filters
        header = (
            "id", "release", "email", "domain", "segment", "status", "attempts",
            "last_code", "last_reply", "reason", "message_id", "sent_at", "updated_at",
        )  # fmt: skip

        def row(r: LogLine) -> tuple[Any, ...]:
            return (
                r.id, r.release_id, r.email, r.domain, r.segment, r.status, r.attempts,
                r.last_code, r.last_reply, r.reason, r.message_id, r.sent_at, r.updated_at,
            )  # fmt: skip

        return csv_response(
            "deliveries.csv",
            csv_rows(
                self.view.runtime.sessions,
                lambda s, after: delivery_log(s, filters, after=after, limit=500),
                header,
                row,
            ),
        )
