"""Templates rendered once per shape, then only their per-message values (issue 20).

A variant's templates are rendered for every message, yet almost all of their output is
the same in every message: only where a per-message value (the recipient's fields, the
unsubscribe link, the rendered body in the layout, ...) is printed does it differ, and
the control flow (``{% if intro %}``, ``{% for asset in assets %}``) differs only when
such a value decides it. So each template is rendered once with **traced** values in
place of the per-message ones (:class:`Traced`), in a twin of the sandbox
(:class:`TraceSandbox`) that

- prints a traced value as a numbered marker and notes how it was printed (escaped or
  as text): a **slot**;
- answers every question the template asks of a traced value (truth, length, equality
  with a constant, membership, a Jinja test, an attribute, an item, iteration) from the
  real value of the message being traced, and records the question and its answer: a
  **guard**;
- applies a filter to a traced value for real and gives a traced result (a ``default``,
  say), recorded as a step;
- refuses anything else (``~`` with a traced value, arithmetic, hashing, a call with one
  as an argument other than to a macro, ...): :class:`Untraceable`, and that template is
  always rendered in full.

The result, a :class:`~mailer.message.skeleton.Skeleton`, is the output cut at the
markers, with the steps and guards in the order they happened. For a later message the steps are replayed on its
real values; when every guard gives the recorded answer, Jinja would take exactly the
same path through the template (it is deterministic, and a traced value reached it only
through the recorded questions), so the output is the skeleton with each slot filled
by the value printed as Jinja prints it (``escape`` or ``str``). Any guard that differs
tries the next skeleton of the template (a few shapes are kept: with and without an
intro, say), or traces this message as a new shape; any error falls back to the full
render, which reports it as before.

Statically refused (:func:`traceable`): a call whose result is not printed at once
(``{% set x = m() %}``, ``{{ m() | upper }}``), block assignments, filter blocks and
call blocks: the only places a printed marker could go other than into the output.

``VERIFY`` (the environment variable ``MAILER_RENDER_VERIFY=1``; the test suite sets it)
renders every template both ways and raises if they differ.
"""

from __future__ import annotations

import copy
import operator
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.nodes import EvalContext
from jinja2.runtime import Macro
from markupsafe import Markup

from mailer.message.sandbox import SANDBOX_OPTIONS, VARIANT_NAMES, Sandbox, configure

__all__ = [
    "APPLY",
    "ATTR",
    "GUARD",
    "INDEX",
    "ITEM",
    "ITER",
    "MARK_LEAD",
    "ROOT",
    "VARIANT_OWN",
    "VERIFY",
    "Trace",
    "TraceSandbox",
    "Traced",
    "Untraceable",
    "traceable",
]

#: Render every traced template in full too and compare (tests).
VERIFY = os.environ.get("MAILER_RENDER_VERIFY") == "1"

#: Context names whose values are the variant's own, the same in every message (its
#: spec's fields; ``embargo`` and ``preheader`` are per message). Every other name a
#: context holds is traced as a per-message value, so a name added later is safe by
#: default: at worst traced for nothing.
VARIANT_OWN = VARIANT_NAMES - {"embargo", "preheader"}


class Untraceable(Exception):
    """The template did something with a per-message value that a skeleton cannot
    replay: it is always rendered in full."""


# Steps of a trace, replayed in order (tuples: the kind first).
ROOT, ATTR, ITEM, ITER, INDEX, APPLY, GUARD = range(7)


class Trace:
    """What one traced render recorded."""

    def __init__(self, env: TraceSandbox) -> None:
        self.env = env
        self.steps: list[tuple[Any, ...]] = []
        self.count = 0  # nodes
        #: per slot: (node, "html" | "str" | None until printed)
        self.slots: list[list[Any]] = []
        #: a step taken before → its node (the same step gives the same value: every
        #: step is a pure function of its node and constants)
        self.known: dict[Any, int] = {}

    def node(self, step: tuple[Any, ...], value: Any) -> Traced:
        key = _step_key(step)
        if key is not None:
            known = self.known.get(key)
            if known is not None:
                return Traced(self, known, value)
        self.steps.append(step)
        index = self.count
        self.count += 1
        if key is not None:
            self.known[key] = index
        return Traced(self, index, value)

    def guard(self, func: Callable[..., Any], node: int, args: tuple[Any, ...], result: Any) -> None:
        self.steps.append((GUARD, func, node, args, result))


def _plain(value: Any) -> Any:
    """``value`` if no traced value or printed marker is in it, else Untraceable."""
    if isinstance(value, Traced | _Mark):
        raise Untraceable("a per-message value used where a skeleton cannot follow it")
    if isinstance(value, str) and MARK_LEAD in value:
        raise Untraceable("printed per-message output used as a value")
    return value


class Traced:
    """A per-message value during a trace: the real value of the message traced, and
    where it came from. Every way a template can look at it is answered and recorded,
    or refused."""

    __slots__ = ("_node", "_trace", "_value")

    def __init__(self, trace: Trace, node: int, value: Any) -> None:
        self._trace = trace
        self._node = node
        self._value = value

    def _ask(self, func: Callable[..., Any], *args: Any) -> Any:
        args = tuple(_plain(a) for a in args)
        result = func(self._value, *args)
        if type(result) not in (bool, int):
            raise Untraceable(f"{func.__name__} of a per-message value gave {type(result).__name__}")
        self._trace.guard(func, self._node, args, result)
        return result

    def __bool__(self) -> bool:
        result: bool = self._ask(bool)
        return result

    def __len__(self) -> int:
        result: int = self._ask(len)
        return result

    def __eq__(self, other: object) -> bool:
        result: bool = self._ask(operator.eq, other)
        return result

    def __ne__(self, other: object) -> bool:
        result: bool = self._ask(operator.ne, other)
        return result

    def __lt__(self, other: object) -> bool:
        result: bool = self._ask(operator.lt, other)
        return result

    def __le__(self, other: object) -> bool:
        result: bool = self._ask(operator.le, other)
        return result

    def __gt__(self, other: object) -> bool:
        result: bool = self._ask(operator.gt, other)
        return result

    def __ge__(self, other: object) -> bool:
        result: bool = self._ask(operator.ge, other)
        return result

    def __contains__(self, item: object) -> bool:
        result: bool = self._ask(operator.contains, item)
        return result

    def __iter__(self) -> Iterator[Traced]:
        items = list(self._value)
        trace = self._trace
        # the items listed once; replayed, a list of another length is another shape
        listed = trace.node((ITER, self._node, len(items)), items)
        return iter([trace.node((INDEX, listed._node, i), item) for i, item in enumerate(items)])

    def __hash__(self) -> int:
        raise Untraceable("a per-message value used as a key")

    def __str__(self) -> str:
        raise Untraceable("a per-message value turned into text other than by printing it")

    def __repr__(self) -> str:
        raise Untraceable("a per-message value turned into text other than by printing it")

    def __format__(self, spec: str) -> str:
        raise Untraceable("a per-message value formatted")

    def __html__(self) -> str:
        raise Untraceable("a per-message value escaped other than by printing it")

    def __getattr__(self, name: str) -> Any:
        raise Untraceable(f"attribute {name!r} of a per-message value read outside the sandbox")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise Untraceable("a per-message value called")

    def _arithmetic(self, *args: Any) -> Any:
        raise Untraceable("arithmetic on a per-message value")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _arithmetic
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _arithmetic
    __mod__ = __rmod__ = __pow__ = __rpow__ = __neg__ = __pos__ = _arithmetic
    __getitem__ = _arithmetic  # Jinja reads items through the sandbox (TraceSandbox.getitem)


def _step_key(step: tuple[Any, ...]) -> Any:
    """A key equal only for equal steps (a filter by identity, each constant by type and
    value), or None when the step is not to be shared (iteration, an eval context, a
    constant other than text, a number, a boolean or None)."""
    kind = step[0]
    if kind == ATTR:
        return step
    if kind == ITEM:
        constants: tuple[Any, ...] = (step[2],)
        head: tuple[Any, ...] = step[:2]
    elif kind == APPLY:
        _, node, func, pre, rest, named = step
        if pre:
            return None  # an eval context is the render's own
        constants = (*rest, *named.values())
        head = (kind, node, id(func), len(rest), tuple(named))
    else:
        return None
    if not all(type(c) in _SHARED_CONSTANTS for c in constants):
        return None
    return (*head, *((type(c), c) for c in constants))


_SHARED_CONSTANTS = frozenset({str, int, float, bool, type(None)})


MARK_LEAD = "\x00"


class _Mark(str):
    """A slot's marker as printed; notes whether Jinja escaped it or made it text."""

    __slots__ = ("slot",)
    slot: list[Any]

    def __html__(self) -> str:
        self.slot[1] = "html"
        return Markup(str.__str__(self))

    def __str__(self) -> str:
        self.slot[1] = "str"
        return str.__str__(self)


def _wrap_callable(func: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """A filter or test that, given a traced value (first, after Jinja's own argument),
    applies ``func`` to the real value: a filter gives a traced result, a test a
    recorded answer."""
    pass_arg = getattr(func, "jinja_pass_arg", None)
    lead = 0 if pass_arg is None else 1
    if pass_arg is not None and pass_arg.name == "context":
        lead = -1  # a context-taking callable sees the traced context: refused below

    def traced(*args: Any, **kwargs: Any) -> Any:
        if not any(isinstance(a, Traced) for a in args) and not any(isinstance(v, Traced) for v in kwargs.values()):
            return func(*args, **kwargs)
        if lead < 0 or len(args) <= lead or not isinstance(args[lead], Traced):
            raise Untraceable(f"a per-message value passed to {func.__name__} other than as its subject")
        value: Traced = args[lead]
        # the eval context as it is now (an environment as it is)
        pre = tuple(copy.copy(a) if isinstance(a, EvalContext) else a for a in args[:lead])
        rest = tuple(_plain(a) for a in args[lead + 1 :])
        named = {k: _plain(v) for k, v in kwargs.items()}
        result = func(*pre, value._value, *rest, **named)
        trace = value._trace
        if kind == "test":
            if type(result) is not bool:
                raise Untraceable(f"test {func.__name__} gave {type(result).__name__}")
            trace.guard(_applied(func, pre, named), value._node, rest, result)
            return result
        return trace.node((APPLY, value._node, func, pre, rest, named), result)

    if pass_arg is not None:
        traced.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    traced.__name__ = getattr(func, "__name__", kind)
    return traced


def _applied(func: Callable[..., Any], pre: tuple[Any, ...], named: Mapping[str, Any]) -> Callable[..., Any]:
    def applied(value: Any, *rest: Any) -> Any:
        return func(*pre, value, *rest, **named)

    applied.__name__ = getattr(func, "__name__", "test")
    return applied


class TraceSandbox(Sandbox):
    """The sandbox with the same rules, printing traced values as slot markers; see the
    module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nonce = secrets.token_hex(8)
        self.finalize = self._finalize

    @classmethod
    def like(cls, base: Sandbox) -> TraceSandbox:
        """A trace twin of ``base``: its loader and options, its filters and tests each
        able to meet a traced value."""
        env = configure(cls(loader=base.loader, **SANDBOX_OPTIONS))
        env.filters = {n: _wrap_callable(f, "filter") for n, f in base.filters.items()}
        tests: dict[str, Callable[..., Any]] = dict(base.tests.items())  # type: ignore[arg-type]
        env.tests = {n: _wrap_callable(f, "test") for n, f in tests.items()}
        return env

    def _finalize(self, value: Any) -> Any:
        if not isinstance(value, Traced):
            return value
        trace = value._trace
        slot: list[Any] = [value._node, None]
        mark = _Mark(f"{MARK_LEAD}{self.nonce}:{len(trace.slots)}{MARK_LEAD}")
        mark.slot = slot
        trace.slots.append(slot)
        return mark

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Traced):
            value = super().getattr(obj._value, attribute)
            return obj._trace.node((ATTR, obj._node, attribute), value)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Traced):
            argument = _plain(argument)
            value = super().getitem(obj._value, argument)
            return obj._trace.node((ITEM, obj._node, argument), value)
        return super().getitem(obj, _plain(argument) if isinstance(argument, Traced) else argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(__obj, Macro):
            _plain(__obj)
            for value in (*args, *kwargs.values()):
                _plain(value)
        return super().call(__context, __obj, *args, **kwargs)


def traceable(asts: list[nodes.Template]) -> bool:
    """No printed output of these templates can be used as a value (see the module
    docstring): every call's result is printed at once, and nothing captures output."""

    def walk(node: nodes.Node, parent: nodes.Node | None) -> bool:
        if isinstance(node, nodes.AssignBlock | nodes.FilterBlock | nodes.CallBlock):
            return False
        if isinstance(node, nodes.Call) and not isinstance(parent, nodes.Output):
            return False
        return all(walk(child, node) for child in node.iter_child_nodes())

    return all(walk(ast, None) for ast in asts)
