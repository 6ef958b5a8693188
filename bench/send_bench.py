"""End-to-end send benchmark: `mailer run --once` workers → a local SMTP sink, with
per-recipient rendering and ledger recording, on SQLite and PostgreSQL.

    .venv/bin/python bench/send_bench.py [--recipients 100000] [--backend sqlite|postgres|both]
                                         [--workers 1 2] [--memory-check 10000] [--json]

For each configuration the bench creates a fresh database (SQLite file in a temp dir, or
``mailer_bench_xxx`` on the PostgreSQL at 127.0.0.1:5432), inserts N fictional contacts in
bulk, creates an approved release and *plans it before the timer starts* (planning is not
measured). It then starts the worker processes and measures:

- messages/s over the workers' wall time (process start to last exit) and over the send
  phase (first to last ``sent_at`` in the ledger);
- time to first message: worker start → earliest ``sent_at`` (results are recorded in
  small batches, so this is when the first batch was recorded: an upper bound);
- peak RSS (VmHWM) of each worker process, polled from /proc;
- CPU per message: user + system CPU of the workers and every process they started and
  reaped (the render processes), from ``getrusage(RUSAGE_CHILDREN)`` of this process
  before and after, over N; "own" is the workers' processes alone (the last /proc sample
  before they exited). This is the figure that does not move with the machine's speed.

The sink is Postfix's smtp-sink from ``/work/shared/tools/smtp-reference`` (same arguments,
plus ``-c`` so it counts the messages it accepted); when that is unavailable an aiosmtpd
sink is used and the output says so. ``smtp-reference source`` runs right before and after
each configuration, twice each time: with source and sink pinned to one CPU ("shared",
``taskset -c 0``) and apart (sink on CPU 0, source on CPU 1); the sink goes back to every
CPU for the engine's run. The engine's speed is reported as a ratio to the mean of each
(the machine is noisy: only ratios taken in the same run mean anything, and the reference
itself moves ~2x with placement, so both are shown).

``--source DIR`` runs the workers from another source tree (``PYTHONPATH``), for
before/after runs; ``MAILER_*`` variables of the bench's environment reach the workers
(e.g. ``MAILER_SMTP__EVENT_LOOP=asyncio``).

At the end of every run the ledger must show every row ``sent`` exactly once (one attempt,
one ``sent`` event) and the sink must have counted exactly N messages, else the bench fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import func, insert, literal, select

from mailer import store
from mailer.config import DatabaseSettings, Settings
from mailer.domain.states import ReleaseStatus, email_hash
from mailer.engine.dispatch import Dispatcher
from mailer.message import Renderer
from mailer.releases.plan import build_send_plan
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store import db
from mailer.store.tables import Approval, Client, Contact, Delivery, DeliveryEvent, ListMember, Release, ReleaseSegment

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path("/work/shared/tools/smtp-reference")
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
NOW = datetime.now(UTC)

PARAGRAPH = (
    "Researchers at the Harbor Institute reported on Tuesday that the new coastal monitoring "
    "network recorded a {{ attributes.metric | default('12 percent') }} change in sediment "
    "transport over the past season, a result that {{ outlet | default('your outlet') }} "
    "readers following the regional climate story will recognise from last year's floods."
)
BODY = "\n\n".join(
    [
        "Dear {{ first_name | default('colleague') }},",
        "**What:** Briefing on the annual maritime security report, with live Q&A.",
        "**When:** Tuesday, 10:00–11:00 EST. **Where:** 12 Quay Street, Portsmouth, and online",
        *[PARAGRAPH] * 4,
        "## Key findings",
        "- Port inspections rose in four of five harbours\n- Coverage reached 92% of the coast",
        "> \u201cThis is the clearest picture we have had of the coast,\u201d said Dr. Jane Roe.",
        "Full report: <https://harbor.example.org/report>.",
    ]
)
FIRST = ["Ann", "Bo", "Chloé", "Dmitri", "Eun-ji", "Farah", "Gus", "Hana", "Iñaki", ""]
OUTLETS = ["Daily Planet", "The Examplia Times", "Coastal Radio", "", "Springfield Herald"]
DOMAINS = ["example.com", "example.org", "example.net"]


# --- the SMTP sink and the reference sender ----------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no SMTP sink answered on port {port}")


@dataclass
class Sink:
    """A running sink process; ``count()`` is the number of messages it accepted."""

    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def count(self) -> int:
        text = self.log.read_bytes().decode("ascii", "replace")
        found = re.findall(r"mesg=(\d+)", text) if self.kind == "smtp-sink" else re.findall(r"(\d+)", text)
        return int(found[-1]) if found else 0

    def reset(self) -> None:
        self.log.write_bytes(b"")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


AIOSMTPD_SINK = """
import asyncio, sys
from aiosmtpd.controller import Controller
class Count:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        if Count.n % 100 == 0 or Count.n < 100:
            with open(sys.argv[2], "w") as fh: fh.write(str(Count.n))
        return "250 OK"
    async def handle_QUIT(self, server, session, envelope):
        with open(sys.argv[2], "w") as fh: fh.write(str(Count.n))
        return "221 Bye"
c = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1])); c.start()
import time
while True:
    time.sleep(0.5)
    with open(sys.argv[2], "w") as fh: fh.write(str(Count.n))
"""


def start_sink(workdir: Path) -> Sink:
    """Postfix's smtp-sink (counting with -c), or an aiosmtpd sink when it is unavailable."""
    port = free_port()
    log = workdir / "sink.log"
    root = reference_root()
    if root is not None:
        env = dict(os.environ, LD_LIBRARY_PATH=str(root / "usr/lib/postfix"))
        cmd = [str(root / "usr/sbin/smtp-sink"), "-c", "-u", "nobody", f"127.0.0.1:{port}", "1024"]
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env)
        kind = "smtp-sink"
    else:
        proc = subprocess.Popen([sys.executable, "-c", AIOSMTPD_SINK, str(port), str(log)])
        kind = "aiosmtpd (fallback: Postfix smtp-sink unavailable)"
    wait_for_port(port)
    return Sink(kind, port, proc, log)


def reference_root() -> Path | None:
    """The folder holding Postfix's smtp-sink/smtp-source (unpacked on first use), or None."""
    if not REFERENCE.exists():
        return None
    # Any call, `path` included, unpacks the package on first use.
    done = subprocess.run([str(REFERENCE), "path"], capture_output=True, text=True, check=False)
    root = Path(done.stdout.strip())
    return root if done.returncode == 0 and (root / "usr/sbin/smtp-sink").exists() else None


def reference_rate(port: int, n: int, cpu: str | None = None) -> float | None:
    """smtp-source's messages/s over one reused session against the sink, or None.
    ``cpu``: run smtp-source pinned to these CPUs (``taskset -c``)."""
    if reference_root() is None:
        return None
    pin = ["taskset", "-c", cpu] if cpu is not None and shutil.which("taskset") else []
    done = subprocess.run(
        [*pin, str(REFERENCE), "source", str(port), str(n)], capture_output=True, text=True, check=False
    )
    match = re.search(r"smtp-source (\d+)", done.stdout)
    return float(match.group(1)) if match else None


def pin(pid: int, cpus: str) -> None:
    """Move a running process (the sink) to ``cpus`` (``taskset -p -c``); no-op without taskset."""
    if shutil.which("taskset"):
        subprocess.run(["taskset", "-p", "-c", cpus, str(pid)], capture_output=True, check=False)


@dataclass
class Reference:
    """smtp-source against the sink with both on CPU 0 ("shared") and on CPUs 0 and 1
    ("apart"); the sink goes back to every CPU afterwards."""

    shared: float | None
    apart: float | None


def reference(sink: Sink, n: int) -> Reference:
    cpus = os.cpu_count() or 1
    if cpus < 2:
        rate = reference_rate(sink.port, n)
        return Reference(rate, rate)
    try:
        pin(sink.proc.pid, "0")
        shared = reference_rate(sink.port, n, "0")
        apart = reference_rate(sink.port, n, "1")
    finally:
        pin(sink.proc.pid, f"0-{cpus - 1}")
    return Reference(shared, apart)


# --- the database: contacts, an approved release, planned -----------------------------------


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh, upgraded database URL of this backend; dropped afterwards."""
    if backend == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:6]}.db"
        url = f"sqlite:///{path}"
        yield _upgraded(url)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"mailer_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _upgraded(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _upgraded(url: str) -> str:
    engine = db.make_engine(DatabaseSettings(url=url))
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()
    return url


def bench_settings(url: str, sink_port: int) -> Settings:
    return Settings.model_validate(
        {
            "database": {"url": url},
            "smtp": {"host": "127.0.0.1", "port": sink_port},
            "secret_key": "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            "paths": {"templates_dir": str(REPO / "templates")},
        }
    )


def insert_contacts(rt: Runtime, n: int) -> None:
    """N fictional journalists on the list ``press``, inserted in bulk (not measured):
    contacts in chunks of 10,000 rows (Core executemany, one transaction each, so memory
    stays flat at 1,000,000), then the whole list in one INSERT ... SELECT."""
    chunk = 10_000
    with db.transaction(rt.sessions) as session:
        mlist = store.ensure_list(session, "press", name="Press", now=NOW)
        list_id = mlist.id
    for start in range(0, n, chunk):
        rows = []
        for i in range(start, min(n, start + chunk)):
            email = f"journalist{i:06d}@{DOMAINS[i % 3]}"
            rows.append(
                {
                    "email": email,
                    "email_hash": email_hash(email),
                    "first_name": FIRST[i % len(FIRST)] or None,
                    "last_name": f"Writer{i}",
                    "outlet": OUTLETS[i % len(OUTLETS)] or None,
                    "attributes": {"metric": f"{i % 30} percent"} if i % 3 else {},
                    "soft_bounce_score": 0,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
        with db.transaction(rt.sessions) as session:
            session.connection().execute(insert(Contact), rows)
    with db.transaction(rt.sessions) as session:  # a fresh database: every contact is on the list
        session.execute(
            insert(ListMember).from_select(
                ["list_id", "contact_id", "added_at"],
                select(literal(list_id), Contact.id, literal(NOW, ListMember.__table__.c.added_at.type)),
            )
        )


def approved_release(rt: Runtime) -> int:
    """An approved release of client ``harbor`` to segment ``list:press`` (as tests do)."""
    with db.transaction(rt.sessions) as session:
        client = Client(
            slug="harbor",
            name="Harbor Institute",
            from_name="Harbor Institute Press Office",
            from_address="press@harbor.example.org",
            reply_to="media@harbor.example.org",
            postal_address="12 Quay Street, Portsmouth, NH 03801, USA",
            disclosure="Distributed by Example PR LLP on behalf of the Harbor Institute.",
            created_at=NOW,
        )
        session.add(client)
        session.flush()
        release = Release(
            client_id=client.id,
            title="Annual maritime security report",
            subject="{{ first_name | default('News') }}: Harbor Institute report, embargoed until Tuesday",
            template="press_release",
            body=BODY,
            extra={"dateline": "PORTSMOUTH, N.H., Nov. 25, 2026"},
            status=ReleaseStatus.APPROVED.value,
            # Due now with no time limit (a release approved without a send time waits to be
            # scheduled since issue 21; tests/support/engine.py does the same).
            send_at=NOW,
            not_after=NOW + timedelta(days=3650),
            author="author@example.com",
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(release)
        session.flush()
        segment = store.save_segment(session, "press-all", "list:press", description=None, now=NOW)
        session.add(ReleaseSegment(release_id=release.id, segment_id=segment.id, position=0))
        session.flush()
        plan = build_send_plan(session, release.id, Renderer(rt.settings.paths.templates_dir), rt.settings)
        release.content_hash = plan.content_hash
        session.add(
            Approval(
                release_id=release.id, approver="approver@example.com", content_hash=plan.content_hash, approved_at=NOW
            )
        )
        return release.id


def prepare(settings: Settings, n: int) -> int:
    """Contacts, an approved release, planned into N queued deliveries. Returns its id."""
    rt = Runtime.open(settings)
    try:
        insert_contacts(rt, n)
        release_id = approved_release(rt)
        started = Dispatcher(rt, make_transport(settings.smtp)).plan_due()
        assert started == [release_id], started
        return release_id
    finally:
        rt.close()


# --- running and measuring the workers --------------------------------------------------------


def worker_env(
    settings: Settings,
    pool_size: int | None,
    batch_size: int | None,
    source: Path | None = None,
    dkim_key: Path | None = None,
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "MAILER_DATABASE__URL": settings.database.url,
        "MAILER_SMTP__HOST": settings.smtp.host,
        "MAILER_SMTP__PORT": str(settings.smtp.port),
        "MAILER_SECRET_KEY": "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "MAILER_PATHS__TEMPLATES_DIR": str(REPO / "templates"),
    }
    if pool_size is not None:
        env["MAILER_SMTP__POOL_SIZE"] = str(pool_size)
    if batch_size is not None:
        env["MAILER_RETRY__BATCH_SIZE"] = str(batch_size)
    if dkim_key is not None:  # every message DKIM-signed (the instance key, aligned with the From domain)
        env["MAILER_DKIM__KEY_FILE"] = str(dkim_key)
        env["MAILER_DKIM__SELECTOR"] = "bench"
        env["MAILER_DKIM__DOMAIN"] = "harbor.example.org"
    if source is not None:  # run the workers from another source tree (before/after runs)
        env["PYTHONPATH"] = str(source.resolve())
    for name, value in os.environ.items():  # e.g. MAILER_EVENT_LOOP
        if name.startswith("MAILER_") and name not in env:
            env[name] = value
    return env


def vm_hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu(pid: int) -> tuple[float, float] | None:
    """(own utime+stime, reaped children's cutime+cstime) of a process in seconds, from
    /proc/PID/stat; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:
        return None
    # fields[0] is the state (field 3); utime, stime, cutime, cstime are fields 14-17.
    own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    reaped = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    return own, reaped


def child_pids(pid: int) -> list[int]:
    """The live children of ``pid`` (every thread's /proc children list)."""
    found: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                found.extend(int(x) for x in fh.read().split())
    except OSError:
        pass
    return found


@dataclass
class Workers:
    wall_s: float
    peak_rss_mb: list[float]
    started_at: datetime
    outputs: list[str]
    #: CPU seconds (user + system) of the workers and every descendant they reaped
    #: (``getrusage(RUSAGE_CHILDREN)`` of this process, before and after)
    cpu_s: float
    #: of which the workers' own processes (the last /proc sample before each exited)
    worker_own_cpu_s: float


def run_workers(env: dict[str, str], count: int, cwd: Path) -> Workers:
    """Start ``count`` `mailer run --once` processes; poll their VmHWM and CPU until all exit.

    CPU: nothing else this process starts is reaped while the workers run, so the change
    in ``RUSAGE_CHILDREN`` is the CPU of the workers plus every process they started and
    waited for (the render processes)."""
    started_at = datetime.now(UTC)
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mailer", "run", "--once", "--json"],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(count)
    ]
    peaks = [0] * count
    own = [0.0] * count
    live_children: dict[int, float] = {}
    ticks = 0
    while any(p.poll() is None for p in procs):
        for i, p in enumerate(procs):
            peaks[i] = max(peaks[i], vm_hwm_kib(p.pid) or 0)
            if ticks % 4 == 0:  # CPU every 0.2 s: the bench must not steal the workers' CPU
                sample = proc_cpu(p.pid)
                if sample is not None:
                    own[i] = sample[0]
                for child in child_pids(p.pid):
                    c = proc_cpu(child)
                    if c is not None:
                        live_children[child] = c[0] + c[1]
        ticks += 1
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    outputs = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"worker exited {p.returncode}: {err.decode()[-3000:]}")
        outputs.append(out.decode().strip())
    unreaped = sum(live_children.values()) - max(0.0, cpu - sum(own))
    if unreaped > 0.5:
        log(f"  note: children's CPU seen in /proc exceeds what was reaped by {unreaped:.1f}s")
    return Workers(wall, [round(k / 1024, 1) for k in peaks], started_at, outputs, cpu, sum(own))


@dataclass
class Ledger:
    statuses: dict[str, int]
    attempts_other_than_one: int
    sent_events: int
    first_sent: datetime
    last_sent: datetime
    release_status: str


def read_ledger(settings: Settings, release_id: int) -> Ledger:
    rt = Runtime.open(settings)
    try:
        with db.transaction(rt.sessions) as session:
            mine = Delivery.release_id == release_id
            statuses = dict(
                session.execute(select(Delivery.status, func.count()).where(mine).group_by(Delivery.status)).all()
            )
            odd = session.scalar(select(func.count()).where(mine, Delivery.attempts != 1)) or 0
            events = (
                session.scalar(
                    select(func.count())
                    .select_from(DeliveryEvent)
                    .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
                    .where(mine, DeliveryEvent.kind == "sent")
                )
                or 0
            )
            first, last = session.execute(
                select(func.min(Delivery.sent_at), func.max(Delivery.sent_at)).where(mine)
            ).one()
            release = session.get(Release, release_id)
            assert release is not None and first is not None and last is not None
            return Ledger(statuses, odd, events, first, last, release.status)
    finally:
        rt.close()


@dataclass
class RunResult:
    backend: str
    workers: int
    recipients: int
    pool_size: int | None
    batch_size: int | None
    wall_s: float
    msgs_per_s: float
    send_phase_msgs_per_s: float
    first_message_s: float
    peak_rss_mb: list[float]
    #: CPU (user + system) of the workers and their render processes per message, µs
    cpu_us_per_msg: float
    #: of which the worker processes themselves
    worker_own_us_per_msg: float
    #: smtp-source msgs/s before and after, source and sink on one CPU / on two
    reference_shared: list[float | None]
    reference_apart: list[float | None]
    ratio_shared: float | None
    ratio_apart: float | None
    sink_count: int
    verified: bool
    load_average: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def ratio(rate: float, refs: list[float | None]) -> float | None:
    known = [r for r in refs if r]
    return round(rate / (sum(known) / len(known)), 3) if known else None


def verify(ledger: Ledger, n: int, sink_count: int | None) -> list[str]:
    """What is wrong with the outcome (empty when every row was sent exactly once)."""
    problems = []
    if ledger.statuses != {"sent": n}:
        problems.append(f"ledger statuses {ledger.statuses}, expected {{'sent': {n}}}")
    if ledger.attempts_other_than_one:
        problems.append(f"{ledger.attempts_other_than_one} rows with attempts != 1")
    if ledger.sent_events != n:
        problems.append(f"{ledger.sent_events} 'sent' events, expected {n}")
    if ledger.release_status != ReleaseStatus.SENT.value:
        problems.append(f"release status {ledger.release_status!r}, expected 'sent'")
    if sink_count is not None and sink_count != n:
        problems.append(f"the sink accepted {sink_count} messages, expected {n}")
    return problems


def dkim_key_file(workdir: Path) -> Path:
    """A fresh 2048-bit RSA key for ``--dkim`` (openssl, as ``mailer clients dkim-key`` makes)."""
    key = workdir / "dkim-bench.pem"
    if not key.exists():
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    return key


def run_config(backend: str, workers: int, n: int, sink: Sink, workdir: Path, args: argparse.Namespace) -> RunResult:
    """One configuration, start to verified end."""
    with database(backend, workdir) as url:
        settings = bench_settings(url, sink.port)
        t = time.perf_counter()
        release_id = prepare(settings, n)
        log(f"  {backend}: {n} contacts inserted and planned in {time.perf_counter() - t:.1f}s (not measured)")
        before = reference(sink, args.reference_n)
        sink_before = sink.count()
        dkim_key = dkim_key_file(workdir) if args.dkim else None
        env = worker_env(settings, args.pool_size, args.batch_size, args.source, dkim_key)
        result = run_workers(env, workers, workdir)
        time.sleep(0.3)  # let the sink flush its counter
        sink_count = sink.count() - sink_before
        load = list(os.getloadavg())
        after = reference(sink, args.reference_n)
        ledger = read_ledger(settings, release_id)
    rate = n / result.wall_s
    phase = (ledger.last_sent - ledger.first_sent).total_seconds()
    problems = verify(ledger, n, sink_count)
    shared = [before.shared, after.shared]
    apart = [before.apart, after.apart]
    return RunResult(
        backend=backend,
        workers=workers,
        recipients=n,
        pool_size=args.pool_size,
        batch_size=args.batch_size,
        wall_s=round(result.wall_s, 2),
        msgs_per_s=round(rate, 1),
        send_phase_msgs_per_s=round(n / phase, 1) if phase > 0 else 0.0,
        first_message_s=round((ledger.first_sent - result.started_at).total_seconds(), 2),
        peak_rss_mb=result.peak_rss_mb,
        cpu_us_per_msg=round(result.cpu_s / n * 1e6, 1),
        worker_own_us_per_msg=round(result.worker_own_cpu_s / n * 1e6, 1),
        reference_shared=shared,
        reference_apart=apart,
        ratio_shared=ratio(rate, shared),
        ratio_apart=ratio(rate, apart),
        sink_count=sink_count,
        verified=not problems,
        load_average=[round(x, 2) for x in load],
        problems=problems,
    )


# --- output -------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(results: list[RunResult], sink_kind: str) -> str:
    head = (
        f"{'backend':<9}{'workers':>8}{'recipients':>11}{'msgs/s':>9}{'send-phase/s':>13}"
        f"{'CPU us/msg':>11}{'(own)':>7}{'1st msg s':>10}{'peak RSS MB':>13}"
        f"{'ref shared/s':>14}{'ratio':>6}{'ref apart/s':>13}{'ratio':>6}{'load':>6}  verified"
    )
    lines = [f"sink: {sink_kind}", head, "-" * len(head)]

    def refs(values: list[float | None]) -> str:
        return "/".join(str(int(x)) if x else "-" for x in values)

    def fmt(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "-"

    for r in results:
        rss = "/".join(f"{m:.0f}" for m in r.peak_rss_mb)
        ok = "yes" if r.verified else "NO: " + "; ".join(r.problems)
        lines.append(
            f"{r.backend:<9}{r.workers:>8}{r.recipients:>11}{r.msgs_per_s:>9.0f}{r.send_phase_msgs_per_s:>13.0f}"
            f"{r.cpu_us_per_msg:>11.0f}{r.worker_own_us_per_msg:>7.0f}{r.first_message_s:>10.2f}{rss:>13}"
            f"{refs(r.reference_shared):>14}{fmt(r.ratio_shared):>6}{refs(r.reference_apart):>13}"
            f"{fmt(r.ratio_apart):>6}{r.load_average[0] if r.load_average else 0:>6.1f}  {ok}"
        )
    lines.append("msgs/s: N / workers' wall time (process start to exit, planning excluded);")
    lines.append("send-phase/s: N / (last - first sent_at); CPU us/msg: user+system CPU of the workers and")
    lines.append("their render processes over N ((own): the worker processes alone); ref: smtp-source before/after,")
    lines.append("with the sink on the same CPU (shared) or on the other (apart); ratio: msgs/s over their mean;")
    lines.append("load: the 1-minute load average right after the workers exited.")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--recipients", type=int, default=100_000)
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="PostgreSQL worker counts (SQLite: 1)")
    p.add_argument(
        "--memory-check",
        type=int,
        default=10_000,
        metavar="N",
        help="also run SQLite, 1 worker, with N recipients to compare memory (0: skip)",
    )
    p.add_argument("--pool-size", type=int, default=None, help="MAILER_SMTP__POOL_SIZE (default: the setting's)")
    p.add_argument("--batch-size", type=int, default=None, help="MAILER_RETRY__BATCH_SIZE (default: the setting's)")
    p.add_argument("--reference-n", type=int, default=20_000, help="messages per smtp-source reference run")
    p.add_argument("--source", type=Path, default=None, help="run the workers from this source tree (PYTHONPATH)")
    p.add_argument("--dkim", action="store_true", help="sign every message with a fresh 2048-bit DKIM key")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    return p.parse_args(argv)


def configurations(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    plan: list[tuple[str, int, int]] = []
    if args.memory_check and args.backend in ("sqlite", "both") and args.memory_check != args.recipients:
        plan.append(("sqlite", 1, args.memory_check))
    if args.backend in ("sqlite", "both"):
        plan.append(("sqlite", 1, args.recipients))
    if args.backend in ("postgres", "both"):
        plan.extend(("postgres", w, args.recipients) for w in args.workers)
    return plan


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="mailer-bench-"))
    sink = start_sink(workdir)
    log(f"sink: {sink.kind} on port {sink.port}")
    results: list[RunResult] = []
    try:
        for backend, workers, n in configurations(args):
            log(f"{backend}, {workers} worker(s), {n} recipients ...")
            result = run_config(backend, workers, n, sink, workdir, args)
            log(f"  {result.msgs_per_s:.0f} msgs/s, verified={result.verified} {result.problems or ''}")
            results.append(result)
    finally:
        sink.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps({"sink": sink.kind, "results": [asdict(r) for r in results]}, indent=2))
    else:
        print(table(results, sink.kind))
    return 0 if all(r.verified for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
