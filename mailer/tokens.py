"""Signed tokens that identify a delivery: unsubscribe links and VERP return paths.

* Unsubscribe links carry an itsdangerous-signed delivery id (no address in the URL,
  no expiry: a journalist may click a year-old message). Key rotation: tokens are signed
  with the newest key and verified with every key in ``secret_key`` + ``old_secret_keys``.
* VERP tokens live in the local part of the envelope sender (``bounces+TOKEN@domain``).
  Some mail systems lower-case local parts, so these use lower-case hex only:
  ``<id>-<16 hex of HMAC-SHA256>``. A forged or unsigned token reads as ``None``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

from itsdangerous import BadSignature, URLSafeSerializer

from mailer.config import Settings

_VERP = re.compile(r"([0-9]{1,18})-([0-9a-f]{16})")


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

    @classmethod
    def from_settings(cls, settings: Settings) -> Tokens:
        return cls(
            settings.secret_key.get_secret_value(),
            [k.get_secret_value() for k in settings.old_secret_keys],
        )

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

    def verp_address(self, delivery_id: int, domain: str) -> str:
        return f"bounces+{self.verp(delivery_id)}@{domain}"

    def mailto_unsubscribe(self, delivery_id: int, domain: str) -> str:
        return f"mailto:unsubscribe+{self.verp(delivery_id, purpose='unsubscribe')}@{domain}?subject=unsubscribe"

    def unsubscribe_url(self, base_url: str, delivery_id: int) -> str:
        return f"{base_url.rstrip('/')}/u/{self.unsubscribe(delivery_id)}"


def _b64(data: bytes) -> bytes:
    """itsdangerous' ``base64_encode``: URL-safe alphabet, no padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")
