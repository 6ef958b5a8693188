"""One exception tree for everything mailer raises on purpose.

    MailerError                      base; ``str(err)`` is one line fit for a user
    ├── ConfigError                  bad config file, key or value (``key`` names it)
    ├── InputError                   bad user input: CSV, rule, address, front matter
    │   ├── SegmentSyntaxError       a rule that does not parse (``column`` points at it)
    │   └── HeaderInjectionError     CR/LF or other control characters in a header field
    ├── NotFoundError                a named thing (release, contact, list...) does not exist
    ├── WorkflowError                a state transition that the rules forbid
    ├── TemplateError                a template that fails to compile or render (``line``)
    ├── TransportError               SMTP could not be reached or used at all
    └── StoreError                   the database refused or could not be reached

Library exceptions are converted at the boundary (``raise X(...) from exc``); the CLI
prints ``str(err)`` on one line and exits with ``err.exit_code``.
"""

from __future__ import annotations


class MailerError(Exception):
    """Base of every error mailer raises on purpose."""

    exit_code: int = 1


class ConfigError(MailerError):
    """The configuration file or environment holds a bad key or value."""

    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class InputError(MailerError, ValueError):
    """User input that cannot be used as given."""

    exit_code = 2


class SegmentSyntaxError(InputError):
    """A segment rule that does not parse; ``column`` is 1-based."""

    def __init__(self, message: str, *, rule: str, column: int) -> None:
        super().__init__(f"{message} at column {column}: {rule!r}")
        self.rule = rule
        self.column = column


class HeaderInjectionError(InputError):
    """A value meant for a header contains CR, LF or another control character."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field}: line breaks and control characters are not allowed")
        self.field = field


class NotFoundError(MailerError, LookupError):
    """A named object does not exist."""

    exit_code = 3


class WorkflowError(MailerError):
    """A transition that the state machine forbids."""

    exit_code = 4


class TemplateError(MailerError):
    """A template failed to compile or render."""

    exit_code = 2

    def __init__(self, message: str, *, template: str | None = None, line: int | None = None):
        where = ""
        if template:
            where = f"{template}" + (f", line {line}" if line else "") + ": "
        super().__init__(f"{where}{message}")
        self.template = template
        self.line = line


class TransportError(MailerError, ConnectionError):
    """SMTP could not be used at all (connect, TLS, auth)."""

    exit_code = 5


class StoreError(MailerError):
    """The database refused an operation or could not be reached."""

    exit_code = 6
