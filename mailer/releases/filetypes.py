"""What a press-kit file is, from its bytes (never from its name alone): the kinds a
release may carry, and an image's width and height (PNG, JPEG, GIF, WebP headers), so a
message can give ``<img>`` its size without an imaging library. Pure: bytes in, facts out.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from mailer.domain.errors import InputError

__all__ = ["FileType", "human_size", "safe_filename", "sniff"]


@dataclass(frozen=True)
class FileType:
    """``kind`` "image" or "document", the MIME type, and an image's pixel size."""

    kind: str
    content_type: str
    width: int | None = None
    height: int | None = None


_OFFICE = {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
ACCEPTED = "PNG, JPEG, GIF or WebP images; PDF, Word, Excel, PowerPoint (.docx/.xlsx/.pptx) or plain-text documents"
# JPEG start-of-frame markers (not DHT C4, JPG C8, DAC CC)
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _png(data: bytes) -> tuple[int, int] | None:
    if len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return None


def _gif(data: bytes) -> tuple[int, int] | None:
    if len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        i += 2 + length
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return int(width & 0x3FFF), int(height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def sniff(data: bytes, filename: str) -> FileType:
    """The type of a file from its first bytes (and, for Office files, its extension).

    Raises InputError for anything else (SVG and HTML included: they can carry scripts)
    and for an image whose size cannot be read.
    """
    name = filename.lower()
    image: tuple[str, tuple[int, int] | None] | None = None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        image = ("image/png", _png(data))
    elif data.startswith(b"\xff\xd8\xff"):
        image = ("image/jpeg", _jpeg(data))
    elif data.startswith((b"GIF87a", b"GIF89a")):
        image = ("image/gif", _gif(data))
    elif data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        image = ("image/webp", _webp(data))
    if image is not None:
        content_type, size = image
        if size is None or not all(0 < n <= 30000 for n in size):
            raise InputError(f"{filename}: a damaged {content_type} (its width and height cannot be read)")
        return FileType("image", content_type, size[0], size[1])
    if data.startswith(b"%PDF-"):
        return FileType("document", "application/pdf")
    ext = name[name.rfind(".") :] if "." in name else ""
    if data.startswith(b"PK\x03\x04") and ext in _OFFICE:
        return FileType("document", _OFFICE[ext])
    if ext == ".txt" and b"\x00" not in data:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return FileType("document", "text/plain; charset=utf-8")
    raise InputError(f"{filename}: not a kind of file a press kit may carry ({ACCEPTED})")


def safe_filename(name: str) -> str:
    """A file name fit for a URL path and a Content-Disposition: its last path part,
    letters, digits, ``.``, ``_`` and ``-`` only, at most 120 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    cleaned = re.sub(r"[^A-Za-z0-9._\-]+", "-", base).strip("-.") or "file"
    if len(cleaned) > 120:
        stem, dot, ext = cleaned.rpartition(".")
        cleaned = (stem[: 119 - len(ext)] + dot + ext) if dot and len(ext) <= 10 else cleaned[:120]
    return cleaned


def human_size(size: int) -> str:
    """``312 KB``, ``1.4 MB``."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} KB"
    return f"{size / (1024 * 1024):.1f} MB"
