"""Where compiled template code came from, and Jinja errors turned into
:class:`~mailer.domain.errors.TemplateError` naming the author's template and line.

A user-authored body is processed (Markdown, sanitizing, CSS inlining) before Jinja
compiles it, so Jinja's line numbers are those of the processed text; an :class:`Origin`
carries the map back to the source the author wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType

from jinja2 import TemplateError as JinjaTemplateError
from jinja2 import TemplateSyntaxError
from jinja2.exceptions import SecurityError

from mailer.domain.errors import TemplateError


def map_line(line_map: Mapping[int, int] | None, line: int | None) -> int | None:
    """Translate a line of processed source back to the author's source."""
    if line is None or line_map is None:
        return line
    if line in line_map:
        return line_map[line]
    earlier = [k for k in line_map if k < line]
    return line_map[max(earlier)] if earlier else None


def _jinja_frames(tb: TracebackType | None) -> Iterable[tuple[str, int]]:
    """(filename, line) of each template frame of a Jinja-rewritten traceback."""
    while tb is not None:
        g = tb.tb_frame.f_globals
        if "__jinja_exception__" in g:
            yield tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next


@dataclass(frozen=True)
class Origin:
    """Where a compiled template came from: display name and line map (None: identity)."""

    name: str
    line_map: Mapping[int, int] | None


def to_template_error(exc: Exception, origins: Mapping[str, Origin]) -> TemplateError:
    """Convert a Jinja (or Python) exception raised while rendering to TemplateError."""
    if isinstance(exc, TemplateError):
        return exc
    if isinstance(exc, TemplateSyntaxError):
        origin = origins.get(exc.filename or exc.name or "")
        name = origin.name if origin else exc.name
        line = map_line(origin.line_map if origin else None, exc.lineno)
        return TemplateError(f"syntax error: {exc.message}", template=name, line=line)
    where: tuple[str, int] | None = None
    for filename, lineno in _jinja_frames(exc.__traceback__):
        if filename in origins:
            where = (filename, lineno)
    if isinstance(exc, SecurityError):
        message = f"not allowed by the sandbox: {exc}"
    elif isinstance(exc, JinjaTemplateError):
        message = str(exc.message or exc)
    else:
        message = f"{type(exc).__name__}: {exc}"
    if where is None:
        return TemplateError(message)
    origin = origins[where[0]]
    return TemplateError(message, template=origin.name, line=map_line(origin.line_map, where[1]))
