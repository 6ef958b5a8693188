"""Contact import in the browser: upload a CSV, map its columns, watch the progress, read
the rejected lines (and download them). The import itself is
:func:`mailer.audience.contacts.import_csv` — the code ``mailer contacts import`` runs —
given the user's column mapping.

The upload is kept under ``paths.data_dir/imports/`` until its import has run; the import
runs in a thread of this process and reports the bytes read, which the progress fragment
(polled by htmx every half second) shows. Jobs live in this process's memory: a restart
forgets them (the file is imported or not, in one transaction, either way).
"""

from __future__ import annotations

import csv
import io
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from mailer.accounts.permits import Action, permits
from mailer.audience import contacts
from mailer.audience.contactfields import KNOWN_COLUMNS, header_key, neutralize, unneutralize
from mailer.audience.csvinput import detect_encoding, forced_encoding, read_rows
from mailer.domain.errors import InputError, MailerError
from mailer.web.staff.view import CurrentUser, StaffView

#: Largest file accepted from the browser.
MAX_UPLOAD = 512 * 1024 * 1024
_TOKEN = re.compile(r"[0-9a-f]{32}")
#: Mapping choices besides the known columns.
ATTRIBUTE, SKIP = "attr", "skip"
PREVIEW_ROWS = 3
#: Uploads (and finished imports' reports) are forgotten after this many seconds.
KEEP_SECONDS = 6 * 3600


@dataclass
class ImportJob:
    """One upload: its file, its settings, and once started its progress and result."""

    path: Path
    filename: str
    list_slug: str
    blank_clears: bool
    encoding: str | None
    header: list[str] = field(default_factory=list)
    done: int = 0
    total: int = 0
    #: what the import does once the file is read (contacts.INDEXING, contacts.SAVING)
    phase: str | None = None
    started: bool = False
    finished: bool = False
    result: contacts.ImportResult | None = None
    error: str | None = None
    created: float = field(default_factory=time.monotonic)


def suggest(header: str) -> str:
    """The mapping offered for a header cell: a known column it names, else keep it as an attribute."""
    key = header_key(header)
    return key if key in KNOWN_COLUMNS else ATTRIBUTE


def read_preview(path: Path, encoding: str | None) -> tuple[list[str], list[list[str]]]:
    """The header and the first data rows of an uploaded file. InputError when unreadable."""
    chosen = forced_encoding(encoding) if encoding else detect_encoding(path)
    rows: list[list[str]] = []
    with path.open("rb") as fh:
        reader = read_rows(fh, chosen)
        _, header, _ = next(reader)
        for _, cells, _ in reader:
            if cells is not None:
                rows.append(cells)
            if len(rows) >= PREVIEW_ROWS:
                break
    return [unneutralize(h).strip().lstrip("\ufeff") for h in header or []], rows


class ContactImportPages:
    """``/contacts/import`` and the steps after it."""

    def __init__(self, view: StaffView) -> None:
        self.view = view
        self.jobs: dict[str, ImportJob] = {}
        self.lock = threading.Lock()

    @property
    def folder(self) -> Path:
        return self.view.runtime.settings.paths.data_dir / "imports"

    def _job(self, token: str) -> ImportJob | None:
        return self.jobs.get(token) if _TOKEN.fullmatch(token) else None

    def upload_page(self, request: Request, user: CurrentUser) -> Response:
        """Step 1: choose the file and the list."""
        if not permits(user, Action.CONTACTS):
            return self.view.forbidden(request, user, Action.CONTACTS)
        return self.view.page(request, "staff/contact_import.html", {"step": "upload"}, user=user)

    async def upload(
        self,
        request: Request,
        user: CurrentUser,
        file: UploadFile,
        list_slug: Annotated[str, Form(alias="list", max_length=64)] = "",
        encoding: Annotated[str, Form(max_length=32)] = "",
        blank_clears: Annotated[str, Form(max_length=4)] = "",
    ) -> Response:
        """Step 1 done: keep the file (under ``paths.data_dir/imports``), then the mapping page."""
        if not permits(user, Action.CONTACTS):
            return self.view.forbidden(request, user, Action.CONTACTS)
        token = secrets.token_hex(16)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{token}.csv"
        size = 0
        with path.open("wb") as out:
            while chunk := await file.read(1 << 20):
                size += len(chunk)
                if size > MAX_UPLOAD:
                    break
                out.write(chunk)
        if size > MAX_UPLOAD:
            path.unlink(missing_ok=True)
            return self._upload_error(request, f"the file is larger than {MAX_UPLOAD >> 20} MB")
        try:
            contacts.check_slug(list_slug.strip(), "list")
            header, _ = read_preview(path, encoding.strip() or None)
        except InputError as exc:
            path.unlink(missing_ok=True)
            return self._upload_error(request, f"{file.filename}: {exc}")
        job = ImportJob(
            path, file.filename or "upload.csv", list_slug.strip(), bool(blank_clears), encoding.strip() or None
        )
        job.header, job.total = header, size
        with self.lock:
            self._forget_old()
            self.jobs[token] = job
        return self.view.go(request, f"/contacts/import/{token}/map")

    def _forget_old(self) -> None:
        """Drop uploads never started and reports of imports older than :data:`KEEP_SECONDS`."""
        limit = time.monotonic() - KEEP_SECONDS
        for token, job in list(self.jobs.items()):
            if job.created < limit and (job.finished or not job.started):
                job.path.unlink(missing_ok=True)
                del self.jobs[token]

    def _upload_error(self, request: Request, message: str) -> Response:
        self.view.flash(request, "error", message)
        return self.view.go(request, "/contacts/import")

    def mapping_page(self, request: Request, token: str, user: CurrentUser) -> Response:
        """Step 2 (after the upload): the file's columns with the mapping offered."""
        job = self._job(token)
        if job is None or job.started:
            return self.view.not_found(request, user, "no such upload (or its import has started)")
        try:
            _, sample = read_preview(job.path, job.encoding)
        except InputError as exc:
            return self.view.not_found(request, user, str(exc), status_code=422)
        return self._mapping_page(request, user, token, job, sample)

    def _mapping_page(
        self,
        request: Request,
        user: CurrentUser,
        token: str,
        job: ImportJob,
        sample: list[list[str]],
        error: str | None = None,
    ) -> Response:
        columns = [
            {"index": i, "header": h, "suggested": suggest(h), "samples": [r[i] for r in sample if i < len(r)]}
            for i, h in enumerate(job.header)
        ]
        context = {
            "step": "map",
            "token": token,
            "job": job,
            "columns": columns,
            "choices": [*KNOWN_COLUMNS, ATTRIBUTE, SKIP],
            "error": error,
        }
        return self.view.page(
            request, "staff/contact_import.html", context, user=user, status_code=422 if error else 200
        )

    async def run(self, request: Request, token: str, user: CurrentUser) -> Response:
        """Step 3: start the import with the mapping chosen; then the progress page."""
        if not permits(user, Action.CONTACTS):
            return self.view.forbidden(request, user, Action.CONTACTS)
        job = self._job(token)
        if job is None:
            return self.view.not_found(request, user, "no such upload (uploads are forgotten when the server restarts)")
        form = await request.form()
        mapping: dict[str, str] = {}
        for i, header in enumerate(job.header):
            choice = str(form.get(f"map_{i}", suggest(header)))
            if choice == SKIP:
                mapping[header] = contacts.SKIP_COLUMN
            elif choice == ATTRIBUTE:
                mapping[header] = f"attr:{header}"
            elif choice in KNOWN_COLUMNS:
                mapping[header] = choice
            else:
                mapping[header] = f"attr:{header}"
        chosen = list(mapping.values())
        problem = None
        if chosen.count("email") != 1:
            problem = "map exactly one column to email"
        else:
            twice = sorted({c for c in chosen if c in KNOWN_COLUMNS and chosen.count(c) > 1})
            problem = f"more than one column mapped to {', '.join(twice)}" if twice else None
        if problem is not None:
            _, sample = read_preview(job.path, job.encoding)
            return self._mapping_page(request, user, token, job, sample, error=problem)
        with self.lock:
            if not job.started:
                job.started = True
                threading.Thread(
                    target=self._work, args=(job, mapping), name=f"import-{token[:8]}", daemon=True
                ).start()
        return RedirectResponse(f"/contacts/import/{token}", status_code=303)

    def _work(self, job: ImportJob, mapping: dict[str, str]) -> None:
        rt = self.view.runtime

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        def phase(what: str) -> None:
            job.phase = what

        try:
            job.result = contacts.import_csv(
                rt.sessions,
                job.path,
                list_slug=job.list_slug,
                now=rt.clock(),
                progress=progress,
                encoding=job.encoding,
                blank_clears=job.blank_clears,
                outlet_types=rt.settings.contacts.outlet_types,
                mapping=mapping,
                phase=phase,
            )
        except MailerError as exc:
            job.error = str(exc)
        except Exception as exc:  # a database failure: shown on the page, never lost in a thread
            job.error = f"the import failed and wrote nothing: {type(exc).__name__}: {exc}"
        finally:
            job.finished = True
            job.path.unlink(missing_ok=True)

    def status_page(self, request: Request, token: str, user: CurrentUser) -> Response:
        """Step 4: progress while it runs, then the counts and the rejected lines."""
        job = self._job(token)
        if job is None:
            return self.view.not_found(request, user, "no such import")
        template = "staff/_import_status.html" if request.headers.get("HX-Request") else "staff/contact_import.html"
        # One look at the job (its thread sets the result, then `finished`): a page drawn
        # while the import ends must not show "3 rejected" over an empty table.
        finished = job.finished
        result = job.result if finished else None
        context = {
            "step": "status",
            "token": token,
            "job": job,
            "finished": finished,
            "result": result,
            "error": job.error if finished else None,
            "shown": (result.rejected[:500] if result else []),
        }
        return self.view.page(request, template, context, user=user)

    def rejects_csv(self, request: Request, token: str, user: CurrentUser) -> Response:
        """The rejected lines of a finished import as CSV (line, reason)."""
        job = self._job(token)
        if job is None or job.result is None:
            return self.view.not_found(request, user, "no finished import")
        rejected = job.result.rejected

        def rows() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\r\n")
            writer.writerow(["line", "reason"])
            for r in rejected:
                writer.writerow([r.line, neutralize(r.reason)])
            yield buffer.getvalue()

        name = re.sub(r"[^A-Za-z0-9._-]+", "_", job.filename)[:80]
        headers = {"Content-Disposition": f'attachment; filename="rejected-{name}"'}
        return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)
