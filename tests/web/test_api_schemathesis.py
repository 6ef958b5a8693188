"""Schemathesis against the API's own OpenAPI document, on SQLite and PostgreSQL: for
generated requests to every operation (with a valid token, over seeded data), no 5xx,
documented status codes and content types, and bodies that match the schema.

Bounded (a few examples per operation) so the module runs in well under a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from mailer.runtime import Runtime
from tests.support.web import api_token, app_for, seed_release

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_api_conforms_to_its_openapi(rt: Runtime, tmp_path: Path) -> None:
    """Every operation, fuzzed with valid auth: never a 5xx, always a documented, schema-valid answer."""
    seed_release(rt, tmp_path)
    token = api_token(rt)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app_for(rt))
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) == 19  # 8 reading (and pause, resume) + 9 writing (issue 21) + correct, withdraw
    auth = {"Authorization": f"Bearer {token}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Case[Any]) -> None:
            case.call_and_validate(headers=auth, checks=CHECKS)

        check()
