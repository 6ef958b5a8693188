"""``*.domain`` suppressions at planning: one planning statement over N contacts with R
subdomain rules, each of the two ways the check can run (:mod:`mailer.store.suppression_match`).

    .venv/bin/python bench/domain_rules_bench.py [--contacts 100000] [--rules 0 1 8 9 100 1000]

SQLite (a temp file) or PostgreSQL (``--backend postgres``: a fresh database at
127.0.0.1:5432); contacts loaded as bench/plan_bench.py loads them: 2,000 outlet domains,
one contact in 100 suppressed by address. The rules are ``*.deskK.outletK.example.org``:
no contact is under one, so every rule is a miss for every contact (the most work for the
LIKE way). For each R: the statement the planner runs for one step of every contact, CPU
seconds of this process (SQLite runs in it), then the same with the LIKE way forced.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plan_bench import NOW, approved_release, database, load, settings_for

from mailer.domain.states import send_scopes
from mailer.runtime import Runtime
from mailer.store import deliveries as delivery_store
from mailer.store import suppression_match
from mailer.store.db import transaction
from mailer.store.tables import Delivery, Suppression


def plan_once(rt: Runtime, release_id: int, segment_id: int) -> tuple[float, int]:
    """Seconds of one planning statement over every contact (rolled back; CPU on SQLite,
    wall on PostgreSQL), and the suppressed rows it made."""
    clock = time.process_time if rt.engine.dialect.name == "sqlite" else time.perf_counter
    began = clock()
    with rt.sessions() as session:
        delivery_store.plan_segment(
            session,
            release_id=release_id,
            segment_id=segment_id,
            rule="list:press",
            scopes=send_scopes("harbor"),
            message_id_domain="mail.example.org",
            now=NOW,
        )
        took = clock() - began
        suppressed = session.scalar(text("SELECT count(*) FROM deliveries WHERE status = 'suppressed'"))
        session.rollback()
    return took, int(suppressed or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--rules", type=int, nargs="+", default=[0, 1, 8, 9, 100, 1000])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    few = suppression_match.FEW_SUBDOMAIN_RULES
    with tempfile.TemporaryDirectory() as tmp, database(args.backend, Path(tmp)) as url:
        if url is None:
            sys.exit("PostgreSQL does not answer at 127.0.0.1:5432")
        rt = Runtime.open(settings_for(url, Path(tmp) / "data"), clock=lambda: NOW)
        load(rt.engine, args.contacts)
        release_id = approved_release(rt)
        with transaction(rt.sessions) as session:
            segment_id = int(session.scalar(text("SELECT id FROM segments")) or 0)
            session.execute(delete(Delivery))
        what = "CPU" if args.backend == "sqlite" else "wall"
        print(f"{args.contacts:,} contacts, {args.backend}; {what} s of one planning statement (suppressed rows)")
        print(f"{'rules':>6} {'chosen way':>22} {'LIKE way (forced)':>22}")
        for rules in args.rules:
            with transaction(rt.sessions) as session:
                session.execute(delete(Suppression).where(Suppression.subdomains.is_(True)))
                session.add_all(
                    Suppression(
                        email=f"*.desk{i}.outlet{i % 2000}.example.org",
                        email_hash=f"bench-rule-{i}",
                        domain=f"desk{i}.outlet{i % 2000}.example.org",
                        subdomains=True,
                        scope="*",
                        reason="manual",
                        source="bench",
                        created_at=NOW + timedelta(seconds=i),
                    )
                    for i in range(rules)
                )
            chosen, n1 = plan_once(rt, release_id, segment_id)
            suppression_match.FEW_SUBDOMAIN_RULES = 1_000_000
            try:
                forced, n2 = plan_once(rt, release_id, segment_id)
            finally:
                suppression_match.FEW_SUBDOMAIN_RULES = few
            assert n1 == n2, (n1, n2)
            print(f"{rules:>6} {chosen:>15.2f} ({n1:,}) {forced:>15.2f} ({n2:,})", flush=True)
        rt.close()


if __name__ == "__main__":
    main()
