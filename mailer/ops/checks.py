"""The result of one operator check (``mailer doctor``): a name, a state and one line."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but worth a look (no PIPELINING, an http base URL on localhost)
    FAIL = "fail"  # will not work in production: the command exits non-zero
    SKIP = "skip"  # could not be checked here (no DNS, no DKIM key configured)


@dataclass(frozen=True)
class CheckResult:
    name: str
    state: State
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"check": self.name, "state": self.state.value, "detail": self.detail}


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, State.OK, detail)


def warn(name: str, detail: str) -> CheckResult:
    return CheckResult(name, State.WARN, detail)


def fail(name: str, detail: str) -> CheckResult:
    return CheckResult(name, State.FAIL, detail)


def skip(name: str, detail: str) -> CheckResult:
    return CheckResult(name, State.SKIP, detail)
