"""What one render may use (:class:`RenderLimits`, the ``[render]`` settings) and the
errors of the render process: :class:`RenderLimitError` (a limit was hit),
:class:`RenderCancelled` (stopped from outside)."""

from __future__ import annotations

from dataclasses import dataclass

from mailer.domain.errors import MailerError, TemplateError

MB = 1024 * 1024


@dataclass(frozen=True)
class RenderLimits:
    """What one message's render may use (the ``[render]`` settings)."""

    #: seconds one message (or compiling one variant) may take
    time_limit: float = 5.0
    #: bytes one message may have
    max_message_bytes: int = 2 * MB
    #: memory the render process may allocate beyond its own start-up size
    memory_limit_mb: int = 512


class RenderLimitError(TemplateError):
    """A render went over a limit of the render process; ``limit`` names the setting."""

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class RenderCancelled(MailerError):
    """The render was stopped from outside (shutdown): the job was not rendered."""


def _size(n: float) -> str:
    return f"{n / MB:.3g} MB"


def time_error(limits: RenderLimits) -> RenderLimitError:
    """A render (or compile) ran past ``render.time_limit``."""
    return RenderLimitError(
        f"template took longer than the {limits.time_limit:g} s limit (render.time_limit)",
        limit="render.time_limit",
    )


def memory_error(limits: RenderLimits) -> RenderLimitError:
    """A render needed more than ``render.memory_limit_mb``."""
    return RenderLimitError(
        f"template needed more than the {limits.memory_limit_mb} MB memory limit (render.memory_limit_mb)",
        limit="render.memory_limit_mb",
    )


def size_error(size: int, limits: RenderLimits) -> RenderLimitError:
    """A message of ``size`` bytes is over ``render.max_message_bytes``."""
    return RenderLimitError(
        f"message of {_size(size)} is over the {_size(limits.max_message_bytes)} limit (render.max_message_bytes)",
        limit="render.max_message_bytes",
    )
