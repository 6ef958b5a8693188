"""Signed tokens that identify a delivery: unsubscribe links and VERP return paths.

* Unsubscribe links carry an itsdangerous-signed delivery id (no address in the URL,
  no expiry: a journalist may click a year-old message). Key rotation: tokens are signed
  with the newest key and verified with every key in ``secret_key`` + ``old_secret_keys``.
* VERP tokens live in the local part of the envelope sender (``bounces+TOKEN@domain``).
  Some mail systems lower-case local parts, so these use lower-case hex only:
  ``<id>-<16 hex of HMAC-SHA256>``. A forged or unsigned token reads as ``None``.
* Kit tokens (press-kit downloads and "View online") are the same shape as unsubscribe
  tokens with a salt of their own, so neither can stand in for the other: a delivery's
  (``kit``) names one journalist, a release's (``release_kit``) only shows the kit's
  images and page before an embargo lifts and names nobody.
* There is no built-in key (issue 12: a public default forged sessions and tokens). When
  ``secret_key`` is not configured, :func:`signing_secret` generates a random key once
  into ``paths.data_dir/secret_key`` (mode 0600) and every later process reads it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path

from itsdangerous import BadSignature, URLSafeSerializer

from mailer.config import Settings, check_secret
from mailer.domain.errors import ConfigError

log = logging.getLogger("mailer.message.tokens")

#: The generated key's file name inside ``paths.data_dir``.
SECRET_FILE = "secret_key"

_VERP = re.compile(r"([0-9]{1,18})-([0-9a-f]{16})")
#: A proof's return path: ``p<proof id>-<mac>`` (purpose "proof": never a delivery's token).
_PROOF = re.compile(r"p([0-9]{1,18})-([0-9a-f]{16})")


class Tokens:
    """Issue and read delivery tokens with the current key; verify with old keys too."""

    def __init__(self, secret: str, old_secrets: Sequence[str] = ()) -> None:
        if not secret:
            raise ValueError("secret must not be empty")
        self._keys = [secret, *old_secrets]
        # itsdangerous signs with the last key and verifies with all of them.
        self._unsubscribe = URLSafeSerializer(list(reversed(self._keys)), salt="mailer.unsubscribe")
        # Per-message signing without itsdangerous' per-call work (a new Signer, key
        # derivation, zlib): the same bytes from an HMAC keyed once and copied per token.
        signer = self._unsubscribe.make_signer()
        self._unsubscribe_mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)
        self._macs = {key: hmac.new(key.encode(), digestmod=hashlib.sha256) for key in self._keys}
        self._kit = _IdTokens(self._keys, "mailer.kit")
        self._release_kit = _IdTokens(self._keys, "mailer.release-kit")

    @classmethod
    def from_settings(cls, settings: Settings) -> Tokens:
        """Tokens with :func:`signing_secret` (which may generate the key file) and the old keys."""
        return cls(signing_secret(settings), [k.get_secret_value() for k in settings.old_secret_keys])

    # -- unsubscribe links --

    def unsubscribe(self, delivery_id: int) -> str:
        """URL-safe token for ``/u/{token}``: exactly ``URLSafeSerializer.dumps``. The
        JSON of an int of at most 10 digits never compresses (zlib output is at least 9
        bytes), so its payload is plain base64."""
        if type(delivery_id) is not int or not 0 <= delivery_id < 10**10:
            return str(self._unsubscribe.dumps(delivery_id))
        payload = _b64(str(delivery_id).encode("ascii"))
        mac = self._unsubscribe_mac.copy()
        mac.update(payload)
        return (payload + b"." + _b64(mac.digest())).decode("ascii")

    def read_unsubscribe(self, token: str) -> int | None:
        """The delivery id, or None for anything tampered, foreign or malformed."""
        try:
            value = self._unsubscribe.loads(token)
        except (BadSignature, ValueError, TypeError, UnicodeError):
            return None
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    # -- press kit --

    def kit(self, delivery_id: int) -> str:
        """URL-safe token of one delivery for its kit links and "View online" page."""
        return self._kit.dumps(delivery_id)

    def read_kit(self, token: str) -> int | None:
        """The delivery id of a genuine kit token, else None."""
        return self._kit.loads(token)

    def release_kit(self, release_id: int) -> str:
        """URL-safe token of a release: shows its kit images before the embargo lifts."""
        return self._release_kit.dumps(release_id)

    def read_release_kit(self, token: str) -> int | None:
        """The release id of a genuine release-kit token, else None."""
        return self._release_kit.loads(token)

    # -- VERP and mailto local parts --

    def _mac(self, key: str, purpose: str, delivery_id: int) -> str:
        base = self._macs.get(key)
        mac = base.copy() if base is not None else hmac.new(key.encode(), digestmod=hashlib.sha256)
        mac.update(f"{purpose}:{delivery_id}".encode())
        return mac.hexdigest()[:16]

    def verp(self, delivery_id: int, *, purpose: str = "bounce") -> str:
        """Lower-case token for ``bounces+TOKEN@`` (or ``unsubscribe+TOKEN@``)."""
        return f"{delivery_id}-{self._mac(self._keys[0], purpose, delivery_id)}"

    def read_verp(self, token: str, *, purpose: str = "bounce") -> int | None:
        """The delivery id of a genuine token, else None."""
        m = _VERP.fullmatch(token.strip().lower())
        if m is None:
            return None
        delivery_id = int(m.group(1))
        for key in self._keys:
            if hmac.compare_digest(self._mac(key, purpose, delivery_id), m.group(2)):
                return delivery_id
        return None

    def proof_verp(self, proof_id: int) -> str:
        """Lower-case token for a proof's return path ``bounces+p<id>-<mac>@``."""
        return f"p{proof_id}-{self._mac(self._keys[0], 'proof', proof_id)}"

    def read_proof_verp(self, token: str) -> int | None:
        """The proof id of a genuine proof token, else None."""
        m = _PROOF.fullmatch(token.strip().lower())
        if m is None:
            return None
        proof_id = int(m.group(1))
        for key in self._keys:
            if hmac.compare_digest(self._mac(key, "proof", proof_id), m.group(2)):
                return proof_id
        return None

    def verp_address(self, delivery_id: int, domain: str) -> str:
        return f"bounces+{self.verp(delivery_id)}@{domain}"

    def mailto_unsubscribe(self, delivery_id: int, domain: str) -> str:
        """``mailto:unsubscribe+TOKEN@domain``. No ``?subject=``: the token alone acts, and
        without it the List-Unsubscribe line still folds to 78 characters."""
        return f"mailto:unsubscribe+{self.verp(delivery_id, purpose='unsubscribe')}@{domain}"

    def unsubscribe_url(self, base_url: str, delivery_id: int) -> str:
        return f"{base_url.rstrip('/')}/u/{self.unsubscribe(delivery_id)}"


class _IdTokens:
    """Signed positive ids under one salt (itsdangerous' format, as unsubscribe links)."""

    def __init__(self, keys: Sequence[str], salt: str) -> None:
        self._serializer = URLSafeSerializer(list(reversed(keys)), salt=salt)
        signer = self._serializer.make_signer()
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)

    def dumps(self, value: int) -> str:
        if type(value) is not int or not 0 <= value < 10**10:
            return str(self._serializer.dumps(value))
        payload = _b64(str(value).encode("ascii"))
        mac = self._mac.copy()
        mac.update(payload)
        return (payload + b"." + _b64(mac.digest())).decode("ascii")

    def loads(self, token: str) -> int | None:
        try:
            value = self._serializer.loads(token)
        except (BadSignature, ValueError, TypeError, UnicodeError):
            return None
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def signing_secret(settings: Settings) -> str:
    """The key that signs tokens and web sessions: ``secret_key`` when configured, else
    the key in ``paths.data_dir/secret_key``, generated there (48 random bytes, mode 0600)
    the first time with one warning line. Safe when several processes start at once: the
    file appears whole or not at all, and the first one wins.

    Raises :class:`ConfigError` (naming the file) when the file cannot be read or written
    or holds an unusable key.
    """
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    return _data_dir_secret(settings.paths.data_dir / SECRET_FILE)


def _data_dir_secret(path: Path) -> str:
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the signing key: {exc.strerror}") from exc
    key = secrets.token_urlsafe(48)
    part = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(part, path)  # fails if another process was first: then use its key
        except FileExistsError:
            return _read_secret(path)
        finally:
            part.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the signing key: {exc.strerror}") from exc
    log.warning(
        "no secret_key configured: generated a random one in %s (mode 0600); "
        "keep it with the data, or set MAILER_SECRET_KEY",
        path,
    )
    return key


def _read_secret(path: Path) -> str:
    """The key in ``path``; FileNotFoundError/OSError pass through, a bad key is a ConfigError."""
    try:
        return check_secret(path.read_text(encoding="utf-8").strip())
    except ValueError as exc:  # also UnicodeDecodeError
        raise ConfigError(f"{path}: unusable signing key: {exc}") from exc


def _b64(data: bytes) -> bytes:
    """itsdangerous' ``base64_encode``: URL-safe alphabet, no padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")
