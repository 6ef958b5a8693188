"""Fixed values of every test process: the checkout, the templates, the test clock's
instant and the signing key (also handed to the CLI processes tests start)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "templates"
FIXED_NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
#: The signing key of every test process and of the CLI processes tests start (there is
#: no built-in key; without one a key file would be generated in the working directory).
TEST_SECRET = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
os.environ.setdefault("MAILER_SECRET_KEY", TEST_SECRET)
