"""Sections Word-based Outlook lays out as written: every ``<div>`` of a template becomes
a one-cell presentation table.

Outlook for Windows renders HTML with Word, which ignores ``margin`` (and most box
styling) on ``<div>``: sections that rely on div margins run together. A table cell
keeps its ``padding`` everywhere, so :func:`tables_for_divs` turns each
``<div ATTRS>...</div>`` of a (CSS-inlined) template into
``<table role="presentation" width="100%" ...><tr><td ATTRS>...</td></tr></table>``,
with the div's ``margin`` declarations as the cell's ``padding`` (when it has none of
its own). Template authors keep writing ``<div class="section">``; hidden divs
(``display:none``, the preheader) stay divs. Applied when a template is loaded, so it
costs nothing per message.
"""

from __future__ import annotations

import re

__all__ = ["tables_for_divs"]

_DIV = re.compile(r"<div\b([^>]*)>|</div\s*>", re.I)
_STYLE = re.compile(r"""\bstyle\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
_HIDDEN = re.compile(r"display\s*:\s*none", re.I)
_MARGIN = re.compile(r"(?<![\w-])margin(-top|-right|-bottom|-left)?\s*:", re.I)
_PADDING = re.compile(r"(?<![\w-])padding(-top|-right|-bottom|-left)?\s*:", re.I)

_OPEN = '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"><tr><td{attrs}>'
_CLOSE = "</td></tr></table>"


def _cell_attrs(attrs: str) -> str:
    style = _STYLE.search(attrs)
    if style is None:
        return attrs
    css = style.group(1) if style.group(1) is not None else style.group(2)
    if _PADDING.search(css) is None:
        css = _MARGIN.sub(lambda m: f"padding{m.group(1) or ''}:", css)
    return attrs[: style.start()] + f'style="{css}"' + attrs[style.end() :]


def tables_for_divs(html: str) -> str:
    """``html`` with each visible ``<div>`` turned into a one-cell table (see the module
    docstring). Unbalanced markup is left as it is."""
    out: list[str] = []
    stack: list[bool] = []  # per open div: converted?
    pos = 0
    for m in _DIV.finditer(html):
        out.append(html[pos : m.start()])
        pos = m.end()
        if m.group(0).startswith("</"):
            converted = stack.pop() if stack else False
            out.append(_CLOSE if converted else m.group(0))
            continue
        attrs = m.group(1)
        style = _STYLE.search(attrs)
        hidden = style is not None and _HIDDEN.search(style.group(0)) is not None
        stack.append(not hidden)
        out.append(m.group(0) if hidden else _OPEN.format(attrs=_cell_attrs(attrs)))
    if stack:
        return html
    out.append(html[pos:])
    return "".join(out)
