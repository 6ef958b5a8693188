"""The event loop a sending process runs on (:func:`run`): uvloop's when it is installed
(``pip install mailer[fast]``) and ``smtp.event_loop`` allows it, else asyncio's own.

``smtp.event_loop``: ``"auto"`` (uvloop if installed), ``"asyncio"`` (never uvloop: the
switch to turn it off, e.g. ``MAILER_SMTP__EVENT_LOOP=asyncio``), ``"uvloop"`` (required:
a ConfigError when it is not installed). bench/README.md has what it was measured to save.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from mailer.domain.errors import ConfigError

T = TypeVar("T")


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when ``choice`` allows it and it is installed, else None
    (asyncio's default loop)."""
    if choice == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                'smtp.event_loop = "uvloop" but uvloop is not installed (pip install "mailer[fast]")',
                key="smtp.event_loop",
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """``asyncio.run(main)`` on the loop ``choice`` selects (see :func:`loop_factory`)."""
    factory = loop_factory(choice)
    if factory is None:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
