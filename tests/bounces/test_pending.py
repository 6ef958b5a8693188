"""A DSN that arrives before the worker records the relay's 250 (the row still
``sending``) is not filed: nothing is written and the MTA is told to try again."""

from __future__ import annotations

import smtplib

import pytest

from mailer.bounces.process import SendResultPending
from mailer.bounces.receive import BounceServer
from mailer.runtime import Runtime
from tests.support.bounces import delivery, dsn, events, processor, send_to, suppressions, verp


def test_a_notice_for_a_row_still_sending_is_refused_for_now(rt: Runtime) -> None:
    """Processing raises SendResultPending, records nothing; once the row is sent it files normally."""
    sent = send_to(rt, "gone@example.org", status="sending")
    raw = dsn("gone@example.org", to=verp(rt, sent.delivery_id))
    with pytest.raises(SendResultPending):
        processor(rt).process(raw)
    assert events(rt, sent.delivery_id) == [] and suppressions(rt) == {}
    assert delivery(rt, sent.delivery_id).status == "sending"


def test_the_lmtp_receiver_answers_451_so_the_mta_retries(rt: Runtime) -> None:
    """Over LMTP the pending notice gets 451 4.3.0 (transient), not 250."""
    sent = send_to(rt, "gone@example.org", status="sending")
    with BounceServer(processor(rt), port=0, lmtp=True) as server:
        client = smtplib.LMTP("127.0.0.1", server.port)
        try:
            client.ehlo("mx.example.net")
            client.mail("<>")
            client.rcpt(verp(rt, sent.delivery_id))
            code, _ = client.data(dsn("gone@example.org", to=verp(rt, sent.delivery_id)))
        finally:
            client.close()
    assert code == 451
