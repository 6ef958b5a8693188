"""Outlet types come from ``[contacts] outlet_types`` (issue 15): import, segment rules and
the config check agree; the default adds magazine, blog, trade and agency."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mailer.audience import contacts
from mailer.config import ContactSettings, load_settings
from mailer.domain.errors import ConfigError, SegmentSyntaxError
from mailer.domain.states import DEFAULT_OUTLET_TYPES
from mailer.runtime import Runtime
from mailer.store.segments import check_rule
from tests.support.constants import FIXED_NOW

ROWS = "email,outlet_type\na@example.com,Magazine\nb@example.com,blog\nc@example.com,trade\nd@example.com,agency\ne@example.com,tv\n"


def test_defaults_add_magazine_blog_trade_and_agency() -> None:
    """The default list keeps the old seven and adds the four new types."""
    assert set(DEFAULT_OUTLET_TYPES) >= {"print", "tv", "radio", "online", "wire", "podcast", "newsletter"}
    assert set(DEFAULT_OUTLET_TYPES) >= {"magazine", "blog", "trade", "agency"}
    assert ContactSettings().outlet_types == list(DEFAULT_OUTLET_TYPES)


def test_import_accepts_the_new_defaults(rt: Runtime, tmp_path: Path) -> None:
    """Magazine (any case), blog, trade and agency import with the default settings."""
    path = tmp_path / "c.csv"
    path.write_text(ROWS)
    result = contacts.import_csv(rt.sessions, path, list_slug="press", now=FIXED_NOW)
    assert (result.accepted, result.rejected) == (5, [])


def test_import_refuses_a_type_the_configuration_leaves_out(rt: Runtime, tmp_path: Path) -> None:
    """With outlet_types = [tv, radio] only the tv row lands; the others name the setting."""
    path = tmp_path / "c.csv"
    path.write_text(ROWS)
    result = contacts.import_csv(rt.sessions, path, list_slug="press", now=FIXED_NOW, outlet_types=["tv", "radio"])
    assert result.accepted == 1
    assert [r.line for r in result.rejected] == [2, 3, 4, 5]
    assert "[contacts] outlet_types" in result.rejected[0].reason


def test_segment_rules_check_outlet_types_at_the_column() -> None:
    """outlet_type IN (tv, zine) with zine not configured is refused pointing at 'zine'; configured values pass."""
    rule = "beat:x AND outlet_type IN (tv, zine)"
    with pytest.raises(SegmentSyntaxError) as caught:
        check_rule(rule, outlet_types=DEFAULT_OUTLET_TYPES)
    assert caught.value.column == rule.index("zine") + 1
    check_rule("outlet_type:zine", outlet_types=["zine"])


def test_config_file_sets_and_checks_outlet_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A TOML [contacts] outlet_types list is read lower-cased; 'Not OK!' is a one-line config error."""
    monkeypatch.delenv("MAILER_CONFIG", raising=False)
    good = tmp_path / "good.toml"
    good.write_text('[contacts]\noutlet_types = ["Print", "zine"]\n')
    assert load_settings(good).contacts.outlet_types == ["print", "zine"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[contacts]\noutlet_types = ["Not OK!"]\n')
    with pytest.raises(ConfigError, match=r"contacts\.outlet_types"):
        load_settings(bad)
    with pytest.raises(ValidationError):
        ContactSettings(outlet_types=[])
