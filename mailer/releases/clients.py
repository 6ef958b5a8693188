"""Clients: the organisations releases are sent for (sender identity, postal address,
disclosure), validated from command-line options or a client TOML file; their sending
identity (DKIM key and selectors, return-path and Message-ID domains, see
:mod:`mailer.releases.identity`) is set here too."""

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
from mailer.config import Settings
from mailer.domain.alignment import check_domain, check_selector, domain_of
from mailer.domain.errors import ConfigError, InputError
from mailer.message import check_header_value
from mailer.message.dkim import DkimSigner
from mailer.releases.dns import dkim_txt, generate_key
from mailer.releases.identity import identity_for
from mailer.releases.source import read_text_file
from mailer.store import releases as release_store
from mailer.store.tables import Client

__all__ = [
    "IDENTITY_KEYS",
    "ClientFields",
    "NewKey",
    "add_dkim_key",
    "client_changes",
    "client_fields",
    "create_client",
    "load_client_file",
    "update_client",
]


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
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_key_file: str | None = None
    bounce_domain: str | None = None
    message_id_domain: str | None = None
    #: its newsroom pages carry ``noindex`` (search engines leave them out)
    newsroom_noindex: bool = False

    def values(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The sending-identity keys of a client (empty: the default, see mailer.releases.identity).
IDENTITY_KEYS = ("dkim_domain", "dkim_selector", "dkim_key_file", "bounce_domain", "message_id_domain")
_CLIENT_REQUIRED = ("slug", "name", "from_name", "from_address", "postal_address")
_CLIENT_OPTIONAL = ("reply_to", "disclosure", *IDENTITY_KEYS)
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
    identity = {key: _identity_value(key, values[key]) for key in IDENTITY_KEYS}
    return ClientFields(
        slug=slug,
        name=name,
        from_name=from_name,
        from_address=from_address,
        reply_to=reply_to,
        postal_address=str(values["postal_address"]),
        disclosure=values["disclosure"],
        **identity,
        newsroom_noindex=noindex,
    )


def _identity_value(key: str, value: str | None) -> str | None:
    """One identity key, checked: domains in A-label form, a selector, a readable PEM RSA
    key file (stored as an absolute path). None stays None (the default)."""
    if value is None:
        return None
    if key == "dkim_selector":
        return check_selector(value)
    if key == "dkim_key_file":
        path = Path(value).expanduser().resolve()
        try:
            DkimSigner(key_file=path, selector="check", domain="check.invalid")
        except ConfigError as exc:
            raise InputError(f"dkim_key_file: {str(exc).removeprefix('dkim.key_file: ')}") from exc
        return str(path)
    return check_domain(value, key)


def client_changes(
    client: Client,
    data: Mapping[str, Any],
    *,
    retire_selector: str | None = None,
    alignment_override: str | None = None,
    clear_alignment_override: bool = False,
    actor: str = "",
    now: datetime,
) -> dict[str, Any]:
    """The column values that ``data`` changes on ``client`` (keys as in a client file;
    None: unchanged; ``""``: back to the default, for optional keys).

    Key rotation: giving a new ``dkim_key_file`` (or switching ``dkim_selector`` to a
    selector among the client's other keys) keeps the previous key published (listed by
    ``mailer clients dns``) until ``retire_selector`` names it. ``alignment_override``
    records why submit may skip the alignment check (e.g. the relay signs), with
    ``actor`` and ``now``. Raises InputError naming the key.
    """
    unknown = sorted(set(data) - set(_CLIENT_REQUIRED) - set(_CLIENT_OPTIONAL) - {"slug"})
    if unknown:
        raise InputError(f"{unknown[0]}: unknown key")
    if data.get("slug") not in (None, client.slug):
        raise InputError("slug: a client's slug cannot change")
    merged: dict[str, Any] = {key: getattr(client, key) for key in _CLIENT_REQUIRED + _CLIENT_OPTIONAL}
    merged["slug"] = client.slug
    for key, value in data.items():
        if value is None or key == "slug":
            continue
        if not isinstance(value, str):
            raise InputError(f"{key}: expected a string")
        if not value.strip() and key in _CLIENT_REQUIRED:
            raise InputError(f"{key}: required")
        merged[key] = value if value.strip() else None
    base = {key: merged[key] for key in (*_CLIENT_REQUIRED, "reply_to", "disclosure")}
    checked = client_fields({**base, "slug": client.slug}).values()
    for key in IDENTITY_KEYS:
        # Only what is given is checked again (a key file moved away must not block a new name).
        given = key in data and data[key] is not None
        checked[key] = _identity_value(key, merged[key]) if given else getattr(client, key)
    changes = {key: value for key, value in checked.items() if value != getattr(client, key) and key != "slug"}
    others: dict[str, str] = dict(client.dkim_other_keys or {})
    old_selector, old_file = client.dkim_selector, client.dkim_key_file
    new_selector = checked["dkim_selector"]
    if "dkim_key_file" not in changes and new_selector != old_selector and new_selector in others:
        # Switch to a key published before (the second selector of a rotation).
        changes["dkim_key_file"] = others.pop(new_selector)
    if "dkim_key_file" in changes and old_file and old_selector and old_selector != new_selector:
        others[old_selector] = old_file  # stays published until retired
    if changes.get("dkim_key_file") is None and "dkim_key_file" in changes:
        changes["dkim_selector"] = None
    if retire_selector is not None:
        selector = check_selector(retire_selector)
        if selector == changes.get("dkim_selector", new_selector) and (changes.get("dkim_key_file") or old_file):
            raise InputError(f"--retire-selector: {selector} signs this client's mail; switch to another first")
        if others.pop(selector, None) is None:
            raise InputError(f"--retire-selector: client {client.slug} has no other key with selector {selector}")
    if others != (client.dkim_other_keys or {}):
        changes["dkim_other_keys"] = others or None
    if alignment_override is not None:
        reason = check_header_value("alignment_override", alignment_override.strip())
        if not reason:
            raise InputError("--alignment-override: say why (e.g. 'the relay signs with d=example.org')")
        changes.update(alignment_override=reason, alignment_override_by=actor or None, alignment_override_at=now)
    elif clear_alignment_override and client.alignment_override is not None:
        changes.update(alignment_override=None, alignment_override_by=actor or None, alignment_override_at=now)
    return changes


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


def update_client(session: Session, client: Client, changes: dict[str, Any]) -> Client:
    """Writes: ``changes`` (from :func:`client_changes`) on ``client``."""
    return release_store.update_client(session, client, changes)


@dataclass(frozen=True)
class NewKey:
    """A DKIM key made for a client: where it is, its TXT record, and whether it signs
    now (the client's first key) or waits to be switched to (a rotation)."""

    selector: str
    key_file: Path
    record_name: str
    txt: str
    signing: bool


def add_dkim_key(
    session: Session, client: Client, settings: Settings, *, selector: str | None, now: datetime
) -> NewKey:
    """Writes: a new 2048-bit key in ``[dkim] key_dir/SLUG/SELECTOR.pem`` (mode 0600).

    The client's first key signs at once; a further key (rotation) is published beside
    the signing one and signs after ``mailer clients update SLUG --dkim-selector SELECTOR``
    (once its TXT record is in DNS). ``selector`` defaults to ``mailerYYYYMM``. Raises
    InputError when the client already has that selector, ConfigError when the key
    cannot be made.
    """
    chosen = check_selector(selector or f"mailer{now:%Y%m}")
    others: dict[str, str] = dict(client.dkim_other_keys or {})
    if chosen in others or (client.dkim_key_file and chosen == client.dkim_selector):
        raise InputError(f"client {client.slug} already has a key with selector {chosen}: choose another (--selector)")
    path = (settings.dkim.key_dir / client.slug / f"{chosen}.pem").resolve()
    generate_key(path)
    signing = not client.dkim_key_file
    if signing:
        changes: dict[str, Any] = {"dkim_key_file": str(path), "dkim_selector": chosen}
    else:
        changes = {"dkim_other_keys": {**others, chosen: str(path)}}
    release_store.update_client(session, client, changes)
    domain = identity_for(client, settings).dkim_domain or domain_of(client.from_address)
    return NewKey(chosen, path, f"{chosen}._domainkey.{domain}", dkim_txt(path), signing)
