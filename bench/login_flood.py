"""One-click unsubscribe latency during a sign-in flood and a 150 msg/s send, on SQLite.

A real `mailer web` (uvicorn, its own process) serves a fresh SQLite database. While
``--threads`` threads post random addresses to ``/login`` as fast as they can, a
`mailer run --once` worker sends a planned release to a local SMTP sink at
``--send-rate`` messages a second (``smtp.rate_per_second``), and one client POSTs
RFC 8058 one-click unsubscribes (``/u/TOKEN``, a different delivery each time) every
50 ms. Reported: one-click p50/p95/p99/max and failures, the flood's requests and
answers, and what the worker sent during the window.

    .venv/bin/python bench/login_flood.py                      # 24 threads, 20 s, 150 msg/s
    .venv/bin/python bench/login_flood.py --distributed        # forged client IPs via a trusted proxy
    .venv/bin/python bench/login_flood.py --source /tmp/old    # serve another source tree (before/after)

``--distributed`` sets ``web.trusted_proxies = ["127.0.0.1"]`` and gives each flood
request a random ``X-Forwarded-For``, so the flood looks like many clients and only the
global limit can stop it. ``--source DIR`` runs the web server and the worker from
another checkout, with the schema taken back to revision 0002 for it.
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
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
from alembic import command
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from send_bench import REPO, bench_settings, database, free_port, prepare, start_sink, worker_env

from mailer.config import Settings
from mailer.message.tokens import Tokens
from mailer.runtime import Runtime
from mailer.store import db
from mailer.store.tables import Delivery

SECRET = "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=24, help="flooding threads (default 24)")
    p.add_argument("--seconds", type=float, default=20, help="measured window (default 20)")
    p.add_argument("--send-rate", type=float, default=150, help="worker messages/s; 0: no send (default 150)")
    p.add_argument("--distributed", action="store_true", help="forged client IPs through a trusted proxy")
    p.add_argument("--source", type=Path, default=None, help="serve `mailer web` from this source tree")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p.parse_args(argv)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def start_web(settings: Settings, port: int, args: argparse.Namespace, cwd: Path) -> subprocess.Popen[bytes]:
    env = {
        **worker_env(settings, None, None),
        "MAILER_WEB__HOST": "127.0.0.1",
        "MAILER_WEB__PORT": str(port),
        "MAILER_WEB__BASE_URL": f"http://127.0.0.1:{port}",
    }
    if args.distributed:
        env["MAILER_WEB__TRUSTED_PROXIES"] = '["127.0.0.1"]'
    if args.source is not None:
        env["PYTHONPATH"] = str(args.source.resolve())
    # The server's log goes to a file: a pipe nobody reads would fill and stall it.
    with (cwd / "web.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mailer", "web"], env=env, cwd=cwd, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=1)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log_text = (cwd / "web.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"mailer web did not start: {log_text}") from None
            time.sleep(0.1)


def sent_count(settings: Settings) -> int:
    rt = Runtime.open(settings, check_schema=False)
    try:
        with db.transaction(rt.sessions) as session:
            return int(session.scalar(select(func.count()).where(Delivery.status == "sent")) or 0)
    finally:
        rt.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="login-flood-"))
    sink = start_sink(workdir)
    try:
        with database("sqlite", workdir) as url:
            settings = bench_settings(url, sink.port)
            recipients = int(args.send_rate * (args.seconds + 10)) if args.send_rate else 200
            release_id = prepare(settings, recipients)
            rt = Runtime.open(settings)
            with db.transaction(rt.sessions) as session:
                ids = list(session.scalars(select(Delivery.id).where(Delivery.release_id == release_id)))
            rt.close()
            tokens = Tokens(SECRET)
            links = [f"/u/{tokens.unsubscribe(i)}" for i in ids]
            random.shuffle(links)
            if args.source is not None:
                engine = db.make_engine(settings.database)
                command.downgrade(db._alembic_config(engine), "0002")
                engine.dispose()
            port = free_port()
            web = start_web(settings, port, args, workdir)
            base = f"http://127.0.0.1:{port}"
            stop = threading.Event()
            flood_codes: Counter[int] = Counter()
            flood_lock = threading.Lock()

            def flood() -> None:
                with httpx.Client(base_url=base, timeout=60) as client:
                    client.get("/login")
                    token = client.cookies.get("csrftoken") or ""
                    while not stop.is_set():
                        headers = {}
                        if args.distributed:
                            headers["X-Forwarded-For"] = f"198.{random.randint(0, 255)}.{random.randint(0, 255)}.7"
                        try:
                            r = client.post(
                                "/login",
                                data={"email": f"{uuid.uuid4().hex[:12]}@example.org", "password": "x" * 12,
                                      "csrftoken": token},
                                headers=headers,
                            )  # fmt: skip
                            code = r.status_code
                        except httpx.TransportError:
                            code = 0
                        with flood_lock:
                            flood_codes[code] += 1

            worker = None
            sent_before = sent_count(settings)
            latencies: list[float] = []
            failures: Counter[str] = Counter()
            with ThreadPoolExecutor(args.threads) as pool:
                for _ in range(args.threads):
                    pool.submit(flood)
                if args.send_rate:
                    env = {**worker_env(settings, None, None), "MAILER_SMTP__RATE_PER_SECOND": str(args.send_rate)}
                    if args.source is not None:
                        env["PYTHONPATH"] = str(args.source.resolve())
                    worker = subprocess.Popen(
                        [sys.executable, "-m", "mailer", "run", "--once", "--json"],
                        env=env,
                        cwd=workdir,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                time.sleep(1)  # let the flood and the worker get going
                window_start = time.monotonic()
                sent_start = sent_count(settings)
                with httpx.Client(base_url=base, timeout=60) as one_click:
                    i = 0
                    while time.monotonic() - window_start < args.seconds:
                        t0 = time.perf_counter()
                        try:
                            r = one_click.post(links[i % len(links)], data={"List-Unsubscribe": "One-Click"})
                            if r.status_code != 200:
                                failures[str(r.status_code)] += 1
                        except httpx.TransportError as exc:
                            failures[type(exc).__name__] += 1
                        latencies.append(time.perf_counter() - t0)
                        i += 1
                        time.sleep(0.05)
                window = time.monotonic() - window_start
                sent_window = sent_count(settings) - sent_start
                stop.set()
            if worker is not None:
                worker.terminate()
                worker.wait(30)
            web.terminate()
            web.wait(30)
            web_err = (workdir / "web.log").read_bytes()
            return {
                "server": str(args.source) if args.source else "this tree",
                "flood": {
                    "threads": args.threads,
                    "distributed": args.distributed,
                    "requests": sum(flood_codes.values()),
                    "per_s": round(sum(flood_codes.values()) / window),
                    "answers": dict(sorted(flood_codes.items())),
                },
                "send": {
                    "rate_setting": args.send_rate,
                    "sent_in_window": sent_window,
                    "msgs_per_s": round(sent_window / window, 1),
                    "sent_before_window": sent_start - sent_before,
                },
                "one_click": {
                    "requests": len(latencies),
                    "failures": dict(failures),
                    "p50_ms": round(statistics.median(latencies) * 1000, 1),
                    "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
                    "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
                    "max_ms": round(max(latencies) * 1000, 1),
                },
                "server_tracebacks": web_err.decode(errors="replace").count("Traceback"),
                "sink": sink.kind,
                "cwd": str(REPO),
            }
    finally:
        sink.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.pop("MAILER_CONFIG", None)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        oc, fl, se = result["one_click"], result["flood"], result["send"]
        print(f"server: {result['server']}; sink: {result['sink']}")
        print(
            f"flood: {fl['threads']} threads{' (distributed)' if fl['distributed'] else ''}, "
            f"{fl['requests']} requests ({fl['per_s']}/s), answers {fl['answers']}"
        )
        print(
            f"send: {se['sent_in_window']} messages in the window "
            f"({se['msgs_per_s']} msg/s, limit {se['rate_setting']})"
        )
        print(
            f"one-click: {oc['requests']} requests, failures {oc['failures'] or 'none'}, p50 {oc['p50_ms']} ms, "
            f"p95 {oc['p95_ms']} ms, p99 {oc['p99_ms']} ms, max {oc['max_ms']} ms"
        )
        print(f"server tracebacks: {result['server_tracebacks']}")
    return 0 if not result["one_click"]["failures"] and result["one_click"]["p99_ms"] < 500 else 1


if __name__ == "__main__":
    raise SystemExit(main())
