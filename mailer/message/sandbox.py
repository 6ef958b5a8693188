"""The Jinja sandbox every template runs in, and the names a template may use.

One :class:`Sandbox` (an :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` with
:class:`~jinja2.StrictUndefined`) runs the files in ``templates/`` and the user-authored
subject, body and intro. It offers only what those templates need:

- no globals: Jinja's ``range``, ``lipsum``, ``dict``, ``cycler``, ``joiner`` and
  ``namespace`` are gone (``lipsum(200000)`` alone ran for 45 s);
- text filters whose result is bounded by their input: ``default`` (``d``), ``upper``,
  ``lower``, ``title``, ``capitalize``, ``trim``, ``length`` (``count``), ``replace``
  (refused when the result would pass :data:`MAX_TEXT` characters), ``join``, ``first``,
  ``last``, ``escape`` (``e``). ``safe`` is gone too: it let a body put unsanitized HTML
  back into the message;
- ``*``, ``**`` and ``%`` intercepted: repeating text past :data:`MAX_TEXT` characters,
  a power past :data:`MAX_POWER_BITS` bits and printf-style ``%`` formatting are refused
  (``{{ 'a' * 10**8 }}`` made a 100 MB message). Intercepted operators are also never
  folded into constants at compile time, so compiling cannot compute them either.

These are the cheap first line. What really bounds a render is the render process of
:mod:`mailer.message.isolated`: a time limit, a size cap and a memory limit.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, TypeVar

from jinja2 import BaseLoader, StrictUndefined, Undefined, pass_eval_context, select_autoescape
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailer.message.spec import Booking, RelatedLink, Sender, Speaker, SpeakerGroup

#: The longest text ``*`` and ``replace`` may make (characters).
MAX_TEXT = 1_000_000
#: The largest integer ``**`` may make (bits; 4096 bits print as ~1,230 digits).
MAX_POWER_BITS = 4096

RECIPIENT_NAMES = frozenset({"first_name", "last_name", "outlet", "email", "attributes"})
MESSAGE_NAMES = frozenset({"to_addr", "unsubscribe_url"})
VARIANT_NAMES = frozenset(
    {
        "title",
        "dateline",
        "embargo",
        "speakers",
        "questions",
        "booking_contact",
        "sender",
        "release_key",
        # issue 21: the publicist's desk
        "preheader",
        "speaker_groups",
        "questions_heading",
        "related",
        "booking",
        "disclosure_placement",
    }
)
SUBJECT_NAMES = RECIPIENT_NAMES | MESSAGE_NAMES | VARIANT_NAMES
USER_NAMES = SUBJECT_NAMES | {"subject"}
LAYOUT_NAMES = USER_NAMES | {"body", "intro", "about", "preheader", "assets", "view_online_url"}


class Missing(Undefined):
    """An empty recipient field: prints as ``""``, is falsy, and takes ``default()``."""

    __slots__ = ()


MISSING = {
    name: Missing(hint=f"the recipient has no {name}", name=name)
    for name in ("first_name", "last_name", "outlet", "email")
}


@pass_eval_context
def _replace(eval_ctx: EvalContext, s: str, old: str, new: str, count: int | None = None) -> str:
    """Jinja's ``replace``, refused when its result would pass :data:`MAX_TEXT`."""
    text, old_s, new_s = str(s), str(old), str(new)
    times = text.count(old_s) if old_s else len(text) + 1
    if count is not None and count >= 0:
        times = min(times, count)
    if len(text) + times * (len(new_s) - len(old_s)) > MAX_TEXT:
        raise SecurityError(f"replace would make more than {MAX_TEXT:,} characters")
    result: str = FILTERS["replace"](eval_ctx, s, old, new, count)
    return result


_FILTERS: dict[str, Callable[..., Any]] = {
    name: FILTERS[name]
    for name in (
        "default",
        "d",
        "upper",
        "lower",
        "title",
        "capitalize",
        "trim",
        "length",
        "count",
        "join",
        "first",
        "last",
        "escape",
        "e",
    )
}
_FILTERS["replace"] = _replace


#: Exact types whose listed attributes every template reads per message (the variant's
#: frozen values and Jinja's loop), and the value types they hold: for these the full
#: sandbox check is known to pass and is skipped (see :meth:`Sandbox.getattr`).
_PLAIN_FIELDS: dict[type, frozenset[str]] = {
    Sender: frozenset({"name", "address", "reply_to", "postal_address", "disclosure"}),
    Speaker: frozenset({"name", "title", "bio", "paragraphs"}),
    SpeakerGroup: frozenset({"heading", "speakers"}),
    RelatedLink: frozenset({"title", "url"}),
    Booking: frozenset({"name", "email", "phone", "note", "tel"}),
    LoopContext: frozenset({"index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0"}),
}
_PLAIN_VALUES = frozenset({str, int, bool, type(None), tuple, Speaker})
#: Every attribute a dict has (its methods): any other name on a dict is a key lookup.
_DICT_ATTRIBUTES = frozenset(dir({}))


class Sandbox(ImmutableSandboxedEnvironment):
    """The environment of every template; see the module docstring."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``obj.attribute`` as :class:`ImmutableSandboxedEnvironment` gives it, without
        its per-access checks where their answer is known.

        Two shortcuts, each giving exactly what the full path gives: a listed field of one
        of the frozen value types of ``_PLAIN_FIELDS`` holding a plain value (no
        underscore, the object is no function, method, type, frame or mutable container,
        and the value is no ``str.format``: the full check passes and returns the value);
        and a name that is not an attribute of a plain ``dict`` (the full path's
        ``getattr`` fails, and it looks the key up). Everything else (what an author's
        template reaches for beyond these) takes the full sandbox check.
        """
        kind = type(obj)
        fields = _PLAIN_FIELDS.get(kind)
        if fields is not None and attribute in fields:
            value = getattr(obj, attribute)
            if type(value) in _PLAIN_VALUES:
                return value
        elif kind is dict and attribute not in _DICT_ATTRIBUTES and not attribute.startswith("_"):
            try:
                return obj[attribute]
            except LookupError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        """``*``, ``**`` and ``%`` with the limits of the module docstring."""
        if operator_ == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * times > MAX_TEXT:
                    raise SecurityError(f"'*' would make more than {MAX_TEXT:,} items")
            return operator.mul(left, right)
        if operator_ == "**":
            big = isinstance(left, int) and isinstance(right, int) and right > 0
            if big and max(abs(left).bit_length() - 1, 0) * right > MAX_POWER_BITS:
                raise SecurityError(f"'**' would make a number of more than {MAX_POWER_BITS} bits")
            return operator.pow(left, right)
        if isinstance(left, str):
            raise SecurityError("'%' formatting of text is not available (join text with '~')")
        return operator.mod(left, right)


def make_sandbox(loader: BaseLoader) -> Sandbox:
    """A :class:`Sandbox` loading through ``loader``: ``.html`` templates autoescape,
    ``.txt`` ones (text part, subject) do not."""
    return configure(Sandbox(loader=loader, **SANDBOX_OPTIONS))


#: The options every sandbox is built with (see :func:`make_sandbox`).
SANDBOX_OPTIONS: dict[str, Any] = {
    "undefined": StrictUndefined,
    "autoescape": select_autoescape(("html", "htm", "xml"), default_for_string=False),
    "trim_blocks": True,
    "lstrip_blocks": True,
    "auto_reload": False,
}


def configure(env: _S) -> _S:
    """No globals, only the filters of the module docstring."""
    env.globals.clear()
    env.filters = dict(_FILTERS)
    return env


_S = TypeVar("_S", bound=Sandbox)
