"""The classifier over a corpus of fictional replies in English, German, French and
Spanish (tests/inbound/data: Gmail, Outlook/Exchange and plain auto-reply headers, HTML
and quoted-printable bodies): each kind, its evidence, the return date, the new outlet
and address."""

from __future__ import annotations

import email
import email.policy
from datetime import date
from email.message import Message

import pytest

from mailer.domain.replies import ReplyKind
from mailer.inbound.classify import classify
from tests.support.replies import CORPUS

RECEIVED = date(2026, 11, 25)
OURS = frozenset({"replies.example.com", "bounces.example.com"})

#: file → (kind, words the evidence holds, return date, new address, new outlet)
EXPECTED: dict[str, tuple[ReplyKind, str, date | None, str | None, str | None]] = {
    "human-en-gmail.eml": (ReplyKind.HUMAN, "", None, None, None),
    "human-de-outlook.eml": (ReplyKind.HUMAN, "", None, None, None),
    "human-fr-question.eml": (ReplyKind.HUMAN, "", None, None, None),
    "human-es-html.eml": (ReplyKind.HUMAN, "", None, None, None),
    "human-en-gmail-html.eml": (ReplyKind.HUMAN, "", None, None, None),
    "ooo-fr-outlook-html.eml": (ReplyKind.OUT_OF_OFFICE, "jusqu’au 4 décembre", date(2026, 12, 4), None, None),
    "ooo-en-exchange.eml": (ReplyKind.OUT_OF_OFFICE, "back on 3 December", date(2026, 12, 3), None, None),
    "ooo-en-gmail-vacation.eml": (ReplyKind.OUT_OF_OFFICE, "December 7th 2026", date(2026, 12, 7), None, None),
    "ooo-en-nodate.eml": (ReplyKind.OUT_OF_OFFICE, "on leave", None, None, None),
    "ooo-en-bounce-address.eml": (ReplyKind.OUT_OF_OFFICE, "2026-12-10", date(2026, 12, 10), None, None),
    "ooo-de-outlook.eml": (ReplyKind.OUT_OF_OFFICE, "bis zum 03.12.", date(2026, 12, 3), None, None),
    "ooo-de-qp.eml": (ReplyKind.OUT_OF_OFFICE, "ab dem 7. Dezember 2026", date(2026, 12, 7), None, None),
    "ooo-fr.eml": (ReplyKind.OUT_OF_OFFICE, "de retour le 3 décembre", date(2026, 12, 3), None, None),
    "ooo-es.eml": (ReplyKind.OUT_OF_OFFICE, "hasta el 3 de diciembre", date(2026, 12, 3), None, None),
    "left-en-newaddress.eml": (
        ReplyKind.LEFT_OUTLET,
        "no longer with the Gazette",
        None,
        "mark.ellis@nordictimes.example.net",
        "Nordic Times",
    ),
    "left-en-human.eml": (
        ReplyKind.LEFT_OUTLET,
        "I've left the Weekly",
        None,
        "rita.chen@coastalradio.example.com",
        "Coastal Radio",
    ),
    "left-de.eml": (
        ReplyKind.LEFT_OUTLET,
        "nicht mehr beim Kurier",
        None,
        "tobias.brandt@stadtfunk.example.de",
        "Stadtfunk Nord",
    ),
    "left-fr.eml": (ReplyKind.LEFT_OUTLET, "ne fais plus partie", None, None, None),
    "left-es.eml": (ReplyKind.LEFT_OUTLET, "ya no trabajo en", None, "diego.ruiz@radionorte.example.es", "Radio Norte"),
    "beat-en.eml": (ReplyKind.WRONG_BEAT, "not my beat", None, None, None),
    "beat-de.eml": (ReplyKind.WRONG_BEAT, "nicht zuständig", None, None, None),
    "beat-fr.eml": (ReplyKind.WRONG_BEAT, "pas la bonne personne", None, None, None),
    "beat-es.eml": (ReplyKind.WRONG_BEAT, "no es mi área", None, None, None),
    "remove-en.eml": (ReplyKind.UNSUBSCRIBE, "remove me", None, None, None),
    "remove-en-subject.eml": (ReplyKind.UNSUBSCRIBE, "UNSUBSCRIBE", None, None, None),
    "remove-de.eml": (ReplyKind.UNSUBSCRIBE, "nehmen Sie mich", None, None, None),
    "remove-fr.eml": (ReplyKind.UNSUBSCRIBE, "désinscrire", None, None, None),
    "remove-es.eml": (ReplyKind.UNSUBSCRIBE, "darme de baja", None, None, None),
    "auto-ticket.eml": (ReplyKind.AUTOMATIC, "Auto-Submitted: auto-generated", None, None, None),
    "auto-noreply.eml": (ReplyKind.AUTOMATIC, "no-reply@bigpaper.example.com", None, None, None),
}


def _read(name: str) -> Message:
    return email.message_from_bytes((CORPUS / name).read_bytes(), policy=email.policy.compat32)


def test_every_corpus_message_has_an_expectation() -> None:
    """The corpus and the table name the same files (a new message needs its expected reading)."""
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_message_is_read_right(name: str) -> None:
    """Each corpus reply: its kind, the matched phrase as evidence, the return date, the new address and outlet."""
    kind, evidence, returns, new_email, new_outlet = EXPECTED[name]
    reading = classify(_read(name), received=RECEIVED, own_domains=OURS)
    assert reading.kind is kind
    assert evidence.lower() in reading.evidence.lower()
    assert (reading.kind is ReplyKind.HUMAN) == (reading.evidence == "")
    assert reading.return_date == returns
    assert (reading.new_email, reading.new_outlet) == (new_email, new_outlet)


def test_the_quoted_release_never_counts() -> None:
    """A human reply quoting the release's "To unsubscribe" footer is a human reply, and its text ends before the quote."""
    reading = classify(_read("human-en-gmail.eml"), received=RECEIVED)
    assert reading.kind is ReplyKind.HUMAN
    assert "unsubscribe" not in reading.text.lower() and reading.text.endswith("Ann")


def _message(body: str, *, subject: str = "Re: Harbor report", **headers: str) -> Message:
    head = "".join(f"{k.replace('_', '-')}: {v}\n" for k, v in headers.items())
    raw = (
        f"From: X Y <x.y@paper.example.com>\nTo: reply@replies.example.com\nSubject: {subject}\n{head}"
        f"Content-Type: text/plain; charset=utf-8\n\n{body}\n"
    )
    return email.message_from_bytes(raw.encode(), policy=email.policy.compat32)


@pytest.mark.parametrize(
    ("headers", "evidence"),
    [
        ({"Auto_Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
        ({"X_Autoreply": "yes"}, "X-Autoreply: yes"),
        ({"Precedence": "auto_reply"}, "Precedence: auto_reply"),
        ({"X_Auto_Response_Suppress": "All"}, "X-Auto-Response-Suppress: All"),
        ({"Precedence": "bulk"}, "Precedence: bulk"),
    ],
)
def test_auto_reply_headers_mark_automatic_mail(headers: dict[str, str], evidence: str) -> None:
    """RFC 3834, Gmail, Exchange and list headers make a message automatic, the header its evidence."""
    reading = classify(_message("Thanks for your message.", **headers), received=RECEIVED)
    assert (reading.kind, reading.evidence) == (ReplyKind.AUTOMATIC, evidence)


def test_an_auto_reply_away_without_a_date_has_none() -> None:
    """An out-of-office auto-reply with no date: out_of_office, return date None (the hold takes the default)."""
    reading = classify(_message("I am away from the office.", Auto_Submitted="auto-replied"), received=RECEIVED)
    assert (reading.kind, reading.return_date) == (ReplyKind.OUT_OF_OFFICE, None)


def test_a_person_who_mentions_leave_in_passing_is_a_human_reply() -> None:
    """'I was on leave last week, but ...' typed by a person is a human reply, not out of office."""
    body = "Sorry for the delay, I was on leave last week. Happy to talk to your expert tomorrow."
    assert classify(_message(body), received=RECEIVED).kind is ReplyKind.HUMAN


def test_a_typed_out_of_office_with_a_date_counts() -> None:
    """A person writing 'I'm away until 4 December' in the first lines: out of office until then."""
    reading = classify(_message("I'm away until 4 December, please follow up after."), received=RECEIVED)
    assert (reading.kind, reading.return_date) == (ReplyKind.OUT_OF_OFFICE, date(2026, 12, 4))


def test_left_the_office_for_the_day_is_not_leaving_the_outlet() -> None:
    """'I have left the office for today' is an auto-reply, not a journalist who moved."""
    reading = classify(
        _message("I have left the office for today and will reply tomorrow.", Auto_Submitted="auto-replied"),
        received=RECEIVED,
    )
    assert reading.kind is not ReplyKind.LEFT_OUTLET


def test_remove_me_wins_over_not_my_beat() -> None:
    """Both asked: remove me (the stronger) is honoured."""
    reading = classify(_message("Not my beat. Please remove me from your list."), received=RECEIVED)
    assert reading.kind is ReplyKind.UNSUBSCRIBE


def test_our_own_addresses_are_never_a_new_address() -> None:
    """A leaver's text naming our reply address and their new one: the new one is theirs."""
    body = "I am no longer with the Paper. Write to reply+1-ab@replies.example.com? No: x.y@newpaper.example.org"
    reading = classify(_message(body), received=RECEIVED, own_domains=OURS)
    assert reading.new_email == "x.y@newpaper.example.org"


@pytest.mark.parametrize(
    ("body", "kind", "new_email"),
    [
        ("Jane Doe has left the Herald. Releases to newsdesk@paper.example.com please.", ReplyKind.LEFT_OUTLET, None),
        (
            "I've moved to the Daily Planet, my new email is x.y@planet.example.org",
            ReplyKind.LEFT_OUTLET,
            "x.y@planet.example.org",
        ),
        ("Ich bin seit Oktober nicht mehr bei der Zeitung.", ReplyKind.LEFT_OUTLET, None),
        ("He moved to Berlin last year but still covers energy for us. Thanks!", ReplyKind.HUMAN, None),
        ("Bitte nehmen Sie mich aus dem Verteiler.", ReplyKind.UNSUBSCRIBE, None),
        ("Por favor, no me envíen más comunicados.", ReplyKind.UNSUBSCRIBE, None),
    ],
)
def test_more_wordings(body: str, kind: ReplyKind, new_email: str | None) -> None:
    """Other ways people say they moved or want out; a colleague who moved city is not a leaver; the old outlet's desk is not a new address."""
    reading = classify(_message(body), received=RECEIVED, own_domains=OURS)
    assert (reading.kind, reading.new_email) == (kind, new_email)
