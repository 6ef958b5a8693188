"""The segment rule language: parsing, errors with columns, and evaluation on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer import store
from mailer.audience import contacts
from mailer.domain.errors import SegmentSyntaxError
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.segments import BoolOp, Not, Predicate, parse_rule
from mailer.store.tables import Contact
from tests.support.constants import FIXED_NOW

CSV = """email,first_name,outlet,outlet_type,beats,region,tags,desk
tv1@example.com,Tia,Channel Nine,tv,foreign-policy|tv-booking,us-east,booker,night
radio1@example.com,Rui,Meridian Radio,radio,foreign-policy,us-west,,day
print1@example.com,Pia,Harbor Ledger,print,foreign-policy,us-east,freelance,night
print2@example.com,Pat,Harbor Ledger,print,business,eu,,
web1@example.org,Wen,O'Brien Online,online,human-rights|politics,us-east,freelance,
"""


@pytest.fixture
def people(rt: Runtime, tmp_path: Path) -> Runtime:
    path = tmp_path / "people.csv"
    path.write_text(CSV)
    contacts.import_csv(rt.sessions, path, list_slug="national-press", now=FIXED_NOW)
    other = tmp_path / "other.csv"
    other.write_text("email\nprint2@example.com\nlone@example.net\n")
    contacts.import_csv(rt.sessions, other, list_slug="business-desk", now=FIXED_NOW)
    return rt


def matches(rt: Runtime, rule: str) -> list[str]:
    with transaction(rt.sessions) as s:
        return sorted(c.email or "" for c in store.segment_sample(s, rule, 100))


def test_parse_precedence_and_in_lists() -> None:
    """AND binds tighter than OR; IN takes a list; NOT applies to the next factor."""
    node = parse_rule("list:a OR beat:b AND NOT tag:c")
    assert node == BoolOp(
        "or", (Predicate("list", ("a",)), BoolOp("and", (Predicate("beat", ("b",)), Not(Predicate("tag", ("c",))))))
    )
    assert parse_rule('outlet_type in (tv, "radio")') == Predicate("outlet_type", ("tv", "radio"))


@pytest.mark.parametrize(
    ("rule", "column", "message"),
    [
        ("", 1, "empty rule"),
        ("beat:", 6, "expected a value"),
        ("colour:red", 1, "unknown field 'colour'"),
        ("beat:x AND", 11, "expected a field name"),
        ("beat:x tag:y", 8, "expected AND, OR"),
        ("(beat:x OR tag:y", 17, "expected ')'"),
        ("outlet_type IN tv", 16, "expected '(' after IN"),
        ("beat:x'; DROP TABLE contacts; --", 7, "unexpected character"),
        ("beat = x", 6, "unexpected character"),
    ],
)
def test_syntax_errors_point_at_the_column(rule: str, column: int, message: str) -> None:
    """Each malformed rule raises SegmentSyntaxError naming what went wrong and where."""
    with pytest.raises(SegmentSyntaxError) as info:
        parse_rule(rule)
    assert info.value.column == column
    assert message in str(info.value)


def test_issue_example_rule(people: Runtime) -> None:
    """list AND beat AND outlet_type IN (...) selects the broadcast foreign-policy people only."""
    rule = "list:national-press AND beat:foreign-policy AND outlet_type IN (tv, radio)"
    assert matches(people, rule) == ["radio1@example.com", "tv1@example.com"]


def test_not_region_tag_attribute_domain(people: Runtime) -> None:
    """NOT, region, tag, attributes, domain and outlet predicates evaluate as documented."""
    assert matches(people, "list:national-press AND NOT tag:freelance") == [
        "print2@example.com",
        "radio1@example.com",
        "tv1@example.com",
    ]
    assert matches(people, "region:US-EAST AND attr.desk:night") == ["print1@example.com", "tv1@example.com"]
    assert matches(people, "domain:example.org") == ["web1@example.org"]
    assert matches(people, 'outlet:"harbor ledger" AND list:business-desk') == ["print2@example.com"]
    assert matches(people, 'outlet:"O\'Brien Online"') == ["web1@example.org"]


def test_injection_attempts_are_values_not_sql(people: Runtime) -> None:
    """Quoted values full of SQL are compared as plain strings: no match, no error, table intact."""
    for value in ['"x\' OR 1=1 --"', '"%"', '"_"', '"\'; DELETE FROM contacts; --"']:
        assert matches(people, f"outlet:{value}") == []
        assert matches(people, f"domain:{value}") == []
    with transaction(people.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 6


def test_segment_is_evaluated_at_query_time(people: Runtime, tmp_path: Path) -> None:
    """A saved segment counts contacts imported after it was created."""
    with transaction(people.sessions) as s:
        store.save_segment(s, "fp", "beat:foreign-policy", description=None, now=FIXED_NOW)
        assert store.segment_count(s, store.get_segment(s, "fp").rule) == 3
    more = tmp_path / "more.csv"
    more.write_text("email,beats\nnew@example.com,foreign-policy\n")
    contacts.import_csv(people.sessions, more, list_slug="national-press", now=FIXED_NOW)
    with transaction(people.sessions) as s:
        assert store.segment_count(s, store.get_segment(s, "fp").rule) == 4
