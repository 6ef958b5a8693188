"""End to end through a real Postfix relay (Debian's ``postfix``, a private instance on
loopback ports, DNS off): ``mailer run`` relays a release through Postfix to a local
"remote" MX that refuses an unknown user; Postfix returns its real DSN to mailer's
inbound server over LMTP; the ledger says bounced, the address is suppressed, and the
next release skips it. The README's relay recipe is this set-up on real ports."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailer.bounces.receive import BounceServer
from mailer.domain.states import email_hash
from mailer.runtime import Runtime
from mailer.smtp.server import BoundController, bind_listener
from mailer.store.db import transaction
from mailer.store.suppressions import suppression_scopes
from tests.support import postfix
from tests.support.bounces import processor
from tests.support.engine import Variant, add_contacts, approved_release, deliveries, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

KNOWN = "ann@example.net"
UNKNOWN = "ghost@example.net"


@dataclass
class RemoteMx:
    """The recipients' MX: knows only :data:`KNOWN`, refuses anyone else at RCPT (as a real one does)."""

    port: int = 0
    accepted: list[tuple[str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() != KNOWN:
            with self.lock:
                self.refused.append(address)
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.accepted += [(envelope.mail_from or "", r) for r in envelope.rcpt_tos]
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def remote_mx() -> Iterator[RemoteMx]:
    mx = RemoteMx()
    sock = bind_listener("127.0.0.1", 0)
    mx.port = sock.getsockname()[1]
    controller = BoundController(mx, sock, server_hostname="mx.example.net")
    controller.start()
    try:
        yield mx
    finally:
        controller.stop()


def wait_for(what: str, check: Callable[[], bool], relay: postfix.PostfixInstance, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; Postfix log:\n{relay.log()[-4000:]}")
        time.sleep(0.2)


def mailer_run_once(rt: Runtime, relay_port: int, cwd: Path) -> None:
    """`mailer run --once` as its own process, relaying through Postfix."""
    env = worker_env(rt, relay_port, MAILER_PATHS__DATA_DIR=str(cwd / "data"))
    done = subprocess.run(
        [sys.executable, "-m", "mailer", "run", "--once", "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


#: where the engine's test client (harbor.example.org) has its messages bounce to
HARBOR_BOUNCE_DOMAIN = "bounces.harbor.example.org"


def test_a_release_relayed_by_postfix_bounces_back_over_lmtp(rt: Runtime, tmp_path: Path, remote_mx: RemoteMx) -> None:
    """Postfix relays the known address, returns a real DSN for the unknown one over LMTP; the next release skips it."""
    reason = postfix.available()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the Postfix relay test must run under CI: {reason}")
        pytest.skip(reason)
    add_contacts(rt, tmp_path, [KNOWN, UNKNOWN])
    receiver = BounceServer(processor(rt), port=0, lmtp=True)
    receiver.start()
    try:
        transports = {
            "example.net": f"smtp:[127.0.0.1]:{remote_mx.port}",
            rt.settings.sender.bounce_domain: f"lmtp:[127.0.0.1]:{receiver.port}",
            # the test client's own return-path domain (issue 14: bounces.<its From domain>)
            HARBOR_BOUNCE_DOMAIN: f"lmtp:[127.0.0.1]:{receiver.port}",
        }
        with postfix.private_postfix(transports) as relay:
            first = approved_release(rt, [Variant("press-all", "list:press")])
            mailer_run_once(rt, relay.port, tmp_path)
            # Postfix took both (its 250 made them sent); the DSN may already be back.
            statuses = {e: r.status for e, r in deliveries(rt, first).items()}
            assert statuses[KNOWN] == "sent" and statuses[UNKNOWN] in ("sent", "bounced")

            wait_for("the DSN over LMTP", lambda: deliveries(rt, first)[UNKNOWN].status == "bounced", relay)
            wait_for("the known address at the MX", lambda: len(remote_mx.accepted) == 1, relay)
            rows = deliveries(rt, first)
            assert rows[KNOWN].status == "sent"
            gone = rows[UNKNOWN]
            assert gone.last_code == 550 and gone.reason == "user_unknown", (gone.last_code, gone.reason)
            assert "5.1.1" in (gone.last_reply or "")
            [result] = [r for r in receiver.handler.results if r.delivery_ids]
            assert result.suppressed == (UNKNOWN,)
            with transaction(rt.sessions) as session:
                scopes = suppression_scopes(session, [email_hash(UNKNOWN)])
            assert scopes == {email_hash(UNKNOWN): {"*"}}
            # The VERP envelope sender went through Postfix to the MX untouched.
            [(sender, recipient)] = remote_mx.accepted
            assert recipient == KNOWN and sender.startswith("bounces+") and sender.endswith(f"@{HARBOR_BOUNCE_DOMAIN}")

            second = approved_release(rt, [Variant("press-all", "list:press")])
            mailer_run_once(rt, relay.port, tmp_path)
            rows = deliveries(rt, second)
            assert rows[KNOWN].status == "sent" and rows[UNKNOWN].status == "suppressed"
            wait_for("the second release at the MX", lambda: len(remote_mx.accepted) == 2, relay)
            wait_for("Postfix's queue to empty", relay.queue_empty, relay)
            assert remote_mx.refused == [UNKNOWN]  # asked once, never again
    finally:
        receiver.stop()
