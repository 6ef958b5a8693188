"""``mailer doctor``: check the installation, one line per check (see :mod:`mailer.ops.doctor`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from mailer.cli.common import STATE, JsonOpt, out, print_json
from mailer.domain.errors import ConfigError
from mailer.ops.checks import CheckResult, State, fail
from mailer.ops.doctor import failed, run_doctor

_MARK = {State.OK: "[green]ok  [/]", State.WARN: "[yellow]warn[/]", State.FAIL: "[red]FAIL[/]", State.SKIP: "skip"}


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(
    no_dns: Annotated[bool, typer.Option("--no-dns", help="Leave out the DNS record checks.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check config, database and migrations, the SMTP relay, templates, DKIM, web.base_url
    and each client's DNS records; exits 1 when a check fails.

    With --json: {"ok": bool, "checks": [{"check", "state" (ok|warn|fail|skip), "detail"}]}.
    """
    try:
        settings = STATE.settings
    except ConfigError as exc:
        results: list[CheckResult] = [fail("config", str(exc))]
    else:
        results = asyncio.run(run_doctor(settings, dns=not no_dns))
    bad = failed(results)
    if as_json:
        print_json({"ok": not bad, "checks": [r.as_json() for r in results]})
    else:
        for r in results:
            out.print(f"{_MARK[r.state]} {r.name}: ", end="", highlight=False)
            out.print(r.detail, markup=False, highlight=False)
    if bad:
        raise typer.Exit(1)
