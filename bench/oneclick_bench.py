"""One-click unsubscribe latency: 8 concurrent clients during a send, SQLite and PostgreSQL.

A real `mailer web` (uvicorn, its own process) serves a fresh database; a
`mailer run --once` worker sends a planned release to a local SMTP sink (Postfix's
smtp-sink) as fast as it can; ``--clients`` threads each POST RFC 8058 one-click
unsubscribes (``/u/TOKEN`` with ``List-Unsubscribe=One-Click``), every request for a
different delivery, back to back, for ``--seconds``. Reported per backend: p50/p95/p99/max,
failures, what the worker sent in the window, the web server's CPU time per request, the
load average, and a check that every delivery answered 200 has its ``unsubscribed`` event
and its suppression in the database (an answer must never run ahead of the commit).

    .venv/bin/python bench/oneclick_bench.py                          # both backends, 8 clients, 15 s
    .venv/bin/python bench/oneclick_bench.py --backend sqlite --seconds 10
    .venv/bin/python bench/oneclick_bench.py --source /tmp/main-tree  # serve another checkout (same schema)

Exit status 1 when a request failed, a 200 was not recorded, or p99 >= 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from send_bench import (
    NOW,
    Dispatcher,
    approved_release,
    bench_settings,
    database,
    free_port,
    insert_contacts,
    make_transport,
    start_sink,
    worker_env,
)

from mailer.config import Settings
from mailer.message.tokens import Tokens
from mailer.runtime import Runtime
from mailer.store import db
from mailer.store.tables import Delivery, DeliveryEvent, Release, Suppression

SECRET = "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--clients", type=int, default=8, help="concurrent one-click clients (default 8)")
    p.add_argument("--seconds", type=float, default=15, help="measured window (default 15)")
    p.add_argument("--recipients", type=int, default=30000, help="deliveries planned (default 30,000)")
    p.add_argument("--no-send", action="store_true", help="no worker: one-clicks alone")
    p.add_argument("--source", type=Path, default=None, help="serve `mailer web` from this source tree")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p.parse_args(argv)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def prepare(settings: Settings, n: int) -> int:
    """N contacts and an approved release due now, planned into N queued deliveries."""
    rt = Runtime.open(settings)
    try:
        insert_contacts(rt, n)
        release_id = approved_release(rt)
        with db.transaction(rt.sessions) as session:
            # Approved without a send time waits to be scheduled (issue 21): due now.
            release = session.get(Release, release_id)
            assert release is not None
            release.send_at = NOW
        started = Dispatcher(rt, make_transport(settings.smtp)).plan_due()
        assert started == [release_id], started
        return release_id
    finally:
        rt.close()


def start_web(settings: Settings, port: int, cwd: Path, source: Path | None) -> subprocess.Popen[bytes]:
    env = {
        **worker_env(settings, None, None),
        "MAILER_WEB__HOST": "127.0.0.1",
        "MAILER_WEB__PORT": str(port),
        "MAILER_WEB__BASE_URL": f"http://127.0.0.1:{port}",
    }
    if source is not None:
        env["PYTHONPATH"] = str(source.resolve())
    # The server's log goes to a file: a pipe nobody reads would fill and stall it.
    with (cwd / "web.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mailer", "web"], env=env, cwd=cwd, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=1)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log_text = (cwd / "web.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"mailer web did not start: {log_text}") from None
            time.sleep(0.1)


def count_sent(settings: Settings) -> int:
    rt = Runtime.open(settings, check_schema=False)
    try:
        with db.transaction(rt.sessions) as session:
            session.connection(execution_options={"sqlite_deferred": True})
            return int(session.scalar(select(func.count()).where(Delivery.status == "sent")) or 0)
    finally:
        rt.close()


def unrecorded(settings: Settings, delivery_ids: list[int]) -> int:
    """How many of ``delivery_ids`` lack their ``unsubscribed`` event or their suppression."""
    rt = Runtime.open(settings, check_schema=False)
    missing = 0
    try:
        with db.transaction(rt.sessions) as session:
            for start in range(0, len(delivery_ids), 500):
                chunk = delivery_ids[start : start + 500]
                with_event = set(
                    session.scalars(
                        select(DeliveryEvent.delivery_id).where(
                            DeliveryEvent.delivery_id.in_(chunk), DeliveryEvent.kind == "unsubscribed"
                        )
                    )
                )
                suppressed = set(
                    session.scalars(
                        select(Delivery.id)
                        .join(Suppression, Suppression.email_hash == Delivery.email_hash)
                        .where(Delivery.id.in_(chunk))
                    )
                )
                missing += sum(1 for d in chunk if d not in with_event or d not in suppressed)
    finally:
        rt.close()
    return missing


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="oneclick-bench-"))
    sink = start_sink(workdir)
    try:
        with database(backend, workdir) as url:
            settings = bench_settings(url, sink.port)
            release_id = prepare(settings, args.recipients)
            rt = Runtime.open(settings)
            with db.transaction(rt.sessions) as session:
                ids = list(session.scalars(select(Delivery.id).where(Delivery.release_id == release_id)))
            rt.close()
            random.Random(20).shuffle(ids)
            tokens = Tokens(SECRET)
            port = free_port()
            web = start_web(settings, port, workdir, args.source)
            base = f"http://127.0.0.1:{port}"
            worker = None
            if not args.no_send:
                env = worker_env(settings, None, None)
                if args.source is not None:
                    env["PYTHONPATH"] = str(args.source.resolve())
                worker = subprocess.Popen(
                    [sys.executable, "-m", "mailer", "run", "--once", "--json"],
                    env=env,
                    cwd=workdir,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(2)  # the worker's start-up, then it is sending
            # Each client takes every clients-th delivery: no two requests name the same one.
            shares = [ids[k :: args.clients] for k in range(args.clients)]
            lock = threading.Lock()
            latencies: list[float] = []
            failures: Counter[str] = Counter()
            answered: list[int] = []
            start_gate = threading.Barrier(args.clients + 1)
            deadline = [0.0]

            def client(share: list[int]) -> None:
                mine: list[float] = []
                ok: list[int] = []
                bad: Counter[str] = Counter()
                with httpx.Client(base_url=base, timeout=60) as http:
                    http.get("/login")  # connect before the window opens
                    start_gate.wait()
                    for delivery_id in share:
                        if time.monotonic() >= deadline[0]:
                            break
                        t0 = time.perf_counter()
                        try:
                            r = http.post(
                                f"/u/{tokens.unsubscribe(delivery_id)}", data={"List-Unsubscribe": "One-Click"}
                            )
                            if r.status_code == 200:
                                ok.append(delivery_id)
                            else:
                                bad[str(r.status_code)] += 1
                        except httpx.TransportError as exc:
                            bad[type(exc).__name__] += 1
                        mine.append(time.perf_counter() - t0)
                with lock:
                    latencies.extend(mine)
                    answered.extend(ok)
                    failures.update(bad)

            threads = [threading.Thread(target=client, args=(share,)) for share in shares]
            for t in threads:
                t.start()
            sent_start = count_sent(settings)
            load_start = os.getloadavg()
            cpu_start = cpu_seconds(web.pid)
            window_start = time.monotonic()
            deadline[0] = window_start + args.seconds
            start_gate.wait()
            for t in threads:
                t.join()
            window = time.monotonic() - window_start
            cpu_web = cpu_seconds(web.pid) - cpu_start
            load_end = os.getloadavg()
            sent_window = count_sent(settings) - sent_start
            worker_alive = worker is not None and worker.poll() is None
            if worker is not None:
                worker.terminate()
                worker.wait(30)
            web.terminate()
            web.wait(30)
            log_text = (workdir / "web.log").read_text(errors="replace")
            return {
                "backend": backend,
                "server": str(args.source) if args.source else "this tree",
                "clients": args.clients,
                "requests": len(latencies),
                "per_s": round(len(latencies) / window, 1),
                "failures": dict(failures),
                "unrecorded_200s": unrecorded(settings, answered),
                "p50_ms": round(statistics.median(latencies) * 1000, 1),
                "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
                "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
                "max_ms": round(max(latencies) * 1000, 1),
                "web_cpu_ms_per_request": round(cpu_web * 1000 / max(1, len(latencies)), 2),
                "sent_in_window": sent_window,
                "send_msgs_per_s": round(sent_window / window, 1),
                "worker_still_sending": worker_alive,
                "load_average": [round(load_start[0], 2), round(load_end[0], 2)],
                "server_tracebacks": log_text.count("Traceback"),
                "sink": sink.kind,
            }
    finally:
        sink.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.pop("MAILER_CONFIG", None)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [run_backend(b, args) for b in backends]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(
                f"{r['backend']}: {r['requests']} one-clicks ({r['per_s']}/s, {r['clients']} clients), "
                f"p50 {r['p50_ms']} / p95 {r['p95_ms']} / p99 {r['p99_ms']} / max {r['max_ms']} ms; "
                f"failures {r['failures'] or 'none'}; unrecorded 200s {r['unrecorded_200s']}; "
                f"web CPU {r['web_cpu_ms_per_request']} ms/request; sent in window {r['sent_in_window']} "
                f"({r['send_msgs_per_s']} msg/s, worker still sending at the end: {r['worker_still_sending']}); "
                f"load {r['load_average'][0]} -> {r['load_average'][1]}; tracebacks {r['server_tracebacks']}"
            )
    bad = any(r["failures"] or r["unrecorded_200s"] or r["p99_ms"] >= 100 for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
