"""`[log] format = "json"`: one JSON object per line with the context fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from mailer.config import LogSettings, Settings
from mailer.ops.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    mailer_level = logging.getLogger("mailer").level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("mailer").setLevel(mailer_level)


def test_json_lines_carry_time_level_logger_and_context(restore_logging: None) -> None:
    """A warning about a release and a delivery becomes one parseable object with those fields."""
    stream = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=stream)
    logging.getLogger("mailer.engine.writer").warning(
        "release %s paused: %s", 7, "breaker", extra={"release": 7, "delivery": 12, "event": "paused"}
    )
    logging.getLogger("mailer.engine").debug("not shown at INFO")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("mailer.ops").exception("failed")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert first["level"] == "WARNING" and first["logger"] == "mailer.engine.writer"
    assert first["message"] == "release 7 paused: breaker"
    assert (first["release"], first["delivery"], first["event"]) == (7, 12, "paused")
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert "ValueError: boom" in lines[1]["exception"] and "release" not in lines[1]


def test_text_stays_the_default(restore_logging: None) -> None:
    """Without [log] the lines are human-readable, not JSON."""
    assert Settings().log.format == "text"
    stream = io.StringIO()
    configure_logging(Settings().log, stream=stream)
    logging.getLogger("mailer.bounces").info("unmatched notice %s", "abc")
    line = stream.getvalue().strip()
    assert "mailer.bounces INFO unmatched notice abc" in line and not line.startswith("{")
