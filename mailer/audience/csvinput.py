"""Reading a CSV file of unknown origin: its encoding, its delimiter, its rows.

The encoding is decided once per file (issue 12, item 10: one stray byte used to switch a
whole UTF-8 file to Windows-1252 and store "ClÃ©mence"):

1. a byte-order mark decides (UTF-8, UTF-16);
2. else a strict UTF-8 pass counts the lines with non-ASCII bytes that are valid UTF-8
   and those that are not: UTF-8 wins unless the invalid lines are the majority;
3. else Windows-1252; ``--encoding`` forces any codec Python knows.

Then every row is decoded with ``surrogateescape``, so a byte the encoding cannot read
never becomes U+FFFD silently: its row is rejected with the line number and the byte,
and the other rows go on. In a file read as Windows-1252 (not forced), a row whose bytes
are valid multi-byte UTF-8 is rejected too, since as Windows-1252 it would be mojibake.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mailer.domain.errors import InputError

#: Bytes an encoding could not read, as ``surrogateescape`` leaves them (U+DC80-U+DCFF).
_ESCAPED = re.compile("[\udc80-\udcff]")
_LABELS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "cp1252": "Windows-1252"}


@dataclass(frozen=True)
class Encoding:
    """How to decode one file: ``codec`` for Python; ``forced`` when the user chose it."""

    codec: str
    forced: bool = False

    @property
    def label(self) -> str:
        name = codecs.lookup(self.codec).name
        return _LABELS.get(name, name.upper() if name.startswith("utf") else name)


def forced_encoding(name: str) -> Encoding:
    """The encoding a user named (``--encoding``); InputError for a name Python does not know.
    UTF-8 also skips a byte-order mark."""
    try:
        info = codecs.lookup(name)
    except LookupError as exc:
        raise InputError(f"--encoding {name!r}: unknown encoding (e.g. utf-8, cp1252, utf-16, latin-1)") from exc
    return Encoding("utf-8-sig" if info.name == "utf-8" else info.name, forced=True)


def detect_encoding(path: Path) -> Encoding:
    """UTF-8 or UTF-16 by byte-order mark (or UTF-16's NUL pattern); else UTF-8 unless most
    lines with non-ASCII bytes are not valid UTF-8; else Windows-1252. Streams the file."""
    with path.open("rb") as fh:
        head = fh.read(4096)
        if head.startswith(codecs.BOM_UTF8):
            return Encoding("utf-8-sig")
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return Encoding("utf-16")
        if head and head.count(b"\x00") > len(head) // 4:
            return Encoding("utf-16-le" if head[1:2] == b"\x00" else "utf-16-be")
        fh.seek(0)
        valid = invalid = 0
        # Lines of at most 1 MiB at a time, so a file without line breaks stays bounded.
        for raw in iter(lambda: fh.readline(1 << 20), b""):
            if raw.isascii():
                continue
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                invalid += 1
            else:
                valid += 1
    return Encoding("utf-8" if invalid <= valid else "cp1252")


def undecodable(cells: list[str], encoding: Encoding) -> str | None:
    """Why this row cannot be trusted in ``encoding`` (a byte it cannot read, or UTF-8
    read as Windows-1252), or None when it is fine."""
    for cell in cells:
        bad = _ESCAPED.search(cell)
        if bad is not None:
            byte = ord(bad.group()) - 0xDC00
            return f"byte 0x{byte:02X} is not valid {encoding.label} (the rest of the file is read as {encoding.label})"
    if encoding.codec == "cp1252" and not encoding.forced:
        for cell in cells:
            if not cell.isascii() and _is_utf8(cell.encode("cp1252", "surrogateescape")):
                return (
                    "this line is UTF-8 but the file is mostly Windows-1252: "
                    "save the file in one encoding (or force one with --encoding)"
                )
    return None


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_rows(fh: IO[bytes], encoding: Encoding) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """Yield ``(1, header, None)`` once, then ``(line, cells, None)`` or ``(line, None, error)``
    per record (``line`` is where the record starts). A row with a byte ``encoding`` cannot
    read, or mojibake (see :func:`undecodable`), comes as an error. Raises InputError for an
    empty file, a header that cannot be decoded, or a file that cannot be decoded at all."""
    text = io.TextIOWrapper(fh, encoding=encoding.codec, errors="surrogateescape", newline="")
    try:
        first = text.readline()
        if not first.strip():
            raise InputError("the file is empty or has no header row")
        reader = csv.reader(_chain(first, text), delimiter=sniff_delimiter(first), strict=True)
        line = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield line, None, f"unreadable CSV: {exc}"
                line = reader.line_num + 1
                continue
            problem = undecodable(cells, encoding)
            if line == 1 and problem is not None:
                raise InputError(f"line 1 (the header): {problem}")
            yield (line, None, problem) if problem is not None else (line, cells, None)
            line = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise InputError(f"the file is not valid {encoding.label}: {exc.reason}") from exc
    finally:
        # The caller owns (and closes) the byte stream: hand it back instead of leaving
        # the wrapper to close it, or to warn about it, when collected.
        with contextlib.suppress(ValueError):
            text.detach()


def _chain(first: str, rest: IO[str]) -> Iterator[str]:
    yield first
    yield from rest
