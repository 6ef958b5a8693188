"""GET /metrics (Prometheus text format, prometheus-client), served by ``mailer web``.

How the sender and inbound processes expose theirs: they **push to the database**.
Each ``mailer run`` and ``mailer bounces serve`` counts in memory
(:mod:`mailer.store.counters`) and adds its counts to shared rows with every heartbeat;
``mailer web`` serves the sums. With several sender machines there is one scrape target
and no port per process to open or discover. Everything else is read from the database
at scrape time (:mod:`mailer.store.ledger.metrics`). Web request latency is this web
process's own histogram.

==============================================  =========  ==============================
metric                                          type       what
==============================================  =========  ==============================
mailer_deliveries{status}                       gauge      delivery rows by status
mailer_queue_due                                gauge      queued/deferred rows due now
mailer_queue_oldest_due_seconds                 gauge      how long the oldest due row waits
mailer_send_rate_per_second                     gauge      rows sent over the last minute / 60
mailer_release_events_total{release,kind}       counter    bounced/complained/replied/... (newest 50 releases)
mailer_breaker_trips_total                      counter    releases paused by the circuit breaker
mailer_lease_sweeps_total                       counter    sweeps that requeued expired leases (pushed)
mailer_lease_expiries_total{outcome}            counter    rows whose lease expired: requeued/unknown (pushed)
mailer_inbound_messages_total{kind}             counter    messages the inbound server recorded, by kind (pushed)
mailer_heartbeat_age_seconds{kind}              gauge      age of the newest sender/inbound heartbeat
mailer_web_request_duration_seconds{...}        histogram  this web process's request latency by route
==============================================  =========  ==============================
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.runtime import Runtime
from mailer.store import counters
from mailer.store import heartbeats as heartbeat_store
from mailer.store.ledger import metrics as ledger_metrics
from mailer.store.ledger.paging import read_only

#: The window of the send rate.
RATE_WINDOW_SECONDS = 60.0


class DatabaseCollector(Collector):
    """The metrics read from the database at each scrape (see the module docstring)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        now = self.rt.clock()
        with read_only(self.rt.sessions) as session:
            by_status = ledger_metrics.deliveries_by_status(session)
            queue = ledger_metrics.queue_state(session, now)
            sent = ledger_metrics.sent_since(session, ledger_metrics.window(now, RATE_WINDOW_SECONDS))
            events = ledger_metrics.events_per_release(session)
            trips = ledger_metrics.breaker_trips(session)
            pushed = counters.all_counts(session)
            beats = heartbeat_store.latest_beats(session)
        deliveries = GaugeMetricFamily("mailer_deliveries", "Delivery rows by status.", labels=["status"])
        for status, count in sorted(by_status.items()):
            deliveries.add_metric([status], count)
        yield deliveries
        yield GaugeMetricFamily("mailer_queue_due", "Queued or deferred rows due now.", value=queue.due)
        yield GaugeMetricFamily(
            "mailer_queue_oldest_due_seconds", "How long the oldest due row has waited.", value=queue.oldest_due_seconds
        )
        yield GaugeMetricFamily(
            "mailer_send_rate_per_second",
            "Rows sent over the last minute, per second.",
            value=sent / RATE_WINDOW_SECONDS,
        )
        per_release = CounterMetricFamily(
            "mailer_release_events",
            "Bounces, complaints, replies, unsubscribes per release.",
            labels=["release", "kind"],
        )
        for release_id, kind, count in events:
            per_release.add_metric([str(release_id), kind], count)
        yield per_release
        yield CounterMetricFamily("mailer_breaker_trips", "Releases paused by the circuit breaker.", value=trips)
        families: dict[str, CounterMetricFamily] = {}
        for name, labels, value in pushed:
            family = families.get(name)
            if family is None:
                family = families[name] = CounterMetricFamily(
                    f"mailer_{name}", f"{name} (pushed by the sender and inbound processes).", labels=sorted(labels)
                )
            family.add_metric([labels[k] for k in sorted(labels)], value)
        yield from families.values()
        ages = GaugeMetricFamily("mailer_heartbeat_age_seconds", "Age of the newest heartbeat.", labels=["kind"])
        for kind, at in sorted(beats.items()):
            ages.add_metric([kind], max((now - at).total_seconds(), 0.0))
        yield ages


class Metrics:
    """One web process's registry: the database collector and the request histogram."""

    def __init__(self, rt: Runtime) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DatabaseCollector(rt))
        self.latency = Histogram(
            "mailer_web_request_duration_seconds",
            "Web request latency by method, route and status class.",
            ["method", "route", "status"],
            registry=self.registry,
        )


def _route_path(routes: Sequence[BaseRoute], scope: Scope) -> str | None:
    """The path template of the route among ``routes`` that fully matches ``scope``,
    looking inside included routers (FastAPI keeps their routes on ``original_router``)."""
    for route in routes:
        match, child = route.matches(scope)
        if match is not Match.FULL:
            continue
        inner = getattr(route, "original_router", None)
        if inner is not None:
            return _route_path(inner.routes, {**scope, **child})
        return str(getattr(route, "path", "")) or None
    return None


class RequestLatency:
    """ASGI middleware observing every HTTP request's duration in ``histogram``, by route
    template (never the raw path: ids and tokens would make unbounded series)."""

    def __init__(self, app: ASGIApp, *, histogram: Histogram, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.histogram = histogram
        self.routes = routes

    def route_of(self, scope: Scope) -> str:
        """The template of the route ``scope`` matches (``/releases/{release_id}``), else
        ``unmatched``. (The scope the router annotates is a copy made by inner middleware.)"""
        return _route_path(self.routes, scope) or "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = self.route_of(scope)
            self.histogram.labels(scope["method"], route, f"{status // 100}xx").observe(time.perf_counter() - started)
