"""Helpers for reply tests: a runtime with replies captured at ``replies.example.com``,
the inbound processor on it, a delivery's reply address, replies from the corpus in
``tests/inbound/data`` addressed to it, and readers of what was recorded."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mailer.bounces.domains import ClientBounceDomains
from mailer.bounces.process import BounceProcessor
from mailer.config import Settings
from mailer.inbound.capture import ReplyDesk
from mailer.inbound.desk import InboundProcessor
from mailer.inbound.forward import Forwarder
from mailer.message.tokens import Tokens
from mailer.releases.identity import SendingIdentity
from mailer.releases.replyto import reply_address
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import ContactHold, Reply, ReplyForward, ResearchItem

CORPUS = Path(__file__).resolve().parents[1] / "inbound" / "data"
REPLY_DOMAIN = "replies.example.com"
DESK = "desk@harbor.example.org"
#: the address the corpus messages are written to; replaced by a delivery's real one
CORPUS_TO = "reply+17-0123456789abcdef@replies.example.com"


def reply_runtime(rt: Runtime, **overrides: Any) -> Runtime:
    """``rt`` with replies captured at :data:`REPLY_DOMAIN` and forwarded to :data:`DESK`
    (``section__key=value`` overrides more)."""
    data = rt.settings.model_dump()
    data["replies"].update(domain=REPLY_DOMAIN, forward_to=DESK)
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        data[section][name] = value
    return replace(rt, settings=Settings.model_validate(data))


def inbound(rt: Runtime) -> InboundProcessor:
    """The receiver's processor on ``rt`` (bounces and, when configured, replies)."""
    tokens = Tokens.from_settings(rt.settings)
    bounces = BounceProcessor(
        rt.sessions,
        policy=rt.settings.bounces,
        tokens=tokens,
        bounce_domain=rt.settings.sender.bounce_domain,
        clock=rt.clock,
        client_domains=ClientBounceDomains(rt.sessions, rt.settings),
    )
    desk = ReplyDesk(
        rt.sessions, settings=rt.settings, tokens=tokens, clock=rt.clock, client_domains=bounces.is_bounce_domain
    )
    return InboundProcessor(bounces, desk, tokens=tokens, bounce_domain=rt.settings.sender.bounce_domain)


def forwarder(rt: Runtime) -> Forwarder:
    return Forwarder(rt.sessions, settings=rt.settings, clock=rt.clock)


def address_of(rt: Runtime, delivery_id: int, identity: SendingIdentity | None = None) -> str:
    """The ``reply+TOKEN@`` address of a delivery (of a release of the client with this
    sending ``identity``)."""
    found = reply_address(Tokens.from_settings(rt.settings), rt.settings, delivery_id, identity)
    assert found is not None
    return found


def corpus_reply(name: str, to: str) -> bytes:
    """A corpus message addressed to ``to`` (and to the bounce address, where it names one)."""
    raw = (CORPUS / name).read_bytes()
    return raw.replace(CORPUS_TO.encode(), to.encode()).replace(b"BOUNCE_ADDRESS", to.encode())


def replies(rt: Runtime) -> list[Reply]:
    with transaction(rt.sessions) as session:
        return list(session.scalars(select(Reply).order_by(Reply.id)))


def forwards(rt: Runtime) -> list[ReplyForward]:
    with transaction(rt.sessions) as session:
        return list(session.scalars(select(ReplyForward).order_by(ReplyForward.id)))


def holds(rt: Runtime) -> list[ContactHold]:
    with transaction(rt.sessions) as session:
        return list(session.scalars(select(ContactHold).order_by(ContactHold.id)))


def research(rt: Runtime) -> list[ResearchItem]:
    with transaction(rt.sessions) as session:
        return list(session.scalars(select(ResearchItem).order_by(ResearchItem.id)))
