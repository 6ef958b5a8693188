"""The parsed rows of an import file, in batches: read, validated and prepared for the
database, in this process or in a second one whose work overlaps the database writes.

Reading and validating (the floor of an import: email-validator is most of it) and
writing are each about one core's work at a million rows; on one core they add up. A
large file is therefore parsed by a child process (``spawn``: nothing of the parent's
threads or connections is copied) that sends each batch, pickled, through a pipe; the
pipe's buffer and one batch in hand bound the memory on both sides, and the child blocks
while the writer catches up. The child does everything about a row that needs no
database: validation, and for a new contact its sort keys, address hash, mailbox key
and search words (:class:`Prepared`).

Failure: a row the parser refuses is a :class:`Rejection` in its batch, as in one
process. A child that dies (killed, out of memory) or fails on a line with an
unexpected error raises :class:`ParserFailed` in the writer, naming the line after the
last batch it delivered; the writer's transaction then rolls back, so nothing of that
import is committed and no batch is half written. Ctrl-C stops both (the terminal sends
SIGINT to the whole process group); a writer that dies leaves the child a broken pipe,
and it exits.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from array import array
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

from mailer.audience.contactfields import (
    FORBIDDEN_IN_FIELD,
    ParsedRow,
    header_key,
    parse_row,
    refuse_controls,
    unneutralize,
)
from mailer.audience.csvinput import Encoding, read_rows
from mailer.domain.addresses import mailbox_key
from mailer.domain.errors import InputError, MailerError
from mailer.domain.search_terms import contact_terms, name_key, outlet_key
from mailer.domain.states import email_hash

#: Rows per write batch.
BATCH = 1000
#: Files at least this large are parsed in a second process (below it, starting one
#: costs more than the overlap gains: about 0.3 s against ~50 µs a row).
CHILD_MIN_BYTES = 4 << 20
#: What a mapped column may say besides a known column or an attribute name: leave it out.
SKIP_COLUMN = ""


class Prepared(NamedTuple):
    """What a row gives a new contact besides its fields, computed without the database
    (its search words are in :attr:`Batch.terms`)."""

    email_hash: str
    sort_name: str
    sort_outlet: str
    #: :func:`mailer.domain.addresses.mailbox_key` of the address
    mailbox: str


@dataclass
class Batch:
    """Up to :data:`BATCH` parsed rows (each with its :class:`Prepared`), the lines
    rejected among them as (line, reason), and how far into the file the reader is.

    ``terms``/``owners``: the search words of every row, sorted, and the index in
    ``rows`` of the row each belongs to (rows in file order, so for new contacts this is
    the order of the ``contact_terms`` key: (term, contact id)).

    Pickled column-wise (:meth:`__getstate__`): the child sends a batch in about a third
    of the bytes and the writer unpickles it in about a third of the time."""

    rows: list[tuple[ParsedRow, Prepared]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    position: int = 0
    #: the last line read (for a report when what follows is lost)
    last_line: int = 0
    terms: list[str] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)

    def add(self, row: ParsedRow) -> None:
        """Append ``row`` with what :func:`prepare` gives it (words sorted at :meth:`seal`)."""
        prepared, words = prepare(row)
        index = len(self.rows)
        self.rows.append((row, prepared))
        self.terms.extend(words)
        self.owners.extend([index] * len(words))

    def seal(self, position: int) -> Batch:
        """Sort the words (stable: a word's rows stay in file order); the batch is complete."""
        order = sorted(range(len(self.terms)), key=self.terms.__getitem__)
        self.terms = [self.terms[i] for i in order]
        self.owners = [self.owners[i] for i in order]
        self.position = position
        return self

    def __getstate__(self) -> tuple[Any, ...]:
        keys = tuple(self.rows[0][0].values) if self.rows else ()
        packed = [
            (
                r.line,
                r.email,
                tuple(r.values.values()) if tuple(r.values) == keys else r.values,
                r.beats,
                r.tags,
                r.attributes,
                r.blank_attributes,
                *p,
            )
            for r, p in self.rows
        ]
        # words as one string (no field can hold a NUL: parse_row refuses control characters)
        words = "\0".join(self.terms)
        return keys, packed, self.rejected, self.position, self.last_line, words, array("i", self.owners)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        keys, packed, self.rejected, self.position, self.last_line, words, owners = state
        self.terms = words.split("\0") if words else []
        self.owners = owners.tolist()
        self.rows = [
            (
                ParsedRow(
                    line, email, dict(zip(keys, values, strict=True)) if type(values) is tuple else values, *labels
                ),
                Prepared(e_hash, s_name, s_outlet, mailbox),
            )
            for line, email, values, *labels, e_hash, s_name, s_outlet, mailbox in packed
        ]


class ParserFailed(MailerError):
    """The parsing process failed or died at ``line`` (nothing of the import is kept)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: the import's parser failed ({reason}); nothing was imported")
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class FeedOptions:
    """How to read one file (all picklable: they are sent to the child)."""

    encoding: Encoding
    blank_clears: bool = False
    outlet_types: frozenset[str] = frozenset()
    mapping: dict[str, str] | None = None
    batch: int = BATCH


def apply_mapping(raw_header: list[str], header: list[str], mapping: dict[str, str]) -> list[str]:
    """The header with the user's choices applied: ``mapping`` is keyed by the file's own
    header text (as in the file) and gives a known column, ``attr:NAME`` or "" (skip);
    unmapped columns keep their automatic key. A skipped column reads as no column."""
    out: list[str] = []
    for raw, key in zip(raw_header, header, strict=True):
        choice = mapping.get(raw.strip().lstrip("\ufeff"))
        if choice is None:
            out.append(key)
        elif choice == SKIP_COLUMN:
            out.append("")
        elif choice.startswith("attr:"):
            out.append(header_key(choice.removeprefix("attr:")))
        else:
            out.append(choice)
    return out


def prepare(row: ParsedRow) -> tuple[Prepared, set[str]]:
    """The sort keys, hash and mailbox key of ``row`` as a new contact, and its search words."""
    get = row.values.get
    first, last, outlet = get("first_name"), get("last_name"), get("outlet")
    terms = contact_terms(
        email=row.email,
        first_name=first,
        last_name=last,
        outlet=outlet,
        beats=row.beats or (),
        tags=row.tags or (),
    )
    return Prepared(email_hash(row.email), name_key(first, last), outlet_key(outlet), mailbox_key(row.email)), terms


def parse_batches(path: Path, options: FeedOptions) -> Iterator[Batch]:
    """The rows of ``path`` in batches (blank lines skipped). Raises InputError, before the
    first batch, when the file as a whole is unusable (no header, no email column)."""
    with path.open("rb") as fh:
        rows = read_rows(fh, options.encoding)
        _, header_cells, _ = next(rows)
        header = [header_key(unneutralize(h)) for h in header_cells or []]
        if options.mapping is not None:
            header = apply_mapping([unneutralize(h) for h in header_cells or []], header, options.mapping)
        if "email" not in header:
            raise InputError("no 'email' column in the header row")
        for name in header:
            refuse_controls(f"header column {name!r}", name, FORBIDDEN_IN_FIELD)
        batch = Batch()
        for line, cells, error in rows:
            batch.last_line = line
            if error is not None:
                batch.rejected.append((line, error))
            elif cells is None or not any(c.strip() for c in cells):
                continue  # blank lines are not rows
            else:
                try:
                    row = parse_row(
                        line, header, cells, blank_clears=options.blank_clears, outlet_types=options.outlet_types
                    )
                    batch.add(row)
                except InputError as exc:
                    batch.rejected.append((line, str(exc)))
                except Exception as exc:
                    raise ParserFailed(line, f"{type(exc).__name__}: {exc}") from exc
            if len(batch.rows) >= options.batch:
                yield batch.seal(fh.tell())
                batch = Batch(last_line=line)
        yield batch.seal(fh.tell())


def batches(path: Path, options: FeedOptions, *, child: bool | None = None) -> Generator[Batch, None, None]:
    """:func:`parse_batches`, in a second process when ``child`` (by default: when the
    file is at least :data:`CHILD_MIN_BYTES`). Raises InputError as :func:`parse_batches`
    does, :class:`ParserFailed` when the child fails. Closing the iterator stops the child."""
    if child is None:
        child = path.stat().st_size >= CHILD_MIN_BYTES
    if not child:
        yield from parse_batches(path, options)
        return
    yield from _from_child(path, options)


# --- the second process -------------------------------------------------------------------


def _from_child(path: Path, options: FeedOptions) -> Generator[Batch, None, None]:
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, path, options), name="mailer-import-parser", daemon=True)
    process.start()
    sender.close()  # the child holds the only writing end: its death is our EOF
    last_line = 1
    try:
        while True:
            try:
                kind, payload = receiver.recv()
            except EOFError:
                process.join(5)
                raise ParserFailed(last_line + 1, f"it stopped, exit code {process.exitcode}") from None
            if kind == "batch":
                last_line = max(last_line, payload.last_line)
                yield payload
            elif kind == "done":
                return
            elif kind == "input":
                raise InputError(payload)
            else:
                line, reason = payload
                raise ParserFailed(line, reason)
    finally:
        receiver.close()
        if process.is_alive():
            process.terminate()
        process.join(5)


def _child(sender: Connection, path: Path, options: FeedOptions) -> None:  # pragma: no cover - another process
    """The child's body: every batch down the pipe, then "done"; a failure as a message."""
    line = 1
    try:
        for batch in parse_batches(path, options):
            line = batch.last_line
            sender.send(("batch", batch))
        sender.send(("done", None))
    except InputError as exc:
        _send_quietly(sender, ("input", str(exc)))
    except ParserFailed as exc:
        _send_quietly(sender, ("failed", (exc.line, exc.reason)))
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # the writer is gone or the user stopped us: nothing to report to
    except Exception as exc:
        _send_quietly(sender, ("failed", (line + 1, f"{type(exc).__name__}: {exc}")))
    finally:
        sender.close()


def _send_quietly(sender: Connection, message: tuple[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the writer is gone: nobody to tell
        sender.send(message)
