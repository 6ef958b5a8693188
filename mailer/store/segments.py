"""The segment rule language, compiled to SQL with bound values only.

Grammar (keywords case-insensitive)::

    rule      := or_expr
    or_expr   := and_expr ("OR" and_expr)*
    and_expr  := not_expr ("AND" not_expr)*
    not_expr  := "NOT" not_expr | "(" or_expr ")" | predicate
    predicate := field ":" value
               | field "IN" "(" value ("," value)* ")"
               | flag [":" id | "IN" "(" id ("," id)* ")"]
    field     := list | beat | tag | outlet | outlet_type | region | country
               | language | timezone | domain | email | attr.NAME
               | received | replied | downloaded          (value: a release id)
    flag      := bounced | complained                     (alone: any release)
    value     := bare word ([A-Za-z0-9_.@+*-]+) | "double-quoted string"

History (what the ledger says a contact did; :mod:`mailer.store.signals`):
``received:ID`` (sent release ID), ``NOT received:ID``, ``replied:ID``,
``downloaded:ID`` (the press kit of release ID), ``bounced`` / ``complained`` (about any
release, or ``bounced:ID`` about release ID). Ids are bound parameters like every value.

Examples: ``list:national-press AND beat:foreign-policy AND outlet_type IN (tv, radio)``,
``NOT tag:freelance``, ``region:us-east OR attr.desk:"night desk"``.

Field names are looked up in a fixed table; values only ever become bound parameters.
Comparisons are case-insensitive for the enumerated fields (their values are stored
lower-case) and exact for ``outlet`` and attributes.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Literal

from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select, true

from mailer.domain.errors import SegmentSyntaxError
from mailer.domain.states import MAX_ID
from mailer.store import signals
from mailer.store.tables import Contact, ContactBeat, ContactTag, ListMember, MailingList

FIELDS = (
    "list",
    "beat",
    "tag",
    "outlet",
    "outlet_type",
    "region",
    "country",
    "language",
    "timezone",
    "domain",
    "email",
)
#: History fields: their values are release ids (see :mod:`mailer.store.signals`).
RELEASE_FIELDS = ("received", "replied", "downloaded")
#: History flags: alone they mean "about any release"; with values, about those releases.
FLAGS = ("bounced", "complained")

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<colon>:)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<word>[A-Za-z0-9_.@+*\-]+)
    """,
    re.VERBOSE,
)

TokenKind = Literal["lparen", "rparen", "comma", "colon", "string", "word", "end"]


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    column: int  # 1-based


@dataclass(frozen=True)
class Predicate:
    field: str
    values: tuple[str, ...]
    #: 1-based column of each value in the rule (for errors and warnings that point at it)
    columns: tuple[int, ...] = dc_field(default=(), compare=False)


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class BoolOp:
    op: Literal["and", "or"]
    operands: tuple[Node, ...]


Node = Predicate | Not | BoolOp


def tokenize(rule: str) -> list[Token]:
    """Split ``rule`` into tokens; an unexpected character raises SegmentSyntaxError."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(rule):
        m = _TOKEN.match(rule, pos)
        if m is None:
            raise SegmentSyntaxError(f"unexpected character {rule[pos]!r}", rule=rule, column=pos + 1)
        kind = m.lastgroup
        if kind == "string":
            text = re.sub(r"\\(.)", r"\1", m.group()[1:-1])
            tokens.append(Token("string", text, pos + 1))
        elif kind != "ws" and kind is not None:
            tokens.append(Token(kind, m.group(), pos + 1))  # type: ignore[arg-type]
        pos = m.end()
    tokens.append(Token("end", "", len(rule) + 1))
    return tokens


class _Parser:
    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.tokens = tokenize(rule)
        self.pos = 0

    def error(self, message: str, token: Token | None = None) -> SegmentSyntaxError:
        tok = token or self.peek()
        return SegmentSyntaxError(message, rule=self.rule, column=tok.column)

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "word" and tok.text.upper() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.error("empty rule")
        node = self.or_expr()
        if self.peek().kind != "end":
            raise self.error(f"expected AND, OR or the end, found {self.peek().text!r}")
        return node

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self.keyword("OR"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.not_expr()]
        while self.keyword("AND"):
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def not_expr(self) -> Node:
        if self.keyword("NOT"):
            return Not(self.not_expr())
        if self.peek().kind == "lparen":
            self.advance()
            node = self.or_expr()
            if self.peek().kind != "rparen":
                raise self.error("expected ')'")
            self.advance()
            return node
        return self.predicate()

    def predicate(self) -> Predicate:
        tok = self.advance()
        if tok.kind != "word" or tok.text.upper() in {"AND", "OR", "NOT", "IN"}:
            raise self.error("expected a field name", tok)
        name = tok.text.lower()
        if name not in FIELDS and name not in RELEASE_FIELDS and name not in FLAGS and not _is_attr(name):
            known = ", ".join((*FIELDS, "attr.NAME", *RELEASE_FIELDS, *FLAGS))
            raise self.error(f"unknown field {tok.text!r} (known: {known})", tok)
        if name in FLAGS and not (self.peek().kind == "colon" or self._at_in()):
            return Predicate(name, ())
        if self.peek().kind == "colon":
            self.advance()
            value = self.value(numeric=name in RELEASE_FIELDS or name in FLAGS)
            return Predicate(name, (value.text,), (value.column,))
        if self.keyword("IN"):
            if self.peek().kind != "lparen":
                raise self.error("expected '(' after IN")
            self.advance()
            numeric = name in RELEASE_FIELDS or name in FLAGS
            values = [self.value(numeric=numeric)]
            while self.peek().kind == "comma":
                self.advance()
                values.append(self.value(numeric=numeric))
            if self.peek().kind != "rparen":
                raise self.error("expected ',' or ')'")
            self.advance()
            return Predicate(name, tuple(v.text for v in values), tuple(v.column for v in values))
        raise self.error(f"expected ':' or IN after {tok.text!r}")

    def _at_in(self) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.text.upper() == "IN"

    def value(self, *, numeric: bool = False) -> Token:
        tok = self.advance()
        if tok.kind not in ("word", "string"):
            raise self.error("expected a value", tok)
        if numeric and not (tok.text.isdigit() and 1 <= int(tok.text) <= MAX_ID):
            raise self.error(f"expected a release id, found {tok.text!r}", tok)
        return tok


def _is_attr(field: str) -> bool:
    return field.startswith("attr.") and re.fullmatch(r"attr\.[a-z0-9_\-]{1,64}", field) is not None


def parse_rule(rule: str) -> Node:
    """Parse ``rule``; raises :class:`SegmentSyntaxError` naming the column of the problem."""
    return _Parser(rule).parse()


def predicates(node: Node) -> Iterator[Predicate]:
    """Every predicate of ``node``, left to right."""
    if isinstance(node, Predicate):
        yield node
    elif isinstance(node, Not):
        yield from predicates(node.operand)
    else:
        for operand in node.operands:
            yield from predicates(operand)


def check_rule(rule: str, *, outlet_types: Collection[str]) -> Node:
    """Parse ``rule`` and check the values the configuration fixes (``outlet_type`` must be
    one of ``outlet_types``); SegmentSyntaxError pointing at the value otherwise."""
    node = parse_rule(rule)
    for p in predicates(node):
        if p.field != "outlet_type":
            continue
        for value, column in zip(p.values, p.columns or (0,) * len(p.values), strict=True):
            if value.lower() not in outlet_types:
                allowed = ", ".join(outlet_types)
                raise SegmentSyntaxError(f"outlet_type {value!r} is not one of {allowed}", rule=rule, column=column)
    return node


def to_sql(node: Node) -> ColumnElement[bool]:
    """A WHERE clause over :class:`Contact` for ``node``; every value is a bound parameter."""
    if isinstance(node, Not):
        return not_(to_sql(node.operand))
    if isinstance(node, BoolOp):
        parts = [to_sql(n) for n in node.operands]
        return and_(true(), *parts) if node.op == "and" else or_(false(), *parts)
    return _predicate_sql(node)


def _history_sql(p: Predicate) -> ColumnElement[bool]:
    """A history field or flag over :class:`Contact` (see :mod:`mailer.store.signals`)."""
    ids = [int(v) for v in p.values]
    if p.field == "received":
        return signals.received(ids)
    if p.field == "replied":
        return Contact.id.in_(signals.replied_contact_ids(ids))
    if p.field == "downloaded":
        return Contact.id.in_(signals.downloaded_contact_ids(ids))
    if p.field == "bounced":
        return signals.bounced(ids or None)
    return signals.complained(ids or None)


def _predicate_sql(p: Predicate) -> ColumnElement[bool]:
    values = [v.lower() for v in p.values]
    field = p.field
    if field in RELEASE_FIELDS or field in FLAGS:
        return _history_sql(p)
    if field == "list":
        return exists(
            select(ListMember.contact_id)
            .join(MailingList, MailingList.id == ListMember.list_id)
            .where(ListMember.contact_id == Contact.id, MailingList.slug.in_(values))
        )
    if field == "beat":
        return exists(
            select(ContactBeat.contact_id).where(ContactBeat.contact_id == Contact.id, ContactBeat.beat.in_(values))
        )
    if field == "tag":
        return exists(
            select(ContactTag.contact_id).where(ContactTag.contact_id == Contact.id, ContactTag.tag.in_(values))
        )
    if field == "domain":
        return or_(false(), *(Contact.email.like("%@" + _escape_like(v), escape="\\") for v in values))
    if field == "email":
        return Contact.email.in_(values)
    if field == "outlet":
        return func.lower(Contact.outlet).in_(values)
    if _is_attr(field):
        key = field.removeprefix("attr.")
        attr: ColumnElement[str] = Contact.attributes[key].as_string()
        return attr.in_(list(p.values))
    column = {
        "outlet_type": Contact.outlet_type,
        "region": Contact.region,
        "country": Contact.country,
        "language": Contact.language,
        "timezone": Contact.timezone,
    }[field]
    if field == "timezone":
        return column.in_(list(p.values))
    return column.in_(values)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def compile_rule(rule: str) -> ColumnElement[bool]:
    """Parse and compile in one step; only live (not erased) contacts match."""
    return and_(Contact.email.is_not(None), to_sql(parse_rule(rule)))
