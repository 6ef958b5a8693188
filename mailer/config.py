"""Typed settings: a TOML file, then ``MAILER_*`` environment overrides.

Loaded once by the CLI or the web app factory and passed down; nothing reads a global.
Environment variables use ``__`` between section and key: ``MAILER_SMTP__PORT=2525``,
``MAILER_SECRET_KEY=...``. Secrets belong in the environment, not in the file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mailer.errors import ConfigError

DEFAULT_CONFIG_FILE = "mailer.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    #: SQLAlchemy URL. ``sqlite:///mailer.db`` (relative to the working directory) or
    #: ``postgresql+psycopg://user@host/dbname``.
    url: str = "sqlite:///mailer.db"
    #: SQLite only: how long a writer waits for the lock, in milliseconds.
    busy_timeout_ms: int = Field(default=10_000, ge=0)

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "sqlite+", "postgresql:", "postgresql+")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value


class SmtpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=2525, ge=1, le=65535)
    #: "none" (plain, for a local relay), "starttls" or "implicit" (TLS from the start, port 465)
    tls: Literal["none", "starttls", "implicit"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    #: connections kept open and reused by one worker process
    pool_size: int = Field(default=4, ge=1, le=256)
    #: messages per second over all connections of one process; 0 means no limit
    rate_per_second: float = Field(default=0, ge=0)
    #: messages per second to any one recipient domain; 0 means no limit
    rate_per_domain: float = Field(default=0, ge=0)
    connect_timeout: float = Field(default=30, gt=0)
    #: RFC 5321 4.5.3.2 asks clients to wait at least 5 minutes for each command reply ...
    command_timeout: float = Field(default=300, gt=0)
    #: ... and at least 10 minutes after the final "." of the message data.
    data_timeout: float = Field(default=600, gt=0)
    #: name sent in EHLO; empty means the machine's name
    helo_name: str | None = None
    #: the SMTP client: "pipelined" (mailer.smtp: MAIL and RCPT in one write when the
    #: server offers PIPELINING, RFC 2920; three round trips a message instead of four)
    #: or "aiosmtplib" (one command at a time)
    client: Literal["pipelined", "aiosmtplib"] = "pipelined"
    #: PEM CA bundle trusted for STARTTLS / implicit TLS instead of the system's store
    #: (a private relay with its own CA); empty means the system's trust store
    ca_file: Path | None = None


class SenderSettings(_Section):
    #: domain of the VERP return path: bounces+TOKEN@bounce_domain
    bounce_domain: str = "bounces.example.com"
    #: domain used in Message-IDs and List-Id
    message_id_domain: str = "mail.example.com"
    #: offer a mailto: unsubscribe (unsubscribe+TOKEN@bounce_domain) besides the https one
    mailto_unsubscribe: bool = False


class WebSettings(_Section):
    #: public base URL of the unsubscribe pages, as journalists' mail clients will reach it
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class RetrySettings(_Section):
    #: seconds to wait before each retry of a deferred delivery; the last repeats
    schedule: list[int] = Field(default_factory=lambda: [300, 900, 3600, 10800, 21600])
    #: give up (state failed) this many seconds after the first attempt
    give_up_after: int = Field(default=3 * 24 * 3600, gt=0)
    #: seconds a worker's claim on a batch lasts before another worker may take it over
    lease_seconds: int = Field(default=300, gt=0)
    #: rows claimed per batch
    batch_size: int = Field(default=200, ge=1, le=10_000)
    #: policy refusals (5.7.x) in a row that pause a release (circuit breaker)
    policy_failures_to_pause: int = Field(default=20, ge=1)


class ImapSettings(_Section):
    #: poll this mailbox for returned mail (empty host: no polling)
    host: str | None = None
    port: int = Field(default=993, ge=1, le=65535)
    ssl: bool = True
    username: str | None = None
    #: from MAILER_BOUNCES__IMAP__PASSWORD
    password: SecretStr | None = None
    folder: str = "INBOX"
    #: move handled messages here (needs IMAP MOVE); empty: flag them \\Seen
    processed_folder: str | None = None
    poll_seconds: float = Field(default=60, gt=0)
    timeout: float = Field(default=60, gt=0)
    batch_size: int = Field(default=100, ge=1)


class BounceSettings(_Section):
    #: suppress the address at the first hard bounce
    suppress_hard: bool = True
    #: soft bounces (counted at most once a day) that suppress an address
    soft_threshold: int = Field(default=5, ge=1)
    #: a soft-bounce score older than this many days starts again at zero
    soft_reset_days: int = Field(default=30, ge=1)
    #: LMTP/SMTP receiver for bounces
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=2526, ge=1, le=65535)
    lmtp: bool = True
    #: raw bounce bytes kept per event for staff
    keep_raw_bytes: int = Field(default=64 * 1024, ge=0)
    imap: ImapSettings = Field(default_factory=ImapSettings)


class DkimSettings(_Section):
    #: sign outgoing mail when a key file is given
    key_file: Path | None = None
    selector: str = "mailer"
    #: the d= domain; align it with the From domain of your clients
    domain: str | None = None


class RenderSettings(_Section):
    """Limits of one message's render (user-authored templates run in a render process
    that is killed when a limit is passed): at preview, submit, proof and send."""

    #: seconds one message (or compiling one variant) may take
    time_limit: float = Field(default=5.0, gt=0, le=3600)
    #: bytes one message may have (2 MB)
    max_message_bytes: int = Field(default=2 * 1024 * 1024, ge=64 * 1024)
    #: MB the render process may allocate beyond its own start-up size
    memory_limit_mb: int = Field(default=512, ge=64)


class PathSettings(_Section):
    #: email templates (Jinja2)
    templates_dir: Path = Path("templates")
    #: where the demo's capture SMTP server writes received messages
    capture_maildir: Path = Path("var/capture")


class Settings(BaseSettings):
    """Everything configurable. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="MAILER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    #: signs unsubscribe tokens and web sessions; set MAILER_SECRET_KEY in production
    secret_key: SecretStr = SecretStr("change-me-insecure-development-key")
    #: older keys that still verify tokens (key rotation); newest first
    old_secret_keys: list[SecretStr] = Field(default_factory=list)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    sender: SenderSettings = Field(default_factory=SenderSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    bounces: BounceSettings = Field(default_factory=BounceSettings)
    dkim: DkimSettings = Field(default_factory=DkimSettings)
    render: RenderSettings = Field(default_factory=RenderSettings)
    paths: PathSettings = Field(default_factory=PathSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment wins over them.
        return (env_settings, init_settings)


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    value = error.get("input")
    shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
    return f"{key}: {error['msg']}{shown}"


def load_settings(path: Path | str | None = None) -> Settings:
    """Read settings from ``path`` (or ``$MAILER_CONFIG``, or ``./mailer.toml`` when present).

    A missing explicit file, a TOML syntax error or a bad key/value raises
    :class:`ConfigError` with one line naming the file and the key.
    """
    env = os.environ
    explicit = path is not None or "MAILER_CONFIG" in env
    chosen = Path(path) if path is not None else Path(env.get("MAILER_CONFIG", DEFAULT_CONFIG_FILE))
    data: dict[str, Any] = {}
    if chosen.exists():
        try:
            with chosen.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{chosen}: not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"{chosen}: cannot read: {exc.strerror}") from exc
    elif explicit:
        raise ConfigError(f"{chosen}: config file not found")
    try:
        return Settings(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{chosen}: {_describe(dict(first))}{more}", key=key) from exc
