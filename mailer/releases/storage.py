"""Where press-kit files live: a small interface (:class:`AssetStorage`) and its local-disk
implementation. Object storage can follow behind the same three methods."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Protocol

from mailer.config import Settings
from mailer.domain.errors import ConfigError, NotFoundError

__all__ = ["AssetStorage", "LocalDiskStorage", "storage_for"]

_KEY = re.compile(r"[a-z0-9][a-z0-9_\-]*(/[a-z0-9][a-z0-9_\-.]*)*")


class AssetStorage(Protocol):
    """Bytes by key (``releases/12/ab34...``); keys are made by the caller."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (replacing what was there), whole or not at all."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; NotFoundError when there are none."""
        ...

    def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens when it is not there)."""
        ...


class LocalDiskStorage:
    """Files under one folder; a key is a relative path of lower-case names."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key) or ".." in key:
            raise NotFoundError(f"no asset {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        part = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            part.write_bytes(data)
            os.replace(part, path)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise ConfigError(f"{self.root}: cannot store an asset: {exc.strerror}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"no asset {key!r} in {self.root}") from exc

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def storage_for(settings: Settings) -> AssetStorage:
    """The configured asset storage (``[assets] dir`` on local disk)."""
    return LocalDiskStorage(settings.assets.dir)
