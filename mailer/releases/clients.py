"""Clients: the organisations releases are sent for (sender identity, postal address,
disclosure), validated from command-line options or a client TOML file."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from mailer.audience.contacts import check_slug, normalize_email
from mailer.domain.errors import InputError
from mailer.message import check_header_value
from mailer.releases.source import read_text_file
from mailer.store import releases as release_store
from mailer.store.tables import Client

__all__ = ["ClientFields", "client_fields", "create_client", "load_client_file"]


@dataclass(frozen=True)
class ClientFields:
    """A validated client: addresses normalized, header fields single-line."""

    slug: str
    name: str
    from_name: str
    from_address: str
    reply_to: str | None
    postal_address: str
    disclosure: str | None
    #: its newsroom pages carry ``noindex`` (search engines leave them out)
    newsroom_noindex: bool = False

    def values(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_CLIENT_REQUIRED = ("slug", "name", "from_name", "from_address", "postal_address")
_CLIENT_OPTIONAL = ("reply_to", "disclosure")
_CLIENT_FLAGS = ("newsroom_noindex",)


def client_fields(data: Mapping[str, Any]) -> ClientFields:
    """Validate a client definition (from options or a TOML file).

    Raises InputError naming the key: unknown or missing keys, non-strings, a bad slug,
    an invalid address (email-validator, no DNS), CR/LF in a header field (name,
    from_name), an empty postal address.
    """
    known = _CLIENT_REQUIRED + _CLIENT_OPTIONAL + _CLIENT_FLAGS
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{unknown[0]}: unknown key (known: {', '.join(known)})")
    noindex = data.get("newsroom_noindex", False)
    if not isinstance(noindex, bool):
        raise InputError("newsroom_noindex: expected true or false")
    values: dict[str, str | None] = {}
    for key in _CLIENT_REQUIRED + _CLIENT_OPTIONAL:
        value = data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if key in _CLIENT_REQUIRED:
                raise InputError(f"{key}: required")
            values[key] = None
            continue
        if not isinstance(value, str):
            raise InputError(f"{key}: expected a string")
        values[key] = value.strip()
    slug = check_slug(str(values["slug"]), "client")
    name = check_header_value("name", str(values["name"]))
    from_name = check_header_value("from_name", str(values["from_name"]))
    if len(name) > 200 or len(from_name) > 200:
        raise InputError(f"{'name' if len(name) > 200 else 'from_name'}: at most 200 characters")
    from_address = _address("from_address", str(values["from_address"]))
    reply_to = _address("reply_to", values["reply_to"]) if values["reply_to"] else None
    return ClientFields(
        slug=slug,
        name=name,
        from_name=from_name,
        from_address=from_address,
        reply_to=reply_to,
        postal_address=str(values["postal_address"]),
        disclosure=values["disclosure"],
        newsroom_noindex=noindex,
    )


def _address(key: str, value: str) -> str:
    try:
        return normalize_email(value)
    except InputError as exc:
        raise InputError(f"{key}: {exc}") from exc


def load_client_file(path: Path) -> dict[str, Any]:
    """The keys of a client TOML file (not yet validated); InputError when unreadable."""
    try:
        return tomllib.loads(read_text_file(path))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from exc


def create_client(session: Session, fields: ClientFields, *, now: datetime) -> Client:
    """Writes: a new client. Raises InputError when the slug is taken."""
    return release_store.insert_client(session, fields.values(), now=now)
