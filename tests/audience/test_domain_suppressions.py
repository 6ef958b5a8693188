"""Domain suppressions (@domain, *.domain) at planning and at claim, patterns refused,
suppression import, and re-consent before a bounce or complaint is lifted (issue 15)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from typer.testing import CliRunner

from mailer.audience import suppressions
from mailer.audience.suppression_import import import_suppressions
from mailer.cli.root import app as cli_app
from mailer.domain.addresses import parse_suppression_target
from mailer.domain.errors import InputError, MailerError
from mailer.domain.states import GLOBAL_SCOPE, SuppressionReason, send_scopes
from mailer.runtime import Runtime
from mailer.store import queue as delivery_queue
from mailer.store import suppressions as suppression_store
from mailer.store.db import transaction
from mailer.store.suppression_match import FEW_SUBDOMAIN_RULES
from mailer.store.tables import Delivery, Suppression, SuppressionLog
from tests.support.constants import FIXED_NOW
from tests.support.engine import Variant, add_contacts, approved_release, plan_only

PEOPLE = ["ann@example.com", "bob@news.example.com", "cat@example.org", "dan@notexample.com"]


def cli(rt: Runtime, *args: str) -> tuple[int, str]:
    """Run ``mailer ARGS`` in-process; a MailerError comes back as (its exit code, its line)."""
    result = CliRunner().invoke(cli_app, list(args), env={"MAILER_DATABASE__URL": rt.settings.database.url})
    if isinstance(result.exception, MailerError):
        return result.exception.exit_code, str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def plan(rt: Runtime, release_id: int) -> dict[str, str]:
    plan_only(rt, release_id, scopes=send_scopes("harbor"))
    with transaction(rt.sessions) as s:
        return {d.email or "": d.status for d in s.scalars(select(Delivery))}


@pytest.mark.parametrize(
    ("raw", "kind", "text"),
    [
        ("@Example.COM", "domain", "@example.com"),
        ("*.example.com", "subdomains", "*.example.com"),
        ("Ann@Example.com", "address", "ann@example.com"),
    ],
)
def test_address_and_domain_forms_are_recognised(raw: str, kind: str, text: str) -> None:
    """An address, @domain and *.domain are the three accepted forms, normalized to lower case."""
    target = parse_suppression_target(raw)
    assert (target.kind, target.text) == (kind, text)


@pytest.mark.parametrize(
    "raw", ["*@example.de", "a*b@example.de", "@", "*.", "@not a domain", "*example.de", "example.de"]
)
def test_patterns_that_are_not_an_address_or_a_domain_form_are_refused(raw: str) -> None:
    """'*@example.de' (a legal local part, so formerly stored as a literal) and other would-be patterns are refused."""
    with pytest.raises(InputError):
        parse_suppression_target(raw)


def test_cli_refuses_star_at_domain_and_accepts_at_domain(rt: Runtime) -> None:
    """`suppressions add '*@example.de'` fails in one line naming '@example.de'; `add @example.de` suppresses the domain."""
    code, output = cli(rt, "suppressions", "add", "*@example.de")
    assert code == 2 and "'@example.de'" in output
    code, output = cli(rt, "suppressions", "add", "@example.de", "--json")
    assert code == 0, output
    with transaction(rt.sessions) as s:
        row = s.scalars(select(Suppression)).one()
        assert (row.email, row.domain, row.subdomains) == ("@example.de", "example.de", False)
        assert suppression_store.is_suppressed(s, "anyone@example.de")
        assert not suppression_store.is_suppressed(s, "anyone@sub.example.de")


@pytest.mark.parametrize(
    ("form", "skipped"),
    [("@example.com", {"ann@example.com"}), ("*.example.com", {"ann@example.com", "bob@news.example.com"})],
)
def test_planning_skips_a_suppressed_domain(rt: Runtime, tmp_path: Path, form: str, skipped: set[str]) -> None:
    """@example.com stops example.com only; *.example.com also its subdomains; notexample.com is never caught."""
    add_contacts(rt, tmp_path, PEOPLE)
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    with transaction(rt.sessions) as s:
        suppressions.suppress(s, form, reason=SuppressionReason.MANUAL, source="t", now=FIXED_NOW, actor="pat")
    rows = plan(rt, rid)
    assert {e for e, st in rows.items() if st == "suppressed"} == skipped
    assert {e for e, st in rows.items() if st == "queued"} == set(PEOPLE) - skipped


# Contacts at every depth under and beside the suppressed domains (none of theirs is a
# domain suppression of its own: only the *.domain rules below can catch them).
DEEP = [
    "ann@desk.example.com",
    "bob@a.b.c.d.e.example.com",
    "cat@example.org",
    "dan@notexample.com",
    "eve@news.outlet3.example.net",
    "fay@outlet3.example.net.example.org",
    "gus@wire.example.co.uk",
    "hal@example.co.uk",
    "ivy@desk.outlet30.example.net",
]


def _covered(domain: str, rules: set[str]) -> bool:
    """The oracle: ``domain`` is one of ``rules`` or under one."""
    return any(domain == r or domain.endswith("." + r) for r in rules)


@pytest.mark.parametrize("extra", [0, FEW_SUBDOMAIN_RULES - 3, FEW_SUBDOMAIN_RULES - 2, 40])
def test_subdomain_rules_match_by_like_when_few_and_by_parent_domains_when_many(
    rt: Runtime, tmp_path: Path, extra: int
) -> None:
    """*.domain rules, 3 to 43 (both ways of matching), suppress exactly the contacts under them: planning, claim, pending rows."""
    add_contacts(rt, tmp_path, DEEP)
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    rules = {"example.com", "outlet3.example.net", "co.uk"} | {f"filler{i}.example.edu" for i in range(extra)}
    with transaction(rt.sessions) as s:
        for rule in sorted(rules):
            suppressions.suppress(s, f"*.{rule}", reason=SuppressionReason.MANUAL, source="t", now=FIXED_NOW)
    expected = {e for e in DEEP if _covered(e.rpartition("@")[2], rules)}
    assert expected == {DEEP[0], DEEP[1], DEEP[4], DEEP[6], DEEP[7]}
    rows = plan(rt, rid)
    assert {e for e, st in rows.items() if st == "suppressed"} == expected
    # at claim: the same rules written after planning (behind suppress()'s back)
    rid2 = approved_release(rt, [Variant("press-all", "list:press")], subject="Second")
    with transaction(rt.sessions) as s:
        for sup in s.scalars(select(Suppression)):
            s.delete(sup)
    plan(rt, rid2)
    with transaction(rt.sessions) as s:
        for rule in sorted(rules):
            suppression_store.add_domain_suppression(
                s,
                parse_suppression_target(f"*.{rule}"),
                reason=SuppressionReason.MANUAL,
                source="t",
                now=FIXED_NOW,
                scope=GLOBAL_SCOPE,
            )
    with transaction(rt.sessions) as s:
        claimed = delivery_queue.claim_batch(
            s, release_id=rid2, scopes=send_scopes("harbor"), owner="w", now=FIXED_NOW, lease=timedelta(60), limit=50
        )
    assert {c.email for c in claimed} == set(DEEP) - expected
    # a rule added now stops the first release's pending rows under it (an UPDATE)
    with transaction(rt.sessions) as s:
        suppressions.suppress(s, "*.example.org", reason=SuppressionReason.MANUAL, source="t", now=FIXED_NOW)
        first = {d.email: d.status for d in s.scalars(select(Delivery).where(Delivery.release_id == rid))}
    assert {e for e, st in first.items() if st == "suppressed"} == expected | {DEEP[2], DEEP[5]}


def test_planning_tests_domains_only_when_a_domain_suppression_is_in_scope(rt: Runtime, tmp_path: Path) -> None:
    """Only an address and another client's @example.com suppressed: planning has no domain test, the address is still suppressed."""
    add_contacts(rt, tmp_path, PEOPLE)
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    with transaction(rt.sessions) as s:
        suppressions.suppress(s, "cat@example.org", reason=SuppressionReason.MANUAL, source="t", now=FIXED_NOW)
        suppression_store.add_domain_suppression(
            s,
            parse_suppression_target("@example.com"),
            reason=SuppressionReason.MANUAL,
            source="t",
            now=FIXED_NOW,
            scope="other-client",
        )
    inserts: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.startswith("INSERT INTO deliveries"):
            inserts.append(statement)

    event.listen(rt.engine, "before_cursor_execute", seen)
    try:
        rows = plan(rt, rid)
    finally:
        event.remove(rt.engine, "before_cursor_execute", seen)
    assert {e for e, st in rows.items() if st == "suppressed"} == {"cat@example.org"}
    assert len(inserts) == 1 and "suppressions.email_hash" in inserts[0]
    assert "suppressions.domain" not in inserts[0]


def test_a_domain_suppressed_after_planning_is_honoured_at_claim(rt: Runtime, tmp_path: Path) -> None:
    """Rows planned before a client-scoped *.example.com suppression become suppressed when claimed, with an event."""
    add_contacts(rt, tmp_path, PEOPLE)
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    assert set(plan(rt, rid).values()) == {"queued"}
    with transaction(rt.sessions) as s:
        # written behind the back of suppress() (which would also stop the pending rows)
        target = parse_suppression_target("*.example.com")
        suppression_store.add_domain_suppression(
            s, target, reason=SuppressionReason.MANUAL, source="t", now=FIXED_NOW, scope="harbor"
        )
    with transaction(rt.sessions) as s:
        claimed = delivery_queue.claim_batch(
            s, release_id=rid, scopes=send_scopes("harbor"), owner="w", now=FIXED_NOW, lease=timedelta(60), limit=10
        )
        statuses = {d.email: d.status for d in s.scalars(select(Delivery))}
    assert {c.email for c in claimed} == {"cat@example.org", "dan@notexample.com"}
    assert statuses["ann@example.com"] == statuses["bob@news.example.com"] == "suppressed"


def test_suppressing_a_domain_stops_its_pending_rows_in_that_scope(rt: Runtime, tmp_path: Path) -> None:
    """suppress('@example.org') turns the queued example.org row suppressed at once; others stay queued."""
    add_contacts(rt, tmp_path, PEOPLE)
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    plan(rt, rid)
    with transaction(rt.sessions) as s:
        suppressions.suppress(s, "@example.org", reason=SuppressionReason.MANUAL, source="t", now=FIXED_NOW)
        statuses = {d.email: d.status for d in s.scalars(select(Delivery))}
    assert statuses == {
        "ann@example.com": "queued",
        "bob@news.example.com": "queued",
        "cat@example.org": "suppressed",
        "dan@notexample.com": "queued",
    }


def test_bounce_and_complaint_are_lifted_only_with_a_reconsent_note(rt: Runtime) -> None:
    """Lifting a hard bounce without --re-consent is refused; with it the log says 'removed (re-consent)'; manual needs none."""
    with transaction(rt.sessions) as s:
        suppressions.suppress(s, "ann@example.com", reason=SuppressionReason.HARD_BOUNCE, source="b", now=FIXED_NOW)
        suppressions.suppress(s, "bob@example.com", reason=SuppressionReason.COMPLAINT, source="b", now=FIXED_NOW)
        suppressions.suppress(s, "@example.net", reason=SuppressionReason.MANUAL, source="b", now=FIXED_NOW)
    for email in ("ann@example.com", "bob@example.com"):
        with transaction(rt.sessions) as s, pytest.raises(InputError, match="re-consent"):
            suppressions.lift(s, email, scope=GLOBAL_SCOPE, reason="asked", actor="sam", now=FIXED_NOW)
    with transaction(rt.sessions) as s:
        suppressions.lift(
            s,
            "ann@example.com",
            scope=GLOBAL_SCOPE,
            reason="new mailbox",
            actor="sam",
            now=FIXED_NOW,
            reconsent="wrote to us on 2026-11-30 from the same address",
        )
        suppressions.lift(s, "@example.net", scope=GLOBAL_SCOPE, reason="typo", actor="sam", now=FIXED_NOW)
        log = s.execute(select(SuppressionLog.action, SuppressionLog.reason).order_by(SuppressionLog.id)).all()
        assert not suppression_store.is_suppressed(s, "ann@example.com")
        assert suppression_store.is_suppressed(s, "bob@example.com")
        assert not suppression_store.is_suppressed(s, "x@example.net")
    assert log[0][0] == "removed (re-consent)" and "2026-11-30" in log[0][1]
    assert log[1] == ("removed", "typo")


def test_cli_remove_takes_re_consent(rt: Runtime) -> None:
    """`suppressions remove` of a complaint fails (exit 2) until --re-consent is given."""
    cli(rt, "suppressions", "add", "ann@example.com", "--reason", "complaint")
    code, output = cli(rt, "suppressions", "remove", "ann@example.com", "--reason", "asked")
    assert code == 2 and "--re-consent" in output
    code, output = cli(rt, "suppressions", "remove", "ann@example.com", "--reason", "asked", "--re-consent", "form")
    assert code == 0, output


def test_import_file_with_domains_and_bad_lines(rt: Runtime, tmp_path: Path) -> None:
    """A cp1252 ';' file: addresses and domain forms land, '*@x' and junk are rejected by line, the rest go on."""
    path = tmp_path / "sup.csv"
    path.write_bytes(
        "E-mail;Reason;Note\r\nann@example.com;complaint;café\r\n@example.org;;\r\n*@example.de;;\r\n"
        "not-an-address;;\r\n*.example.net;manual;x\r\nbob@example.com;nonsense;\r\n".encode("cp1252")
    )
    with transaction(rt.sessions) as s:
        result = import_suppressions(s, path, actor="pat", now=FIXED_NOW)
    assert (result.added, result.existing) == (3, 0)
    assert [line for line, _ in result.rejected] == [4, 5, 7]
    with transaction(rt.sessions) as s:
        assert suppression_store.is_suppressed(s, "zed@example.org")
        assert suppression_store.is_suppressed(s, "zed@a.example.net")
        assert s.scalar(select(Suppression.reason).where(Suppression.email == "ann@example.com")) == "complaint"


def test_export_imports_again_and_a_bare_list_works(rt: Runtime, tmp_path: Path) -> None:
    """Our export re-imported changes nothing (every row 'existing'); a headerless list of addresses imports."""
    with transaction(rt.sessions) as s:
        suppressions.suppress(s, "ann@example.com", reason=SuppressionReason.MANUAL, source="t", now=FIXED_NOW)
        suppressions.suppress(s, "*.example.org", reason=SuppressionReason.MANUAL, source="t", now=FIXED_NOW)
    exported = tmp_path / "export.csv"
    assert cli(rt, "suppressions", "export", "-o", str(exported))[0] == 0
    with transaction(rt.sessions) as s:
        again = import_suppressions(s, exported, actor="pat", now=FIXED_NOW)
    assert (again.added, again.existing, again.rejected) == (0, 2, [])
    bare = tmp_path / "bare.csv"
    bare.write_text("carl@example.com\n@example.net\n")
    code, output = cli(rt, "suppressions", "import", str(bare), "--json")
    assert code == 0 and '"added": 2' in output
