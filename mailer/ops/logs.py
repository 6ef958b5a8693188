"""Logging of the long-running commands: human-readable lines (the default) or, with
``[log] format = "json"``, one JSON object per line for a log shipper::

    {"time": "2026-12-01T09:00:00.123Z", "level": "WARNING", "logger": "mailer.engine.writer",
     "message": "release 7 paused: ...", "release": 7, "event": "paused"}

``release``, ``delivery`` and ``event`` appear when the line is about one: callers pass
them as ``extra={"release": id, "event": "paused"}``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from mailer.config import LogSettings

#: the record attributes copied into a JSON line when a caller set them (``extra=``)
CONTEXT_FIELDS = ("release", "delivery", "event")

TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the
    context fields that are set, and ``exception`` (the formatted traceback) if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(settings: LogSettings, *, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) in the configured format: warnings
    and above from libraries, ``settings.level`` from mailer's loggers. Replaces the
    root logger's handlers; returns the handler installed."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("mailer").setLevel(settings.level)
    return handler


def uvicorn_log_config(settings: LogSettings) -> dict[str, Any] | None:
    """uvicorn's ``log_config``: None (leave logging as :func:`configure_logging` set it,
    so access lines are JSON too) in JSON mode; uvicorn's default otherwise."""
    if settings.format == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG
