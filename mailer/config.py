"""Typed settings: a TOML file, then ``MAILER_*`` environment overrides.

Loaded once by the CLI or the web app factory and passed down; nothing reads a global.
Environment variables use ``__`` between section and key: ``MAILER_SMTP__PORT=2525``,
``MAILER_SECRET_KEY=...``. Secrets belong in the environment, not in the file.

Over 400 lines on purpose: one noun (the settings), one small class per section of
config.example.toml; splitting would scatter the one schema the example file mirrors.
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

from mailer.domain.errors import ConfigError, MailerError
from mailer.domain.replies import ReplyKind
from mailer.domain.states import DEFAULT_OUTLET_TYPES

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
    #: (mailer.smtp.client: the budget of a message's whole envelope, RSET/MAIL/RCPT/DATA)
    command_timeout: float = Field(default=300, gt=0)
    #: ... and at least 10 minutes after the final "." of the message data (the budget of
    #: writing the data and reading that reply)
    data_timeout: float = Field(default=600, gt=0)
    #: name sent in EHLO; empty means the machine's name
    helo_name: str | None = None
    #: the SMTP client: "pipelined" (mailer.smtp.client: MAIL and RCPT in one write when the
    #: server offers PIPELINING, RFC 2920; one command at a time when it does not). The
    #: former "aiosmtplib" client is gone: that value is accepted with a warning and means
    #: "pipelined" (bench/README.md: the pipelined client was 12-17% faster).
    client: Literal["pipelined"] = "pipelined"
    #: with PIPELINING offered, each message's data carries the next message's MAIL, RCPT
    #: and DATA in the same write (RFC 2920 3.1; mailer.smtp.client): one write a message
    #: instead of two. Off: each envelope waits for the previous message's reply
    next_envelope_with_data: bool = True
    #: PEM CA bundle trusted for STARTTLS / implicit TLS instead of the system's store
    #: (a private relay with its own CA); empty means the system's trust store
    ca_file: Path | None = None
    #: addresses with a non-ASCII local part (``josé@...``) travel only with SMTPUTF8
    #: (RFC 6531). "yes": the relay offers it (submit accepts such audiences); "auto":
    #: use it when the relay's EHLO offers it, but submit refuses such audiences (not
    #: known in advance); "no": never. IDN domains need none of this (sent as xn--).
    smtputf8: Literal["auto", "yes", "no"] = "auto"
    #: the sending process's event loop (mailer.smtp.loop): "auto" = uvloop when installed
    #: (pip install "mailer[fast]"), "asyncio" = never uvloop, "uvloop" = required
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"

    @field_validator("client", mode="before")
    @classmethod
    def _retired_client(cls, value: object) -> object:
        if value == "aiosmtplib":
            log.warning('smtp.client = "aiosmtplib" is deprecated and ignored: using the pipelined client')
            return "pipelined"
        return value


class SenderSettings(_Section):
    #: the instance's own return-path domain: the bounce receiver accepts it besides every
    #: client's (a client without its own bounce domain sends from bounces.<From domain>)
    bounce_domain: str = "bounces.example.com"
    #: domain of Message-IDs and List-Ids for clients without their own; empty: each
    #: client's From domain
    message_id_domain: str | None = None
    #: SPF mechanisms of the relay that `mailer clients dns` prints for each return-path
    #: domain (e.g. ["ip4:192.0.2.10", "include:_spf.relay.example.net"]); empty: derived
    #: from smtp.host (ip4:/ip6: for an address, else a:HOST)
    spf: list[str] = Field(default_factory=list)
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
    #: the firm's time zone (IANA name): the pages show times in it unless a user chose
    #: their own, and a time typed without a zone is read in it
    time_zone: str = "UTC"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from mailer.domain.when import zone

        try:
            return zone(value, "web.time_zone").key
        except MailerError as exc:
            raise ValueError(str(exc)) from None

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
    #: the public host name of the MTA in front of `mailer bounces serve`: `mailer clients
    #: dns` prints (and checks) it as the MX of every return-path domain
    mx_host: str | None = None
    #: LMTP/SMTP receiver for bounces
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=2526, ge=1, le=65535)
    lmtp: bool = True
    #: raw bounce bytes kept per event for staff
    keep_raw_bytes: int = Field(default=64 * 1024, ge=0)
    imap: ImapSettings = Field(default_factory=ImapSettings)


class ContactSettings(_Section):
    #: the outlet types a contact may have: import, contact edit and segment rules accept
    #: these and nothing else (lower-case letters, digits, '-' and '_', at most 20 each)
    outlet_types: list[str] = Field(default_factory=lambda: list(DEFAULT_OUTLET_TYPES), min_length=1)

    @field_validator("outlet_types")
    @classmethod
    def _slugs(cls, value: list[str]) -> list[str]:
        cleaned: list[str] = []
        for item in value:
            name = item.strip().lower()
            if not re.fullmatch(r"[a-z0-9][a-z0-9_\-]{0,19}", name):
                raise ValueError(f"{item!r}: use lower-case letters, digits, '-' and '_' (at most 20)")
            if name not in cleaned:
                cleaned.append(name)
        return cleaned


class ReplySettings(_Section):
    """Replies to releases (:mod:`mailer.inbound`): each message's Reply-To is
    ``reply+TOKEN@domain``; the inbound receiver (``mailer bounces serve``) records the
    reply against its delivery, classifies it, acts, and forwards it to a person."""

    #: the reply domain (its MX points at ``mailer bounces serve``); empty: replies are
    #: not captured and the client's own Reply-To is used as before
    domain: str | None = None
    #: true: each message's Reply-To is reply+TOKEN@ its client's own return-path domain
    #: (its sending identity, default bounces.<From domain>) instead of ``domain``; the
    #: receiver then takes replies at every client's return-path domain (and at ``domain``)
    per_client: bool = False
    #: where replies are forwarded when neither the release (front matter ``reply_to``)
    #: nor its client names a reply-to person; empty: such replies stay in the inbox only
    forward_to: str | None = None
    #: the From (and envelope sender) of forwarded replies; empty: ``replies@`` the reply
    #: domain (with ``per_client`` and no ``domain``: ``replies@`` the ``[sender] bounce_domain``)
    forward_from: str | None = None
    #: reply kinds that are forwarded (out-of-office and other automatic mail stay in the inbox)
    forward_kinds: list[str] = Field(default_factory=lambda: ["human", "left_outlet", "wrong_beat", "unsubscribe"])
    #: seconds between tries of a forward that failed; the last repeats, a forward is never dropped
    forward_retry: list[int] = Field(default_factory=lambda: [60, 300, 900, 3600])
    #: days a contact is held after an out-of-office reply that gives no return date
    default_hold_days: int = Field(default=14, ge=1, le=365)
    #: a return date further away than this many days is cut to it
    max_hold_days: int = Field(default=120, ge=1, le=3650)
    #: characters of a reply's text kept for the inbox
    keep_text_chars: int = Field(default=20_000, ge=100)

    @field_validator("forward_kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        known = {k.value for k in ReplyKind}
        for kind in value:
            if kind not in known:
                raise ValueError(f"unknown reply kind {kind!r} (one of: {', '.join(sorted(known))})")
        return value

    @field_validator("forward_retry")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or any(v <= 0 for v in value):
            raise ValueError("give at least one positive number of seconds")
        return value


class DkimSettings(_Section):
    #: sign outgoing mail when a key file is given
    key_file: Path | None = None
    selector: str = "mailer"
    #: the d= domain; align it with the From domain of your clients
    domain: str | None = None
    #: where `mailer clients dkim-key` writes each client's keys (SLUG/SELECTOR.pem, mode 0600)
    key_dir: Path = Path("var/dkim")


class RenderSettings(_Section):
    """Limits of one message's render (user-authored templates run in a render process
    that is killed when a limit is passed): at preview, submit, proof and send."""

    #: seconds one message (or compiling one variant) may take
    time_limit: float = Field(default=5.0, gt=0, le=3600)
    #: bytes one message may have (2 MB)
    max_message_bytes: int = Field(default=2 * 1024 * 1024, ge=64 * 1024)
    #: MB the render process may allocate beyond its own start-up size
    memory_limit_mb: int = Field(default=512, ge=64)
    #: render processes of each sending worker (they also DKIM-sign; 2 when signing
    #: makes the render process the limit and a core is spare)
    processes: int = Field(default=1, ge=1, le=8)


class NotifySettings(_Section):
    """Notification mail to staff (submitted, approved, changes requested, paused, sent),
    through ``[smtp]``."""

    #: send notifications at all
    enabled: bool = True
    #: the From (and envelope sender) of notifications
    from_address: str = "mailer@example.com"


class ConversationSettings(_Section):
    """Corrections, withdrawals and follow-ups (``mailer releases correct|withdraw|follow-up``)."""

    #: put in front of a correction's subject (and of its per-segment subjects)
    correction_prefix: str = Field(default="CORRECTION:", max_length=60)
    #: put in front of a withdrawal's subject
    withdrawal_prefix: str = Field(default="WITHDRAWN:", max_length=60)
    #: put in front of a follow-up's subject; empty: the follow-up's own subject
    follow_up_prefix: str = Field(default="", max_length=60)


class CadenceSettings(_Section):
    """A firm-wide limit of messages per journalist, over every release and client.
    A row held back is recorded as ``capped`` with the reason; an approver may lift the
    cap for one release; corrections and withdrawals are never capped."""

    #: messages one contact may get within window_hours; 0 means no cap
    max_per_contact: int = Field(default=0, ge=0)
    #: the sliding window, in hours
    window_hours: float = Field(default=24, gt=0, le=24 * 366)


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
    #: more email templates (Jinja2), beside those that ship with mailer: a file here
    #: with the name of a shipped one replaces it; empty: only the shipped ones. Relative
    #: paths in the config file are relative to the file.
    templates_dir: Path | None = None
    #: where the demo's capture SMTP server writes received messages
    capture_maildir: Path = Path("var/capture")
    #: the data folder: local state of this machine that a database restore must not undo
    #: (the send fence), and the generated signing key (``secret_key`` file, mode 0600) when
    #: no ``secret_key`` is configured
    data_dir: Path = Path("var")


class LogSettings(_Section):
    """The logs of `mailer run`, `mailer bounces serve` and `mailer web` (stderr)."""

    #: "text" (human-readable lines) or "json" (one object per line: time, level, logger,
    #: message, and release, delivery, event when the line is about one)
    format: Literal["text", "json"] = "text"
    #: the level of mailer's own loggers (libraries log warnings and above)
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class WebhookSettings(_Section):
    """Outgoing webhooks (mailer.ops.webhooks), POSTed by `mailer run`."""

    #: seconds between two looks at the outbox
    poll_seconds: float = Field(default=5, gt=0)
    #: seconds one POST may take (connect and answer)
    timeout: float = Field(default=10, gt=0, le=300)
    #: seconds to wait before each retry of a failed POST; the last repeats
    retry_schedule: list[int] = Field(default_factory=lambda: [10, 60, 300, 900, 3600, 7200])
    #: give up (state failed, `mailer webhooks retry` puts it back) this many hours
    #: after the event was queued
    give_up_after_hours: float = Field(default=72, gt=0)
    #: POSTs per look at the outbox
    batch_size: int = Field(default=50, ge=1, le=1000)


#: the long-running processes that write heartbeats
ProcessKind = Literal["sender", "inbound"]


class OpsSettings(_Section):
    """Health, readiness and metrics (mailer.ops)."""

    #: seconds between two heartbeats that `mailer run` and `mailer bounces serve` write
    #: to the database (each also pushes its counters for GET /metrics then)
    heartbeat_seconds: float = Field(default=15, gt=0)
    #: GET /readyz answers 503 when the newest heartbeat of a required process is older
    heartbeat_stale_seconds: float = Field(default=90, gt=0)
    #: the processes whose heartbeats GET /readyz requires: "sender" (`mailer run`) and
    #: "inbound" (`mailer bounces serve`); drop "inbound" when bounces come by IMAP only
    ready_requires: list[ProcessKind] = Field(default_factory=lambda: list[ProcessKind](["sender", "inbound"]))
    #: when set (MAILER_OPS__METRICS_TOKEN), GET /metrics requires "Authorization: Bearer TOKEN"
    metrics_token: SecretStr | None = None


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
    replies: ReplySettings = Field(default_factory=ReplySettings)
    dkim: DkimSettings = Field(default_factory=DkimSettings)
    render: RenderSettings = Field(default_factory=RenderSettings)
    conversations: ConversationSettings = Field(default_factory=ConversationSettings)
    cadence: CadenceSettings = Field(default_factory=CadenceSettings)
    assets: AssetSettings = Field(default_factory=AssetSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    contacts: ContactSettings = Field(default_factory=ContactSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)

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


#: Settings that name a file or folder: a relative value in the config file is relative
#: to the file (issue 21: commands worked only from the folder the file was in).
_PATH_KEYS = (
    ("paths", "templates_dir"),
    ("paths", "capture_maildir"),
    ("paths", "data_dir"),
    ("dkim", "key_file"),
    ("smtp", "ca_file"),
    ("retry", "journal_dir"),
    ("dkim", "key_dir"),
    ("assets", "dir"),
)


def _relative_to(data: dict[str, Any], folder: Path) -> None:
    """Make the file's relative paths (and a relative SQLite database) relative to ``folder``."""
    for section, key in _PATH_KEYS:
        table = data.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), str) and table[key].strip():
            value = Path(table[key]).expanduser()
            if not value.is_absolute():
                table[key] = str(folder / value)
    database = data.get("database")
    if isinstance(database, dict) and isinstance(database.get("url"), str):
        url = database["url"]
        m = re.match(r"^(sqlite(?:\+\w+)?:///)(?!/)([^?]+)(\?.*)?$", url)
        if m is not None and m.group(2) != ":memory:":
            database["url"] = f"{m.group(1)}{folder / m.group(2)}{m.group(3) or ''}"


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
        _relative_to(data, chosen.resolve().parent)
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
