"""The email templates that ship with mailer, and the sources a renderer reads.

The project keeps them in the top-level ``templates/`` folder; a wheel carries that
folder as the package data ``mailer._templates`` (setup.py maps one to the other). An
editable install or a source checkout reads the folder itself. A configured
``paths.templates_dir`` adds templates and replaces shipped ones of the same name, so
every command works from any working directory (issue 21).
"""

from __future__ import annotations

from pathlib import Path

from mailer.domain.errors import InputError

__all__ = ["shipped_templates_dir", "template_sources"]

_PACKAGE = Path(__file__).resolve().parent.parent
_SUFFIXES = (".html", ".txt")


def shipped_templates_dir() -> Path:
    """The folder of the shipped templates: ``mailer/_templates`` in an installed wheel,
    the checkout's ``templates/`` otherwise."""
    packaged = _PACKAGE / "_templates"
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / "templates"


def _read(folder: Path) -> dict[str, str]:
    try:
        return {
            p.relative_to(folder).as_posix(): p.read_text("utf-8")
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix in _SUFFIXES
        }
    except OSError as exc:
        raise InputError(f"cannot read templates from {folder}: {exc}") from exc


def template_sources(extra: Path | None) -> tuple[Path, dict[str, str]]:
    """``(folder, name → text)``: the shipped templates, overlaid by those under ``extra``
    (when given). ``folder`` is what messages name: ``extra`` when given, else the
    shipped folder. Raises InputError when ``extra`` is not a readable folder."""
    sources = _read(shipped_templates_dir())
    if extra is None:
        return shipped_templates_dir(), sources
    if not extra.is_dir():
        raise InputError(f"paths.templates_dir: {extra} is not a folder")
    return extra, {**sources, **_read(extra)}
