"""Typed settings: a TOML file, then ``MAILER_*`` environment overrides.

Loaded once by the CLI or the web app factory and passed down; nothing reads a global.
Environment variables use ``__`` between section and key: ``MAILER_SMTP__PORT=2525``,
``MAILER_SECRET_KEY=...``. Secrets belong in the environment, not in the file.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from mailer.domain.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = "mailer.toml"

#: Shortest signing key accepted: 256 bits, the HMAC-SHA256 key size (RFC 2104 section 3).
MIN_SECRET_BYTES = 32
#: The key earlier versions used when none was configured. It is public, so it signs
#: nothing and verifies nothing (issue 12: it forged admin sessions and unsubscribe tokens).
RETIRED_DEFAULT_SECRET = "change-me-insecure-development-key"
#: Settings whose value never appears in an error message.
_SECRET_KEYS = ("secret_key", "old_secret_keys")


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
    #: the SMTP client: "pipelined" (mailer.smtp.client: MAIL and RCPT in one write when the
    #: server offers PIPELINING, RFC 2920; one command at a time when it does not). The
    #: former "aiosmtplib" client is gone: that value is accepted with a warning and means
    #: "pipelined" (bench/README.md: the pipelined client was 12-17% faster).
    client: Literal["pipelined"] = "pipelined"
    #: PEM CA bundle trusted for STARTTLS / implicit TLS instead of the system's store
    #: (a private relay with its own CA); empty means the system's trust store
    ca_file: Path | None = None
    #: addresses with a non-ASCII local part (``josé@...``) travel only with SMTPUTF8
    #: (RFC 6531). "yes": the relay offers it (submit accepts such audiences); "auto":
    #: use it when the relay's EHLO offers it, but submit refuses such audiences (not
    #: known in advance); "no": never. IDN domains need none of this (sent as xn--).
    smtputf8: Literal["auto", "yes", "no"] = "auto"

    @field_validator("client", mode="before")
    @classmethod
    def _retired_client(cls, value: object) -> object:
        if value == "aiosmtplib":
            log.warning('smtp.client = "aiosmtplib" is deprecated and ignored: using the pipelined client')
            return "pipelined"
        return value


class SenderSettings(_Section):
    #: domain of the VERP return path: bounces+TOKEN@bounce_domain
    bounce_domain: str = "bounces.example.com"
    #: domain used in Message-IDs and List-Id
    message_id_domain: str = "mail.example.com"
    #: offer a mailto: unsubscribe (unsubscribe+TOKEN@bounce_domain) besides the https one
    mailto_unsubscribe: bool = False
    #: a scheduled release not started within this many hours after its send time (or
    #: its approval, when later) waits for a person (`mailer releases confirm-late`);
    #: a release's own ``not_after`` wins; 0 means no limit
    not_after_hours: float = Field(default=24, ge=0)


class WebSettings(_Section):
    #: public base URL of the unsubscribe pages, as journalists' mail clients will reach it
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    #: reverse proxies (addresses or networks) whose X-Forwarded-For is believed; empty:
    #: none, the client is the TCP peer (a forged header never escapes a rate limit)
    trusted_proxies: list[str] = Field(default_factory=list)
    #: a staff session ends this many hours after sign-in ...
    session_hours: float = Field(default=12, gt=0, le=24 * 30)
    #: ... or after this many minutes without a request
    session_idle_minutes: float = Field(default=120, gt=0)
    #: failed sign-ins that make further tries answer 429: per (address, client IP) and
    #: per client IP within login_window_minutes, and over all clients per minute
    login_failures_per_address: int = Field(default=5, ge=1)
    login_failures_per_ip: int = Field(default=20, ge=1)
    login_failures_per_minute: int = Field(default=60, ge=1)
    login_window_minutes: float = Field(default=15, gt=0)
    #: password checks (Argon2) that run at once; more wait their turn
    login_concurrency: int = Field(default=2, ge=1, le=64)
    #: message previews one staff user may render per minute (429 beyond)
    previews_per_minute: int = Field(default=30, ge=1)
    #: previews rendering at once, in threads of their own (never the pool that serves
    #: the unsubscribe endpoints)
    preview_concurrency: int = Field(default=2, ge=1, le=64)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {entry!r}") from None
        return [entry.strip() for entry in value]


class RetrySettings(_Section):
    #: seconds to wait before each retry of a deferred delivery; the last repeats
    schedule: list[int] = Field(default_factory=lambda: [300, 900, 3600, 10800, 21600])
    #: give up (state failed) this many seconds after the first attempt
    give_up_after: int = Field(default=3 * 24 * 3600, gt=0)
    #: seconds a worker's claim on a batch lasts before another worker may take it over
    lease_seconds: int = Field(default=300, gt=0)
    #: rows claimed per batch
    batch_size: int = Field(default=200, ge=1, le=10_000)
    #: where each worker process appends the SMTP results it heard before recording them
    #: (one small file per process), so that a killed worker's accepted messages are
    #: recorded as sent instead of ``unknown``; empty: beside an SQLite database file
    #: (``mailer.db.heard``), else ``var/heard``. Replayed by the next worker on this host.
    journal_dir: Path | None = None


class BreakerSettings(_Section):
    """The circuit breaker that pauses a release when relays refuse it (not its recipients).

    Counted refusals: policy (5.7.x), content or size, and our sender refused with a
    temporary code. A permanent refusal of our sender (``553 5.1.8``, SPF/DKIM/DMARC,
    "no PTR") pauses at once, whatever these say. Counted over every worker process."""

    #: counted refusals in a row that pause a release
    streak: int = Field(default=5, ge=1)
    #: the sliding window: the release's last N results, over all worker processes ...
    window: int = Field(default=50, ge=2, le=500)
    #: ... pause when at least this share of them are counted refusals ...
    rate: float = Field(default=0.3, gt=0, le=1)
    #: ... once the window holds at least this many results
    min_results: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _sample_fits_window(self) -> BreakerSettings:
        if self.min_results > self.window:
            raise ValueError(f"min_results ({self.min_results}) must not exceed window ({self.window})")
        return self


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
    #: soft bounces (counted at most once a day) that start the warn/disable flow
    soft_threshold: int = Field(default=5, ge=1)
    #: a soft-bounce score whose last bounce is older than this many days is stale and
    #: starts again (Mailman's bounce_info_stale_after: 7 days)
    soft_reset_days: int = Field(default=7, ge=1)
    #: warnings (one event each for staff) after the threshold before the address is
    #: suppressed; 0 suppresses at the threshold (Mailman: 3 warnings)
    soft_warnings: int = Field(default=3, ge=0)
    #: days between two warnings (Mailman: 7)
    soft_warning_days: int = Field(default=7, ge=1)
    #: the feedback-loop address providers send ARF reports to (for example
    #: "fbl@bounces.example.com"); the receiver accepts it besides postmaster@ and abuse@
    feedback_address: str | None = None
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


class AssetSettings(_Section):
    """Press-kit assets of releases (photos, documents): stored on local disk (the storage
    sits behind a small interface, :mod:`mailer.releases.storage`), served by ``mailer web``
    from ``web.base_url``, linked from every message."""

    #: where the files are kept
    dir: Path = Path("var/assets")
    #: largest image (PNG, JPEG, GIF, WebP), bytes
    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    #: largest document (PDF, Word/Excel/PowerPoint, plain text), bytes
    max_document_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    #: largest document that may also travel as a true attachment of every message
    #: (``attach --attach``; a warning says why links are better); 0: never
    max_attachment_bytes: int = Field(default=512 * 1024, ge=0)


class PathSettings(_Section):
    #: email templates (Jinja2)
    templates_dir: Path = Path("templates")
    #: where the demo's capture SMTP server writes received messages
    capture_maildir: Path = Path("var/capture")
    #: the data folder: local state of this machine that a database restore must not undo
    #: (the send fence), and the generated signing key (``secret_key`` file, mode 0600) when
    #: no ``secret_key`` is configured
    data_dir: Path = Path("var")


class Settings(BaseSettings):
    """Everything configurable. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="MAILER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    #: signs unsubscribe tokens, VERP addresses and web sessions (MAILER_SECRET_KEY), at
    #: least 32 bytes; when unset, a random key is generated once in ``paths.data_dir``
    #: (see :func:`mailer.message.tokens.signing_secret`)
    secret_key: SecretStr | None = None
    #: older keys that still verify tokens (key rotation); newest first
    old_secret_keys: list[SecretStr] = Field(default_factory=list)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    sender: SenderSettings = Field(default_factory=SenderSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    bounces: BounceSettings = Field(default_factory=BounceSettings)
    dkim: DkimSettings = Field(default_factory=DkimSettings)
    render: RenderSettings = Field(default_factory=RenderSettings)
    assets: AssetSettings = Field(default_factory=AssetSettings)
    paths: PathSettings = Field(default_factory=PathSettings)

    @field_validator("secret_key")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret(value.get_secret_value())
        return value

    @field_validator("old_secret_keys")
    @classmethod
    def _strong_old_secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            check_secret(key.get_secret_value())
        return value

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


def check_secret(secret: str) -> str:
    """Return ``secret`` if it may sign tokens: at least :data:`MIN_SECRET_BYTES` bytes of
    UTF-8 and not the retired built-in default. Raises ValueError saying why (never the key)."""
    size = len(secret.encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        raise ValueError(
            f"must be at least {MIN_SECRET_BYTES} bytes (got {size}); make one with "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`"
        )
    if secret == RETIRED_DEFAULT_SECRET:
        raise ValueError("is the old built-in development key, which is public: generate a new one")
    return secret


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    secret = str(error["loc"][0]) in _SECRET_KEYS if error["loc"] else False
    shown = "" if secret or isinstance(value, dict | list) or value is None else f" (got {value!r})"
    return f"{key}: {message}{shown}"


def _env_name(message: str) -> str:
    """``MAILER_OLD_SECRET_KEYS`` from pydantic-settings' 'error parsing value for field
    "old_secret_keys" from source ...'; the generic prefix when no field is named."""
    found = re.search(r'field "([^"]+)"', message)
    return "MAILER_" + found.group(1).upper() if found else "a MAILER_* environment variable"


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
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{chosen}: not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8") from exc
        except OSError as exc:
            raise ConfigError(f"{chosen}: cannot read: {exc.strerror}") from exc
    elif explicit:
        raise ConfigError(f"{chosen}: config file not found")
    try:
        return Settings(**data)
    except SettingsError as exc:
        # A complex value (a list, a section) in the environment must be JSON.
        name = _env_name(str(exc))
        raise ConfigError(f"{name}: not valid JSON (give a JSON list, e.g. '[\"key-one\"]')", key=name) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        # The environment wins over the file: name the variable when the value came from it.
        variable = "MAILER_" + "__".join(str(part).upper() for part in first["loc"] if isinstance(part, str))
        source = variable if variable in env else str(chosen)
        raise ConfigError(f"{source}: {_describe(dict(first))}{more}", key=key) from exc
