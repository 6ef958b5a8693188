"""A traced template's shapes (issue 20; :mod:`mailer.message.trace` tells how a template
is traced): :class:`Skeleton`, one shape's literal text, slots, steps and guards written
out as one function; :class:`Skeletons`, the shapes of one template met so far, giving a
message's output from the first that fits, tracing a new shape when none does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import markupsafe
from jinja2 import Template
from markupsafe import Markup, escape

from mailer.message.sandbox import Sandbox
from mailer.message.trace import (
    APPLY,
    ATTR,
    GUARD,
    INDEX,
    ITER,
    MARK_LEAD,
    ROOT,
    VARIANT_OWN,
    Trace,
    TraceSandbox,
    Untraceable,
)

__all__ = ["MAX_SHAPES", "Skeleton", "Skeletons"]

#: markupsafe's own escaping of plain text (what ``escape`` does to a str, without the
#: Markup it wraps it in); ``escape`` itself where a version has no such function
_escape_inner: Callable[[str], str] = getattr(markupsafe, "_escape_inner", escape)

#: Shapes kept per template; past that, messages of a new shape are rendered in full.
MAX_SHAPES = 8


class _Mismatch(Exception):
    """A guard gave another answer than when the skeleton was traced."""


class Skeleton:
    """One shape of a template's output: literal text with slots, and the steps that
    decide whether a message has this shape."""

    __slots__ = ("env", "fill", "parts", "printed", "roots", "size", "slots", "steps")

    def __init__(self, trace: Trace, roots: tuple[str, ...], size: int, output: str) -> None:
        self.env = trace.env
        self.roots = roots
        #: names in the context traced: with every root there, the same per-message names
        #: (the variant's own are in every context), so none was read as missing
        self.size = size
        self.steps = tuple(trace.steps[len(roots) :])
        pieces = output.split(MARK_LEAD)
        # literal, "nonce:k", literal, "nonce:k", ..., literal
        if len(pieces) % 2 != 1:
            raise Untraceable("a marker was cut")
        parts: list[Any] = []
        slots: list[tuple[int, int, bool]] = []
        seen: set[int] = set()
        prefix = f"{trace.env.nonce}:"
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                parts.append(piece)
                continue
            if not piece.startswith(prefix):
                raise Untraceable("a marker was changed")
            k = int(piece[len(prefix) :])
            if k in seen or k >= len(trace.slots):
                raise Untraceable("a marker was repeated")
            seen.add(k)
            node, mode = trace.slots[k]
            if mode is None:
                raise Untraceable("a marker was neither escaped nor made text")
            slots.append((len(parts), node, mode == "html"))
            parts.append(None)
        if len(seen) != len(trace.slots):
            raise Untraceable("a marker was dropped")
        self.parts = parts
        #: each value printed once per way (escaped or text), then placed at each slot
        self.printed = tuple(dict.fromkeys((node, html) for _, node, html in slots))
        where = {key: i for i, key in enumerate(self.printed)}
        self.slots = tuple((at, where[node, html]) for at, node, html in slots)

        self.fill: Callable[[Mapping[str, Any]], str] = self._compile()

    def _compile(self) -> Callable[[Mapping[str, Any]], str]:
        """``fill(ctx)``: the output for ``ctx``, raising _Mismatch when its shape differs
        (and whatever a step raises, e.g. a missing attribute): the steps, the guards and
        the join written out as one Python function, so a message costs no interpretation
        of the steps. Only names and indices are written into its source; every value
        (names looked up, filters, their constants, the literal text) is an item of the
        ``K`` tuple it is given."""
        consts: list[Any] = []

        def k(value: Any) -> str:
            consts.append(value)
            return f"K[{len(consts) - 1}]"

        lines = [f"    if len(ctx) != {int(self.size)}:", "        raise Mismatch"]
        node = 0
        for name in self.roots:
            lines.append(f"    v{node} = ctx[{k(name)}]")
            node += 1
        for step in self.steps:
            kind = step[0]
            if kind == GUARD:
                lines.append(f"    if {k(step[1])}(v{int(step[2])}, *{k(step[3])}) != {k(step[4])}:")
                lines.append("        raise Mismatch")
                continue
            parent = f"v{int(step[1])}"
            if kind == ATTR:
                value = f"getattr_(env, {parent}, {k(step[2])})"
            elif kind == INDEX:
                value = f"{parent}[{int(step[2])}]"
            elif kind == ITER:  # listed, and the same length as traced, or another shape
                lines.append(f"    v{node} = list({parent})")
                lines.append(f"    if len(v{node}) != {int(step[2])}:")
                lines.append("        raise Mismatch")
                node += 1
                continue
            elif kind == APPLY:
                value = f"{k(step[2])}(*{k(step[3])}, {parent}, *{k(step[4])}, **{k(step[5])})"
            else:  # ITEM
                value = f"getitem_(env, {parent}, {k(step[2])})"
            lines.append(f"    v{node} = {value}")
            node += 1
        for i, (printed, html) in enumerate(self.printed):
            v = f"v{int(printed)}"
            if html:  # escape() as Jinja prints it: plain text escaped, Markup as it is
                text = f"(escape_inner({v}) if type({v}) is str else {v} if type({v}) is Markup else escape({v}))"
            else:
                text = f"({v} if type({v}) is str else str({v}))"
            lines.append(f"    t{i} = {text}")
        placed = dict(self.slots)
        pieces = [
            f"t{int(placed[at])}" if at in placed else k(part) for at, part in enumerate(self.parts) if part != ""
        ]
        lines.append(f"    return join(({', '.join(pieces)},))" if pieces else "    return ''")
        source = "def fill(ctx):\n" + "\n".join(lines) + "\n"
        scope: dict[str, Any] = {
            "K": tuple(consts),
            "Mismatch": _Mismatch,
            "env": self.env,
            "getattr_": Sandbox.getattr,
            "getitem_": Sandbox.getitem,
            "escape": escape,
            "escape_inner": _escape_inner,
            "Markup": Markup,
            "join": "".join,
            "list": list,
            "len": len,
            "type": type,
            "str": str,
            "__builtins__": {},
        }
        exec(compile(source, "<skeleton>", "exec"), scope)
        fill: Callable[[Mapping[str, Any]], str] = scope["fill"]
        return fill


class Skeletons:
    """The shapes of one template met so far (see the module docstring)."""

    __slots__ = ("env", "failed", "roots", "shapes", "template")

    def __init__(self, template: Template, env: TraceSandbox) -> None:
        self.template = template  # compiled in ``env``
        self.env = env
        self.shapes: list[Skeleton] = []
        self.failed = False

    def render(self, ctx: Mapping[str, Any]) -> str | None:
        """The template's output for ``ctx``, or None when it must be rendered in full
        (untraceable, too many shapes, or an error to be reported by the full render)."""
        try:
            for shape in self.shapes:
                try:
                    return shape.fill(ctx)
                except _Mismatch:
                    continue
        except Exception:
            return None
        if self.failed or len(self.shapes) >= MAX_SHAPES:
            return None
        return self._trace(ctx)

    def _trace(self, ctx: Mapping[str, Any]) -> str | None:
        trace = Trace(self.env)
        traced: dict[str, Any] = {}
        roots: list[str] = []
        for name, value in ctx.items():
            if name not in VARIANT_OWN:
                roots.append(name)
                traced[name] = trace.node((ROOT, name), value)
            else:
                traced[name] = value
        template = self.template
        try:
            output = "".join(template.root_render_func(template.new_context(traced, shared=True)))
            shape = Skeleton(trace, tuple(roots), len(ctx), output)
            result = shape.fill(ctx)
        except Untraceable:
            self.failed = True
            return None
        except Exception:
            return None  # the full render reports it
        self.shapes.append(shape)
        return result
