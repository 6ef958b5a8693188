"""Templates that cannot hang or bloat anything: the sandbox's names and operators, and the
render process's time limit, size cap and memory limit at preview, submit, proof and send."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer.config import RenderSettings, Settings, WebSettings
from mailer.domain.errors import TemplateError, WorkflowError
from mailer.engine.dispatch import Dispatcher
from mailer.message import (
    AsyncRenderer,
    IsolatedRenderer,
    Recipient,
    RenderCancelled,
    Renderer,
    RenderJob,
    RenderLimitError,
    RenderLimits,
    RenderWorker,
    VariantSpec,
)
from mailer.releases.approval import submit_release
from mailer.releases.plan import renderer_for
from mailer.releases.preview import preview_release
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store import releases as release_store
from mailer.store.db import transaction
from tests.support.constants import REPO
from tests.support.engine import (
    Clock,
    Variant,
    add_contacts,
    approved_release,
    deliveries,
    engine_runtime,
    release_status,
    worker_env,
)
from tests.support.faultsmtp import FaultSMTPServer
from tests.support.releases import RELEASE, create, seed

TEMPLATES = REPO / "templates"
sys.path.insert(0, str(REPO / "bench"))
import render_bench  # noqa: E402

TIME_LIMIT = 1.0

# Every loop runs over ``title`` (dozens of characters): six levels are ~10^9 rounds of
# pure CPU (nothing is output, so memory does not grow).
HANG = "{% for a in title %}{% for b in title %}{% for c in title %}{% for d in title %}" \
    "{% for e in title %}{% for f in title %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}"  # fmt: skip
# ~5 MB of text per part, quickly, with nothing the sandbox refuses.
BLOAT = "{% for a in title %}{% for b in title %}{% for c in title %}" \
    "{{ title }}{{ title }}{{ title }}{{ title }}{{ title }}{% endfor %}{% endfor %}{% endfor %}"  # fmt: skip

# ~10 s to compile here (30,000 Jinja blocks: code generation and Python's compile()): a hang
# while compiling. (It was 30,000 unclosed Markdown link openers, ~45 s in markdown-it-py
# before 4.3, which parses them in under a second.)
SLOW_MARKDOWN = "{% if first_name %}x{% endif %}" * 30_000

#: name → (body, what the one-line error says)
ATTACKS = {
    "nested range loops": (
        "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}x"
        "{% endfor %}{% endfor %}{% endfor %}",
        "'range' is undefined",
    ),
    "nested loops": (HANG, f"template took longer than the {TIME_LIMIT:g} s limit (render.time_limit)"),
    "slow to compile": (SLOW_MARKDOWN, f"template took longer than the {TIME_LIMIT:g} s limit (render.time_limit)"),
    "lipsum": ("{{ lipsum(200000) }}", "'lipsum' is undefined"),
    "a*10**8": ("{{ 'a'*10**8 }}", "'*' would make more than 1,000,000 items"),
    "a*10**9": ("{{ 'a'*10**9 }}", "'*' would make more than 1,000,000 items"),
    "huge output": (BLOAT, "is over the 2 MB limit (render.max_message_bytes)"),
    "huge allocation": ("{{ title.center(10**9) }}", "more than the 512 MB memory limit (render.memory_limit_mb)"),
}


def with_body(text: str, body: str) -> str:
    """A release file with its Markdown body replaced."""
    head, _, _ = text.rpartition("+++\n")
    return f"{head}+++\n{body}\n"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """https unsubscribe links (checks need them) and a 1 s render time limit."""
    return settings.model_copy(
        update={
            "web": WebSettings(base_url="https://news.example.com"),
            "render": RenderSettings(time_limit=TIME_LIMIT),
        }
    )


#: ``huge output`` must meet the size limit, not the time limit: rendering ~5 MB takes
#: well under a second on a quiet machine but more on a loaded one, so its runs allow more.
SIZE_ATTACK_TIME_LIMIT = 15.0


def time_limit_for(attack: str) -> float:
    """The render time limit a test of ``attack`` runs with."""
    return SIZE_ATTACK_TIME_LIMIT if attack == "huge output" else TIME_LIMIT


@pytest.fixture
def renderer(settings: Settings, request: pytest.FixtureRequest) -> Iterator[IsolatedRenderer]:
    callspec = getattr(request.node, "callspec", None)
    attack = callspec.params.get("attack", "") if callspec is not None else ""
    limit = time_limit_for(attack) if isinstance(attack, str) else TIME_LIMIT
    r = renderer_for(settings.model_copy(update={"render": RenderSettings(time_limit=limit)}))
    assert isinstance(r, IsolatedRenderer)
    yield r
    r.close()


# ------------------------------------------------------------------- the sandbox


@pytest.mark.parametrize("name", ["range", "lipsum", "dict", "cycler", "joiner", "namespace"])
def test_jinja_globals_are_gone(name: str) -> None:
    """Jinja's globals (range, lipsum, dict, cycler, joiner, namespace) are undefined names."""
    spec = dataclasses.replace(render_bench.SPECS[0], body_markdown=f"{{{{ {name}() }}}}")
    with pytest.raises(TemplateError, match=f"'{name}' is undefined"):
        Renderer(TEMPLATES).compile(spec)


@pytest.mark.parametrize("name", ["attr", "safe", "format", "indent", "wordwrap", "tojson", "sum", "batch"])
def test_filters_templates_do_not_need_are_gone(name: str) -> None:
    """A filter not on the sandbox's short list is refused at compile, naming it and the line."""
    spec = dataclasses.replace(render_bench.SPECS[0], body_markdown=f"Hi\n\n{{{{ title | {name} }}}}")
    with pytest.raises(TemplateError, match=f"body, line 3: there is no filter '{name}' here"):
        Renderer(TEMPLATES).compile(spec)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("'a' * 10**8", "'\\*' would make more than"),
        ("10 * ['a'] * 200000", "'\\*' would make more than"),
        ("(7 ** (10**6)) | length", "'\\*\\*' would make a number"),
        ("'%099999999d' % 1", "'%' formatting of text"),
        ("'x' | replace('x', title) | replace('x', title) | replace('x', title) | replace('x', title)", "replace"),
    ],
)
def test_huge_operators_are_refused_by_the_sandbox(expression: str, message: str) -> None:
    """*, **, % and replace that would build something huge fail at render as sandbox errors, in-process too."""
    spec = dataclasses.replace(render_bench.SPECS[0], body_markdown=f"{{{{ {expression} }}}}", title="x" * 40)
    variant = Renderer(TEMPLATES).compile(spec)
    with pytest.raises(TemplateError, match=f"not allowed by the sandbox: .*{message}"):
        variant.render_parts(
            Recipient("a@example.com"), to_addr="a@example.com", unsubscribe_url="https://e.example.com/u"
        )


def test_kept_filters_and_small_operators_still_work() -> None:
    """The filters templates use and modest *, ** and % keep working."""
    body = "{{ title | upper }} {{ title | lower | title }} {{ ' x ' | trim }} {{ '=' * 3 }} {{ 2 ** 10 }} {{ 7 % 3 }}"
    spec = dataclasses.replace(render_bench.SPECS[0], body_markdown=body, title="Big News")
    parts = (
        Renderer(TEMPLATES)
        .compile(spec)
        .render_parts(Recipient("a@example.com"), to_addr="a@example.com", unsubscribe_url="https://e.example.com/u")
    )
    assert "BIG NEWS Big News x === 1024 1" in parts.text


# ------------------------------------------------------------- the render process


def test_render_process_gives_the_same_bytes_as_before() -> None:
    """300 bench messages (both variants, missing fields) rendered in the render process are byte-identical
    to in-process rendering, and to the renderer before the render process existed (digest taken then)."""
    digests = []
    for renderer in (Renderer(TEMPLATES), IsolatedRenderer(TEMPLATES, limits=RenderLimits())):
        digest = hashlib.sha256()
        variants = [renderer.compile(spec) for spec in render_bench.SPECS]
        for i, r in enumerate(render_bench.recipients(300)):
            digest.update(
                variants[i % 2].render(
                    r,
                    to_addr=r.email,
                    message_id=f"<d{i}@acme.example.com>",
                    unsubscribe_url=f"https://n.example.com/u/{i}",
                    unsubscribe_mailto=f"mailto:u+{i}@acme.example.com",
                    date=render_bench.DATE,
                )
            )
            p = variants[i % 2].render_parts(r, to_addr=r.email, unsubscribe_url=f"https://n.example.com/u/{i}")
            digest.update(repr((p.subject, p.text, p.html)).encode())
        digests.append(digest.hexdigest())
        if isinstance(renderer, IsolatedRenderer):
            renderer.close()
    # retaken with issues 14 and 21 (the text part from Markdown, line breaks kept, new sections)
    assert digests[0] == digests[1] == "4246da76dc2a8ae88b0cb5d977ddbb526018c24777f74bf28e52cb11b22b0af1"


def _job(i: int, rcpt: Recipient) -> RenderJob:
    return RenderJob(
        rcpt, rcpt.email, f"https://n.example.com/u/{i}", f"<m{i}@acme.example.com>", date=render_bench.DATE
    )


def test_a_batch_fails_only_its_slow_messages() -> None:
    """In one batch of 12, the 2 recipients whose render hangs fail with the time limit; the 10 others
    render, byte-identical to in-process, though the render process was killed twice."""
    sometimes = "{% if first_name in ('Dmitri', 'Gus') %}" + HANG + "{% endif %}ok"
    hang = dataclasses.replace(render_bench.SPECS[0], body_markdown=sometimes)
    local = Renderer(TEMPLATES)
    worker = RenderWorker(TEMPLATES, local.sources, RenderLimits(time_limit=TIME_LIMIT))
    rcpts = render_bench.recipients(12)
    jobs: list[tuple[VariantSpec, RenderJob | None]] = [
        (hang if i % 3 == 0 else render_bench.SPECS[1], _job(i, r)) for i, r in enumerate(rcpts)
    ]
    start = time.monotonic()
    outcomes = worker.run(jobs)
    elapsed = time.monotonic() - start
    worker.close()
    failed = [rcpts[i].first_name for i, o in enumerate(outcomes) if isinstance(o, Exception)]
    assert failed == ["Dmitri", "Gus"]
    assert all(isinstance(outcomes[i], RenderLimitError) for i in (3, 6))
    assert worker.restarts == 2
    assert elapsed < 2 * TIME_LIMIT + 5
    for i, (spec, job) in enumerate(jobs):
        if i in (3, 6):
            continue
        assert job is not None and job.message_id is not None and job.date is not None
        expected = local.compile(spec).render(
            job.recipient, to_addr=job.to_addr, message_id=job.message_id,
            unsubscribe_url=job.unsubscribe_url, unsubscribe_mailto=None, date=job.date,
        )  # fmt: skip
        assert getattr(outcomes[i], "data", None) == expected


def test_a_variant_that_hangs_while_compiling_fails_all_its_jobs_at_once() -> None:
    """A body that takes ~10 s to compile fails all five jobs of its variant after one wait."""
    slow = dataclasses.replace(render_bench.SPECS[0], body_markdown=SLOW_MARKDOWN)
    worker = RenderWorker(TEMPLATES, Renderer(TEMPLATES).sources, RenderLimits(time_limit=TIME_LIMIT))
    jobs: list[tuple[VariantSpec, RenderJob | None]] = [
        (slow, _job(i, r)) for i, r in enumerate(render_bench.recipients(5))
    ]
    start = time.monotonic()
    outcomes = worker.run(jobs)
    worker.close()
    assert all(isinstance(o, RenderLimitError) for o in outcomes), outcomes
    assert worker.restarts == 0  # killed once, and nothing was left to render
    assert time.monotonic() - start < TIME_LIMIT + 5


async def test_async_renderer_batches_and_stops_at_once() -> None:
    """Concurrent requests share batches; once ``stop`` is set, a hanging render and the queue end at once
    with RenderCancelled (not a render error)."""
    local = Renderer(TEMPLATES)
    renders = AsyncRenderer(RenderWorker(TEMPLATES, local.sources, RenderLimits(time_limit=60)))
    rcpts = render_bench.recipients(40)
    stop = asyncio.Event()
    data = await asyncio.gather(
        *(renders.render(render_bench.SPECS[i % 2], _job(i, r), stop=stop) for i, r in enumerate(rcpts))
    )
    assert all(d.startswith(b"From: ") for d in data)
    assert renders.batches < len(rcpts)
    hang = dataclasses.replace(render_bench.SPECS[0], body_markdown=HANG)
    tasks = [asyncio.create_task(renders.render(hang, _job(i, r), stop=stop)) for i, r in enumerate(rcpts[:3])]
    await asyncio.sleep(1.0)
    start = time.monotonic()
    stop.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(o, RenderCancelled) for o in outcomes), outcomes
    assert time.monotonic() - start < 1.0
    with pytest.raises(RenderCancelled):
        await renders.render(render_bench.SPECS[0], _job(0, rcpts[0]), stop=stop)
    renders.worker.close()


# ------------------------------------------------------------------ preview and submit


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_at_preview_is_one_error_within_the_limit(
    rt: Runtime, renderer: IsolatedRenderer, tmp_path: Path, attack: str
) -> None:
    """Previewing a release whose body is an attack fails with one TemplateError naming the limit, in seconds."""
    body, message = ATTACKS[attack]
    seed(rt, tmp_path)
    rid = create(rt, renderer, with_body(RELEASE, body))
    start = time.monotonic()
    with pytest.raises(TemplateError) as info, transaction(rt.sessions) as session:
        preview_release(
            session, rid, segment_slug="foreign-policy-print", contact_email=None,
            renderer=renderer, settings=rt.settings, now=rt.clock(),
        )  # fmt: skip
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert time.monotonic() - start < TIME_LIMIT + 10


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_refused_at_submit(rt: Runtime, renderer: IsolatedRenderer, tmp_path: Path, attack: str) -> None:
    """Submitting a release whose body is an attack is refused with one line naming the limit; it stays a draft."""
    body, message = ATTACKS[attack]
    seed(rt, tmp_path)
    rid = create(rt, renderer, with_body(RELEASE, body))
    start = time.monotonic()
    with pytest.raises(WorkflowError) as info, transaction(rt.sessions) as session:
        submit_release(session, rid, actor="pat", renderer=renderer, settings=rt.settings, now=rt.clock())
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    # Two segments, two sample recipients each: at most four waits for the limit.
    assert time.monotonic() - start < 4 * TIME_LIMIT + 10
    with transaction(rt.sessions) as session:
        assert release_store.get_release(session, rid).status == "draft"


@pytest.mark.slow
def test_cli_preview_and_submit_of_a_hanging_release_print_one_line(rt: Runtime, tmp_path: Path) -> None:
    """`mailer releases preview` and `submit` of a release that hangs exit non-zero with one line, no traceback."""
    seed(rt, tmp_path)
    path = tmp_path / "hang.md"
    path.write_text(with_body(RELEASE, HANG), "utf-8")
    env = {
        "PATH": "/usr/bin:/bin",
        "MAILER_DATABASE__URL": rt.settings.database.url,
        "MAILER_PATHS__TEMPLATES_DIR": str(TEMPLATES),
        "MAILER_WEB__BASE_URL": "https://news.example.com",
        "MAILER_SECRET_KEY": "test-secret-key-of-enough-length-0123456789",
        "MAILER_USER": "pat",
        "MAILER_RENDER__TIME_LIMIT": str(TIME_LIMIT),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailer", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    created = cli("releases", "create", str(path), "--json")
    assert created.returncode == 0, created.stderr
    rid = created.stdout.split('"id": ')[1].split(",")[0]
    for args, code in (
        (("releases", "preview", rid, "--segment", "foreign-policy-print"), 2),
        (("releases", "submit", rid), 4),
    ):
        done = cli(*args)
        assert done.returncode == code, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "took longer than the 1 s limit (render.time_limit)" in lines[0], done.stderr


# ------------------------------------------------------------------------- sending


async def send_all(rt: Runtime) -> Dispatcher:
    pool = make_transport(rt.settings.smtp)
    dispatcher = Dispatcher(rt, pool)
    try:
        await dispatcher.run_once()
    finally:
        await pool.close()
        dispatcher.renders.worker.close()
    return dispatcher


@pytest.mark.parametrize("attack", ["nested loops", "huge output", "huge allocation", "a*10**8"])
async def test_attack_at_send_fails_its_rows_and_the_other_release_goes(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, attack: str
) -> None:
    """An approved release whose template attacks only some recipients: those rows fail with the reason,
    its other rows and a second release are sent, each exactly once."""
    body, message = ATTACKS[attack]
    ert = engine_runtime(rt, smtp.port, Clock(), render__time_limit=time_limit_for(attack), retry__batch_size=5)
    add_contacts(ert, tmp_path, [f"n{i}@example.com" for i in range(6)])
    sometimes = "{% if first_name in ('Name1', 'Name4') %}" + body + "{% endif %}Hello."
    bad = approved_release(ert, [Variant("press-bad", "list:press")], body=sometimes)
    good = approved_release(ert, [Variant("press-good", "list:press")])
    start = time.monotonic()
    await send_all(ert)
    assert time.monotonic() - start < 2 * time_limit_for(attack) + 20
    rows = deliveries(ert, bad)
    failed = {e for e, r in rows.items() if r.status == "failed"}
    assert failed == {"n1@example.com", "n4@example.com"}
    for email in failed:
        reply = rows[email].last_reply or ""
        assert reply.startswith("render error: ") and message in reply, reply
    assert {r.status for e, r in rows.items() if e not in failed} == {"sent"}
    assert release_status(ert, bad) == "partial"
    assert {r.status for r in deliveries(ert, good).values()} == {"sent"}
    assert release_status(ert, good) == "sent"
    assert smtp.duplicates() == []
    assert len(smtp.accepted) == 4 + 6


async def test_a_release_that_hangs_for_everyone_fails_row_by_row(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """Every row of a release that hangs for everyone fails with the time limit; the other release is sent."""
    ert = engine_runtime(rt, smtp.port, Clock(), render__time_limit=TIME_LIMIT)
    add_contacts(ert, tmp_path, [f"h{i}@example.com" for i in range(3)])
    bad = approved_release(ert, [Variant("press-bad", "list:press")], body=HANG)
    good = approved_release(ert, [Variant("press-good", "list:press")])
    await send_all(ert)
    reasons = {r.status: r.last_reply for r in deliveries(ert, bad).values()}
    assert reasons == {
        "failed": f"render error: template took longer than the {TIME_LIMIT:g} s limit (render.time_limit)"
    }
    assert {r.status for r in deliveries(ert, good).values()} == {"sent"}


@pytest.mark.slow
def test_run_stops_on_sigterm_during_a_hanging_render_and_does_not_hang_after_restart(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """`mailer run` SIGTERMed while a render hangs (60 s limit) exits 0 within seconds with its rows queued
    again; `mailer run --once` afterwards (1 s limit) fails those rows with the reason instead of hanging."""
    ert = engine_runtime(rt, smtp.port, Clock(datetime.now(UTC)))
    add_contacts(ert, tmp_path, [f"t{i}@example.com" for i in range(3)])
    rid = approved_release(ert, [Variant("press-all", "list:press")], body=HANG)
    env = worker_env(ert, smtp.port, MAILER_RENDER__TIME_LIMIT="60")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(r.status == "sending" for r in deliveries(ert, rid).values()):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the worker never claimed the rows")
        time.sleep(1.5)  # the render is now well under way
        assert proc.poll() is None
    finally:
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - sent_at < 8, "mailer run took too long to stop"
    assert proc.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    assert {r.status for r in deliveries(ert, rid).values()} == {"queued"}
    again = subprocess.run(
        [sys.executable, "-m", "mailer", "run", "--once"],
        env={**env, "MAILER_RENDER__TIME_LIMIT": str(TIME_LIMIT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    rows = deliveries(ert, rid).values()
    assert {(r.status, r.last_reply) for r in rows} == {
        ("failed", f"render error: template took longer than the {TIME_LIMIT:g} s limit (render.time_limit)")
    }
    assert release_status(ert, rid) == "partial"
    assert smtp.accepted == []


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_a_hanging_render_does_not_outlive_a_killed_worker(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """SIGKILL of `mailer run` while its render process hangs: the render processes go too."""
    ert = engine_runtime(rt, smtp.port, Clock(datetime.now(UTC)))
    add_contacts(ert, tmp_path, [f"k{i}@example.com" for i in range(2)])
    rid = approved_release(ert, [Variant("press-all", "list:press")], body=HANG)
    env = worker_env(ert, smtp.port, MAILER_RENDER__TIME_LIMIT="60")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer", "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while not any(r.status == "sending" for r in deliveries(ert, rid).values()):
            assert time.monotonic() < deadline, "the worker never claimed the rows"
            time.sleep(0.1)
        time.sleep(1.0)
        below = _descendants(proc.pid)
        assert len(below) == 2, below  # the render processes: compiling the plan, rendering messages
    finally:
        proc.kill()
        proc.wait(10)

    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in below) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in below if _alive(pid)]
