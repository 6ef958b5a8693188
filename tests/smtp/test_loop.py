"""The sending process's event loop (mailer.smtp.loop): uvloop when installed and allowed,
asyncio's own when switched off, a ConfigError when required but missing."""

from __future__ import annotations

import asyncio
import importlib

import pytest

from mailer.config import Settings
from mailer.domain.errors import ConfigError
from mailer.smtp import loop


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_choice_never_uses_uvloop() -> None:
    """smtp.event_loop = "asyncio": the standard loop, whatever is installed."""
    assert loop.loop_factory("asyncio") is None
    assert loop.run(loop_module(), "asyncio").startswith("asyncio")


def test_auto_uses_uvloop_when_installed() -> None:
    """ "auto" runs the coroutine on uvloop when it is installed, else on asyncio's loop."""
    try:
        importlib.import_module("uvloop")
    except ImportError:
        assert loop.run(loop_module(), "auto").startswith("asyncio")
    else:
        assert loop.run(loop_module(), "auto") == "uvloop"


def test_required_uvloop_missing_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "uvloop" required but not importable: ConfigError naming the key; "auto" falls back."""
    real = importlib.import_module

    def no_uvloop(name: str, package: str | None = None) -> object:
        if name == "uvloop":
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_uvloop)
    with pytest.raises(ConfigError) as missing:
        loop.loop_factory("uvloop")
    assert missing.value.key == "smtp.event_loop"
    assert loop.loop_factory("auto") is None


def test_switch_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAILER_SMTP__EVENT_LOOP=asyncio turns uvloop off; the default is "auto"."""
    assert Settings().smtp.event_loop == "auto"
    monkeypatch.setenv("MAILER_SMTP__EVENT_LOOP", "asyncio")
    assert Settings().smtp.event_loop == "asyncio"
