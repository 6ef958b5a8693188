"""Render throughput: compiled variants + hand-assembled MIME vs. the naive EmailMessage path,
and the same messages rendered in the render process (``mailer.message.isolated``).

Renders N personalized messages (~8-10 KB, text + HTML) alternating between two variants
(a press release and a media advisory) on one core, then renders a smaller number the
naive way — the same Jinja output put into ``email.message.EmailMessage`` with
``policy.default`` — in the same run, and reports both rates and their ratio (only ratios
taken in one run mean anything on a shared machine).

Then the render process: ``RenderWorker.run`` in batches of ``--batch`` messages,
``AsyncRenderer`` driven by ``--senders`` concurrent coroutines each awaiting one message
(as the engine's connections drove it before issue 20), and ``AsyncRenderer`` asked for
``--batch`` messages at once (as the engine's render-ahead asks, issue 20). For those,
"caller CPU" is the CPU time of this process (event loop and exchange thread) per
message: what rendering still costs the sending process; "render process CPU" is the
child's (``/proc/PID/stat`` utime + stime), and "total" their sum.

    .venv/bin/python bench/render_bench.py [--n 20000] [--naive-n 2000] [--batch 100] [--senders 4]
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import os
import statistics
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

from mailer.message import (
    AsyncRenderer,
    Recipient,
    Renderer,
    RenderJob,
    RenderLimits,
    RenderWorker,
    Sender,
    Speaker,
    Variant,
    VariantSpec,
)

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
DATE = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
SMTP_POLICY = email.policy.default.clone(linesep="\r\n")

PARAGRAPH = (
    "Researchers at the Acme Institute reported on Tuesday that the new coastal monitoring "
    "network recorded a {{ attributes.metric | default('12 percent') }} change in sediment "
    "transport over the past season, a result that {{ outlet | default('your outlet') }} "
    "readers following the regional climate story will recognise from last year's floods."
)

BODY = "\n\n".join(
    [
        "Hello {{ first_name | default('there') }},",
        "**What:** Briefing on the 2025 coastal monitoring results, with live Q&A.",
        "**When:** Tuesday, March 4, 2025, 10:00–11:00 EST",
        "**Where:** Acme Institute, 1 Harbour Road, Springfield, and online",
        *[PARAGRAPH] * 4,
        "## Key findings",
        "- Sediment transport rose in four of five monitored estuaries\n"
        "- Early-warning coverage reached 92% of the coastline\n"
        "- Data and methods are published under an open licence",
        "> \u201cThis is the clearest picture we have had of the coast,\u201d said Dr. Jane Roe.",
        "Full data: [acme.example.com/coast](https://acme.example.com/coast/{{ release_key }})",
    ]
)

SENDER = Sender(
    name="Acme Institute Press Office",
    address="press@acme.example.com",
    reply_to="desk@acme.example.com",
    postal_address="1 Harbour Road\nSpringfield, ST 00001",
    disclosure="This material is distributed by Acme PR on behalf of the Acme Institute.",
)

COMMON = {
    "release_key": "42",
    "title": "Acme Institute publishes 2025 coastal monitoring results",
    "dateline": "SPRINGFIELD, March 3, 2025",
    "body_markdown": BODY,
    "sender": SENDER,
    "list_id": "Acme Advisories <acme.lists.example.com>",
    "feedback_id": "42:acme:mailer",
    "booking_contact": "Pat Doe, pat@acme.example.com, +1 555 0100",
    "about": "**About the Acme Institute**: an independent research body founded in 1951.",
}

SPECS = [
    VariantSpec(
        template="press_release",
        subject="{{ first_name | default('News') }}: Acme coastal results — embargoed",
        intro="Dear {{ first_name | default('colleague') }}, an advance copy for {{ outlet }}.",
        **COMMON,  # type: ignore[arg-type]
    ),
    VariantSpec(
        template="media_advisory",
        subject="Interview offer: Acme coastal scientists for {{ outlet | default('you') }}",
        intro="Our scientists are available to {{ outlet | default('your newsroom') }} this week.",
        speakers=(
            Speaker("Dr. Jane Roe", "Chief Scientist", "Jane has led the coastal programme since 2012."),
            Speaker("Sam Poe", "Director", "Sam directs the institute's field stations."),
        ),
        questions=("What changed this season?", "What should coastal towns do now?"),
        **COMMON,  # type: ignore[arg-type]
    ),
]

FIRST = ["Ann", "Bo", "Chloé", "Dmitri", "Eun-ji", "Farah", "Gus", "Hana", "Iñaki", ""]
OUTLETS = ["Daily Planet", "The Examplia Times", "Coastal Radio", "", "Springfield Herald"]


def recipients(n: int) -> list[Recipient]:
    """N distinct fictional recipients, some with missing fields."""
    return [
        Recipient(
            email=f"journalist{i}@example.org",
            first_name=FIRST[i % len(FIRST)],
            last_name=f"Writer{i}",
            outlet=OUTLETS[i % len(OUTLETS)],
            attributes={"metric": f"{i % 30} percent"} if i % 3 else {},
        )
        for i in range(n)
    ]


def child_cpu(worker: RenderWorker) -> float:
    """CPU seconds (user + system) the render process has used so far."""
    pid = worker.pid
    assert pid is not None
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fast(variants: list[Variant], rcpts: list[Recipient]) -> tuple[float, list[int]]:
    """Seconds for rendering every recipient with hand-assembled MIME, and message sizes."""
    sizes: list[int] = []
    start = time.perf_counter()
    for i, r in enumerate(rcpts):
        data = variants[i % 2].render(
            r,
            to_addr=r.email,
            message_id=f"<d{i}.42@acme.example.com>",
            unsubscribe_url=f"https://news.acme.example.com/u/{i:08d}",
            unsubscribe_mailto=f"mailto:unsub+{i:08d}@acme.example.com",
            date=DATE,
        )
        sizes.append(len(data))
    return time.perf_counter() - start, sizes


def naive(variants: list[Variant], rcpts: list[Recipient]) -> float:
    """Seconds for the same content built with EmailMessage(policy.default)."""
    spec = variants[0].spec
    start = time.perf_counter()
    for i, r in enumerate(rcpts):
        url = f"https://news.acme.example.com/u/{i:08d}"
        p = variants[i % 2].render_parts(r, to_addr=r.email, unsubscribe_url=url)
        msg = EmailMessage(policy=email.policy.default)
        msg["From"] = formataddr((spec.sender.name, spec.sender.address))
        msg["Reply-To"] = spec.sender.reply_to or ""
        msg["To"] = formataddr((f"{r.first_name} {r.last_name}".strip(), r.email))
        msg["Subject"] = p.subject
        msg["Date"] = format_datetime(DATE)
        msg["Message-ID"] = f"<d{i}.42@acme.example.com>"
        msg["List-Unsubscribe"] = f"<{url}>, <mailto:unsub+{i:08d}@acme.example.com>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["List-Id"] = spec.list_id
        msg["Precedence"] = "bulk"
        msg["Auto-Submitted"] = "auto-generated"
        msg["Feedback-ID"] = spec.feedback_id
        msg.set_content(p.text, cte="quoted-printable")
        msg.add_alternative(p.html, subtype="html", cte="quoted-printable")
        msg.as_bytes(policy=SMTP_POLICY)
    return time.perf_counter() - start


def parts_only(variants: list[Variant], rcpts: list[Recipient]) -> float:
    """Seconds for the Jinja renders alone (subject, text, HTML), no MIME assembly."""
    start = time.perf_counter()
    for i, r in enumerate(rcpts):
        variants[i % 2].render_parts(r, to_addr=r.email, unsubscribe_url=f"https://n.example.com/u/{i}")
    return time.perf_counter() - start


def _jobs(rcpts: list[Recipient]) -> list[tuple[VariantSpec, RenderJob | None]]:
    return [
        (
            SPECS[i % 2],
            RenderJob(
                r,
                r.email,
                f"https://news.acme.example.com/u/{i:08d}",
                f"<d{i}.42@acme.example.com>",
                f"mailto:unsub+{i:08d}@acme.example.com",
                DATE,
            ),
        )
        for i, r in enumerate(rcpts)
    ]


def isolated_batches(worker: RenderWorker, rcpts: list[Recipient], batch: int) -> tuple[float, float]:
    """(wall seconds, caller CPU seconds) for rendering every recipient through ``worker.run``."""
    jobs = _jobs(rcpts)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(jobs), batch):
        for outcome in worker.run(jobs[i : i + batch]):
            assert not isinstance(outcome, Exception), outcome
    return time.perf_counter() - start, time.process_time() - cpu


def isolated_async(renders: AsyncRenderer, rcpts: list[Recipient], senders: int) -> tuple[float, float]:
    """(wall seconds, caller CPU seconds) for ``senders`` coroutines each awaiting one render at a time."""
    jobs = iter(_jobs(rcpts))

    async def sender() -> None:
        for spec, job in jobs:
            assert job is not None
            await renders.render(spec, job)

    async def all_senders() -> None:
        await asyncio.gather(*(sender() for _ in range(senders)))

    start, cpu = time.perf_counter(), time.process_time()
    asyncio.run(all_senders())
    return time.perf_counter() - start, time.process_time() - cpu


def isolated_ahead(renders: AsyncRenderer, rcpts: list[Recipient], batch: int) -> tuple[float, float]:
    """(wall seconds, caller CPU seconds) for asking ``batch`` renders at once, batch after batch."""
    jobs = _jobs(rcpts)

    async def run() -> None:
        for i in range(0, len(jobs), batch):
            await asyncio.gather(*(renders.render(spec, job) for spec, job in jobs[i : i + batch] if job is not None))

    start, cpu = time.perf_counter(), time.process_time()
    asyncio.run(run())
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="messages on the fast path")
    parser.add_argument("--naive-n", type=int, default=2_000, help="messages on the naive path")
    parser.add_argument("--batch", type=int, default=100, help="messages per RenderWorker.run call")
    parser.add_argument("--senders", type=int, default=4, help="concurrent AsyncRenderer callers")
    args = parser.parse_args()

    renderer = Renderer(TEMPLATES)
    start = time.perf_counter()
    variants = [renderer.compile(spec) for spec in SPECS]
    compile_ms = (time.perf_counter() - start) * 1000 / len(SPECS)

    rcpts = recipients(args.n)
    fast(variants, rcpts[:200])  # warm up
    fast_cpu = time.process_time()
    fast_s, sizes = fast(variants, rcpts)
    fast_cpu = time.process_time() - fast_cpu
    jinja_s = parts_only(variants, rcpts)
    naive_n = min(args.naive_n, args.n)
    naive_s = naive(variants, rcpts[:naive_n])

    fast_rate = args.n / fast_s
    naive_rate = naive_n / naive_s
    print(f"compile:          {compile_ms:8.1f} ms per variant (2 variants)")
    print(
        f"message size:     {statistics.mean(sizes) / 1024:8.1f} KB mean "
        f"({min(sizes) / 1024:.1f}-{max(sizes) / 1024:.1f})"
    )
    print(
        f"fast path:        {fast_rate:8.0f} messages/s  ({fast_s / args.n * 1e6:.0f} µs each, "
        f"CPU {fast_cpu / args.n * 1e6:.0f} µs each, n={args.n})"
    )
    print(f"  of which Jinja: {jinja_s / args.n * 1e6:8.0f} µs each")
    print(f"naive path:       {naive_rate:8.0f} messages/s  ({naive_s / naive_n * 1e6:.0f} µs each, n={naive_n})")
    print(f"ratio fast/naive: {fast_rate / naive_rate:8.1f}x")

    worker = RenderWorker(TEMPLATES, renderer.sources, RenderLimits())
    isolated_batches(worker, rcpts[:200], args.batch)  # start and warm up

    def report(label: str, wall: float, cpu: float, child: float, extra: str = "") -> None:
        n = args.n
        print(
            f"{label}: {n / wall:8.0f} messages/s  (CPU µs each: caller {cpu / n * 1e6:.0f}, "
            f"render process {child / n * 1e6:.0f}, total {(cpu + child) / n * 1e6:.0f}{extra})"
        )

    child = child_cpu(worker)
    wall, cpu = isolated_batches(worker, rcpts, args.batch)
    report(f"render process, batches of {args.batch}", wall, cpu, child_cpu(worker) - child)
    renders = AsyncRenderer(worker)
    child = child_cpu(worker)
    wall, cpu = isolated_async(renders, rcpts, args.senders)
    extra = f", {args.n / renders.batches:.1f} messages a batch"
    report(f"render process, async, {args.senders} senders", wall, cpu, child_cpu(worker) - child, extra)
    renders = AsyncRenderer(worker)
    child = child_cpu(worker)
    wall, cpu = isolated_ahead(renders, rcpts, args.batch)
    extra = f", {args.n / renders.batches:.1f} messages a batch"
    report(f"render process, async, {args.batch} asked at once", wall, cpu, child_cpu(worker) - child, extra)
    worker.close()


if __name__ == "__main__":
    main()
