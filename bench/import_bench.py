"""Contact-import benchmark: `mailer contacts import` of a large CSV against its own floor.

    .venv/bin/python bench/import_bench.py [--rows 1000000] [--backend sqlite|postgres|both]
                                           [--reimport] [--csv PATH] [--json]

Writes a fictional CSV of ``--rows`` rows (example.com/.org/.net addresses; names, outlets,
outlet types, 1-3 beats, tags on some, region, country, language, time zone, an
``embargo_ok`` flag on some, two free attributes; about 0.3% bad rows and 0.1% duplicates
of earlier lines, spread over the file), then, each in a fresh process:

* **floor**: what the import does before the database: the encoding pass, reading the
  rows, :func:`~mailer.audience.contactfields.parse_row` (which validates every address
  with email-validator). Another process times email-validator alone over the addresses,
  to show how much of the floor it is.
* **import**: ``python -m mailer contacts import FILE --list bench --json`` on a fresh
  database (a SQLite file in a temp dir; ``mailer_importbench_xxx`` on the PostgreSQL at
  127.0.0.1:5432, created and dropped), then checks the counts it printed and what the
  database holds (contacts, list members, search words). ``--reimport`` runs it a second
  time on the same database (every row an update).

Reported per run: wall seconds, CPU seconds of the process and of the children it reaped
(user + system, from ``wait4``: the import's parser process is counted; PostgreSQL's own
server CPU is not), peak RSS (``ru_maxrss``), and the
load average before and after. Rows per second and the ratio to the floor (wall / wall,
CPU / CPU) follow.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
REPO = Path(__file__).resolve().parent.parent
FIRST = ["Ana", "Ben", "Chloé", "Dana", "Elif", "Farid", "Gita", "Hugo", "Inès", "Jonas", "Kemal", "Lea", "Malik"]
FIRST += ["Nora", "Omar", "Pia", "Quentin", "Rosa", "Søren", "Tomás", "Uma", "Vera", "Wen", "Yusuf", "Zoë"]
SYLLABLES = [a + b for a in "bcdfgklmnprstvz" for b in "aeiou"][::3]
MASTHEADS = ["Times", "Post", "Radio", "Review", "Wire", "Ledger", "Courier", "Gazette", "Herald", "Tribune"]
TYPES = ["print", "tv", "radio", "online", "wire", "podcast", "newsletter", "magazine", "blog", "trade", "agency"]
BEATS = [f"beat-{i:02d}" for i in range(40)]
TAGS = ["freelance", "staff", "editor", "columnist", "vip", "local"]
REGIONS = ["us-east", "us-west", "eu", "uk", "latam", "mena", "apac", "africa"]
COUNTRIES = ["US", "GB", "DE", "FR", "ES", "BR", "MX", "JO", "IN", "JP", "ZA", "NL"]
LANGUAGES = ["en", "de", "fr", "es", "pt", "ar", "ja", "nl"]
ZONES = ["America/New_York", "America/Los_Angeles", "Europe/London", "Europe/Berlin", "Asia/Tokyo", ""]
TLDS = ["com", "org", "net"]
HEADER = (
    "email,first_name,last_name,outlet,outlet_type,beats,region,country,language,timezone,tags,embargo_ok,desk,phone"
)
BAD = [
    "not-an-address",  # no @-sign
    "two@@example.com",
    "",  # email is empty
]


@dataclass
class Expected:
    rows: int
    accepted: int
    rejected: int


def _surname(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).title()


def write_csv(path: Path, n: int, seed: int = 20) -> Expected:
    """``n`` data rows into ``path``; what the import should count. Per 1,000 lines: 2 bad
    addresses, 1 unknown outlet type, 1 duplicate of the line 1,999 lines earlier (another
    write batch), 1 ``+tag`` variant of the line before (a warning, imported)."""
    rng = random.Random(seed)
    rejected = 0
    recent: list[str] = [""] * 2000
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(HEADER + "\r\n")
        for i in range(n):
            first, last = rng.choice(FIRST), _surname(rng)
            email = f"{first.lower()[:1]}{last.lower()}{i:07d}@outlet{i % 5000}.example.{TLDS[i % 3]}"
            kind = i % 1000
            outlet_type = rng.choice(TYPES)
            if kind in (17, 517):
                email = BAD[(i // 1000) % len(BAD)]
                rejected += 1
            elif kind == 733:
                outlet_type = "broadsheet"
                rejected += 1
            elif kind == 271 and i >= 1999:
                email = recent[(i - 1999) % 2000].upper()  # line kind 272: always a good row
                rejected += 1
            elif kind == 400:
                local, _, domain = recent[(i - 1) % 2000].partition("@")
                email = f"{local}+news@{domain}"
            recent[i % 2000] = email
            cells = [
                email,
                first,
                last,
                f"{rng.choice(['The ', 'Daily ', ''])}{_surname(rng)} {rng.choice(MASTHEADS)}",
                outlet_type,
                "|".join(rng.sample(BEATS, rng.randint(1, 3))),
                rng.choice(REGIONS),
                rng.choice(COUNTRIES),
                rng.choice(LANGUAGES),
                rng.choice(ZONES),
                rng.choice(TAGS) if rng.random() < 0.3 else "",
                rng.choice(["", "", "", "true", "false"]),
                rng.choice(["metro", "night", "business", ""]),
                f"+1 555 {rng.randint(0, 9999999):07d}" if rng.random() < 0.5 else "",
            ]
            fh.write(",".join(cells) + "\r\n")
    return Expected(n, n - rejected, rejected)


# --- the floor: reading and validating, no database ---------------------------------------


def floor(path: Path) -> dict[str, Any]:
    """What the import does to ``path`` before any database work (run in its own process)."""
    from mailer.audience.contactfields import header_key, parse_row, unneutralize
    from mailer.audience.csvinput import detect_encoding, read_rows
    from mailer.domain.errors import InputError

    ok = rejected = 0
    encoding = detect_encoding(path)
    with path.open("rb") as fh:
        rows = read_rows(fh, encoding)
        _, header_cells, _ = next(rows)
        header = [header_key(unneutralize(h)) for h in header_cells or []]
        for line, cells, error in rows:
            if error is not None or cells is None:
                rejected += 1
                continue
            try:
                parse_row(line, header, cells)
            except InputError:
                rejected += 1
            else:
                ok += 1
    return {"parsed": ok, "rejected": rejected}


def validator_alone(path: Path) -> dict[str, Any]:
    """CPU seconds of email-validator alone (what parse_row calls once per row) over the
    addresses of ``path`` (run in its own process)."""
    from mailer.domain.addresses import normalize_email
    from mailer.domain.errors import InputError

    spent = 0.0
    with path.open(encoding="utf-8") as fh:
        next(fh)
        chunk: list[str] = []
        for text in fh:
            chunk.append(text.partition(",")[0])
            if len(chunk) == 10_000:
                spent += _validate(chunk, normalize_email, InputError)
                chunk = []
        spent += _validate(chunk, normalize_email, InputError)
    return {"email_validator_cpu_s": spent}


def _validate(addresses: list[str], normalize: Any, error: type[Exception]) -> float:
    cpu = time.process_time()
    for address in addresses:
        with contextlib.suppress(error):
            normalize(address)
    return time.process_time() - cpu


# --- running a process and measuring it --------------------------------------------------


@dataclass
class Run:
    what: str
    backend: str
    rows: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    load_before: float
    load_after: float
    output: str = ""


def measure(what: str, backend: str, rows: int, argv: list[str], env: dict[str, str], workdir: Path) -> Run:
    """Run ``argv`` and measure it: wall time, its own CPU and peak RSS (``wait4``)."""
    load_before = os.getloadavg()[0]
    out_path = workdir / f"{what}-{backend}.out"
    with out_path.open("wb") as out, (workdir / f"{what}-{backend}.err").open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=workdir)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{what} ({backend}) failed: {(workdir / f'{what}-{backend}.err').read_text()[-3000:]}")
    return Run(
        what,
        backend,
        rows,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        load_before=load_before,
        load_after=os.getloadavg()[0],
        output=out_path.read_text(encoding="utf-8"),
    )


@contextlib.contextmanager
def database(backend: str, workdir: Path) -> Iterator[str | None]:
    """The URL of a fresh, upgraded database (None when PostgreSQL does not answer)."""
    from sqlalchemy import Engine

    from mailer.config import DatabaseSettings
    from mailer.store import db

    def upgraded(url: str) -> None:
        engine: Engine = db.make_engine(DatabaseSettings(url=url))
        db.upgrade(engine)
        engine.dispose()

    if backend == "sqlite":
        url = f"sqlite:///{workdir / f'import-{uuid.uuid4().hex[:6]}.db'}"
        upgraded(url)
        yield url
        return
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        yield None
        return
    name = f"mailer_importbench_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgraded(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def check(url: str, result: dict[str, Any], expected: Expected, *, reimport: bool) -> None:
    """The import's own counts and what the database holds agree with the file."""
    from sqlalchemy import func, select

    from mailer.config import DatabaseSettings
    from mailer.store import db
    from mailer.store.tables import Contact, ContactTerm, ListMember

    accepted, updated = result["accepted"], result["updated"]
    rejected = result.get("rejected_total", len(result["rejected"]))
    want = (0, expected.accepted) if reimport else (expected.accepted, 0)
    problems = []
    if (accepted, updated) != want or rejected != expected.rejected:
        problems.append(f"counts {(accepted, updated, rejected)} != {(*want, expected.rejected)}")
    engine = db.make_engine(DatabaseSettings(url=url))
    with engine.connect() as conn:
        contacts = conn.scalar(select(func.count()).select_from(Contact))
        members = conn.scalar(select(func.count()).select_from(ListMember))
        unindexed = conn.scalar(
            select(func.count())
            .select_from(Contact)
            .where(~select(ContactTerm.contact_id).where(ContactTerm.contact_id == Contact.id).exists())
        )
    engine.dispose()
    if contacts != expected.accepted or members != expected.accepted or unindexed:
        problems.append(f"database: {contacts} contacts, {members} members, {unindexed} without search words")
    if problems:
        sys.exit("NO: " + "; ".join(problems))


def run_backend(
    backend: str, csv_path: Path, expected: Expected, workdir: Path, *, reimport: bool, keep_env: dict[str, str]
) -> list[Run]:
    runs: list[Run] = []
    with database(backend, workdir) as url:
        if url is None:
            print(f"{backend}: PostgreSQL did not answer, skipped", file=sys.stderr)
            return runs
        env = {**keep_env, "MAILER_DATABASE__URL": url}
        argv = [sys.executable, "-m", "mailer", "contacts", "import", str(csv_path), "--list", "bench", "--json"]
        for what in ["import", "reimport"] if reimport else ["import"]:
            run = measure(what, backend, expected.rows, argv, env, workdir)
            check(url, json.loads(run.output), expected, reimport=what == "reimport")
            run.output = ""
            runs.append(run)
            print(f"{backend} {what}: {run.wall_s:.1f} s wall, {run.cpu_s:.1f} s CPU", file=sys.stderr)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--reimport", action="store_true", help="import the same file again (all updates)")
    parser.add_argument("--csv", type=Path, help="keep the generated CSV here and reuse it when present")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor run")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--floor-of", type=Path, help=argparse.SUPPRESS)  # the floor's own process
    parser.add_argument("--validator-of", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_of is not None:
        print(json.dumps(floor(args.floor_of)))
        return
    if args.validator_of is not None:
        print(json.dumps(validator_alone(args.validator_of)))
        return
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    env["PYTHONPATH"] = str(REPO)
    with tempfile.TemporaryDirectory(prefix="importbench") as tmp:
        workdir = Path(tmp)
        csv_path = args.csv or workdir / "contacts.csv"
        meta = csv_path.with_suffix(".expected.json")
        if csv_path.exists() and meta.exists() and json.loads(meta.read_text())["rows"] == args.rows:
            expected = Expected(**json.loads(meta.read_text()))
        else:
            started = time.perf_counter()
            expected = write_csv(csv_path, args.rows)
            meta.write_text(json.dumps(asdict(expected)))
            print(f"wrote {csv_path} ({args.rows:,} rows) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        runs: list[Run] = []
        floor_data: dict[str, Any] = {}
        if not args.no_floor:
            run = measure(
                "floor", "-", args.rows, [sys.executable, __file__, "--floor-of", str(csv_path)], env, workdir
            )
            floor_data = json.loads(run.output)
            run.output = ""
            runs.append(run)
            argv = [sys.executable, __file__, "--validator-of", str(csv_path)]
            floor_data |= json.loads(measure("validator", "-", args.rows, argv, env, workdir).output)
            floor_data["cpu_s"] = run.cpu_s
            print(f"floor: {run.wall_s:.1f} s wall, {run.cpu_s:.1f} s CPU", file=sys.stderr)
        backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
        for backend in backends:
            runs += run_backend(backend, csv_path, expected, workdir, reimport=args.reimport, keep_env=env)
    report(runs, floor_data, args.json)


def report(runs: list[Run], floor_data: dict[str, Any], as_json: bool) -> None:
    base = next((r for r in runs if r.what == "floor"), None)
    if as_json:
        print(json.dumps({"runs": [asdict(r) for r in runs], "floor": floor_data}, indent=2))
        return
    print("| run | backend | rows | wall s | CPU s | rows/s (wall) | × floor (wall / CPU) | peak RSS | load avg |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        ratio = f"{r.wall_s / base.wall_s:.2f} / {r.cpu_s / base.cpu_s:.2f}" if base else "-"
        print(
            f"| {r.what} | {r.backend} | {r.rows:,} | {r.wall_s:.1f} | {r.cpu_s:.1f} | {r.rows / r.wall_s:,.0f} "
            f"| {ratio} | {r.peak_rss_mb:.0f} MB | {r.load_before:.1f} → {r.load_after:.1f} |"
        )
    if floor_data:
        share = floor_data["email_validator_cpu_s"] / max(floor_data["cpu_s"], 1e-9)
        print(f"\nemail-validator alone {floor_data['email_validator_cpu_s']:.1f} s CPU ({share:.0%} of the floor)")


if __name__ == "__main__":
    main()
