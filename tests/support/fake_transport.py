"""An in-memory :class:`mailer.smtp.transport.Transport` for engine tests (in the spirit
of httpx's ``MockTransport``): no sockets, replies scripted per address, every accepted
message recorded.

    fake = FakeTransport()
    fake.reply("gone@example.com", 550, "5.1.1 No such user", stage="rcpt")
    fake.reply("busy@example.com", 451, "4.3.0 Try later", stage="data", times=2)
    fake.reply_to_mail(553, "5.1.8 Sender address rejected: Domain not found")
    fake.lose_after_data("lost@example.com")
    fake.delay = 0.05                      # every send waits this long first
    await Dispatcher(rt, fake).run_once()
    assert fake.recipients() == ["ann@example.com"]

Replies go through :func:`mailer.smtp.transport.reply_result`, so they are classified by
the one classifier the real clients use. As in the real clients, ``before_data`` runs only
when the transaction reaches DATA (RCPT accepted), and whatever it raises propagates
(``LeaseLost`` included: nothing is sent). A scripted reply fires ``times`` times (``None``:
every time); then the next one queued for that address applies, or acceptance.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailer.domain.states import Outcome
from mailer.smtp.transport import SendResult, reply_result

_ANY_RECIPIENT = "*"
STAGES = ("connect", "mail", "rcpt", "data")


@dataclass(frozen=True)
class Sent:
    """One message the fake accepted."""

    sender: str
    recipient: str
    data: bytes


@dataclass
class _Script:
    code: int | None  # None: the connection is lost after the data (outcome unknown)
    text: str
    stage: str
    remaining: int | None
    delay: float = 0.0


class FakeTransport:
    """A scripted, recording transport; see the module docstring."""

    def __init__(self, *, delay: float = 0.0) -> None:
        #: Seconds every send waits before it answers (on top of a script's own delay).
        self.delay = delay
        self.sent: list[Sent] = []
        #: Every (recipient, SendResult) answered, in order, accepted or not.
        self.results: list[tuple[str, SendResult]] = []
        self.closed = False
        self._scripts: dict[str, deque[_Script]] = {}

    # -- scripting -------------------------------------------------------------------

    def reply(
        self, recipient: str, code: int, text: str, *, stage: str = "rcpt", times: int | None = None, delay: float = 0.0
    ) -> None:
        """Answer ``recipient``'s transaction at ``stage`` with ``code text`` the next ``times`` times."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
        self._queue(recipient, _Script(code, text, stage, times, delay))

    def reply_to_mail(self, code: int, text: str, *, times: int | None = None) -> None:
        """Answer MAIL FROM with ``code text`` whoever the recipient (a refusal of our sender)."""
        self._queue(_ANY_RECIPIENT, _Script(code, text, "mail", times))

    def lose_after_data(self, recipient: str, *, times: int | None = None) -> None:
        """Take ``recipient``'s data, then lose the connection before the final reply."""
        self._queue(recipient, _Script(None, "connection lost during data", "data", times))

    def _queue(self, recipient: str, script: _Script) -> None:
        if script.remaining is not None and script.remaining < 1:
            raise ValueError("times must be at least 1 (or None for every time)")
        self._scripts.setdefault(recipient, deque()).append(script)

    def _take(self, recipient: str) -> _Script | None:
        for key in (_ANY_RECIPIENT, recipient):
            queue = self._scripts.get(key)
            if queue:
                script = queue[0]
                if script.remaining is not None:
                    script.remaining -= 1
                    if script.remaining == 0:
                        queue.popleft()
                return script
        return None

    # -- inspection ------------------------------------------------------------------

    def recipients(self) -> list[str]:
        """The recipients of the accepted messages, in the order they were accepted."""
        return [s.recipient for s in self.sent]

    # -- Transport -------------------------------------------------------------------

    async def send(
        self, sender: str, recipient: str, data: bytes, *, before_data: Callable[[], Awaitable[None]] | None = None
    ) -> SendResult:
        script = self._take(recipient)
        wait = self.delay + (script.delay if script else 0.0)
        if wait > 0:
            await asyncio.sleep(wait)
        if script is not None and script.stage != "data":
            assert script.code is not None
            return self._answer(recipient, reply_result(script.code, script.text, script.stage))
        if before_data is not None:
            await before_data()
        if script is None:
            self.sent.append(Sent(sender, recipient, data))
            return self._answer(recipient, reply_result(250, "2.0.0 OK: queued", "data"))
        if script.code is None:
            return self._answer(recipient, SendResult(Outcome.UNKNOWN, None, script.text, "data"))
        result = reply_result(script.code, script.text, "data")
        if 200 <= script.code < 300:
            self.sent.append(Sent(sender, recipient, data))
        return self._answer(recipient, result)

    def _answer(self, recipient: str, result: SendResult) -> SendResult:
        self.results.append((recipient, result))
        return result

    async def close(self) -> None:
        self.closed = True
