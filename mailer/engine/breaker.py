"""The circuit breaker: pause a release when relays refuse *it*, not its recipients.

Which results count (:func:`counted`): refusals that say something about us or about the
release rather than about one address — policy refusals (X.7.x ``policy_blocked``), the
message refused (size, content, spam), and our sender refused with a temporary code. A
*permanent* refusal of our sender does not wait for the breaker: it pauses the release at
once (see :func:`sender_pause_reason`), because every further message would be refused
the same way.

The breaker trips on a **streak** (``streak`` counted refusals in a row) or on a **rate**
(at least ``rate`` of the last ``window`` results, once ``min_results`` are in). It is
decided per result in the process that hears it (:class:`Breaker`), and its state is
shared by all worker processes through two columns of the release, merged atomically at
each recording (:func:`mailer.store.queue.merge_breaker`): after every merge a
process continues from the shared state, so the window and the streak cover every
worker's results as of its last recording plus its own results since.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailer.config import BreakerSettings
from mailer.domain.states import Outcome
from mailer.domain.status import Fault, Reason
from mailer.smtp.transport import SendResult

REFUSED = "1"
OTHER = "0"


def counted(res: SendResult) -> bool:
    """True when ``res`` is a refusal the breaker counts (see the module docstring)."""
    if res.outcome not in (Outcome.FAILED, Outcome.DEFERRED):
        return False
    return res.fault in (Fault.SENDER, Fault.MESSAGE) or res.reason is Reason.POLICY_BLOCKED


def sender_pause_reason(res: SendResult, release_id: int, bounce_domain: str) -> str | None:
    """The pause reason when ``res`` is a permanent refusal of our sender, else None.

    The text names the refusal and what a person can check before resuming."""
    if res.fault is not Fault.SENDER or res.outcome is not Outcome.FAILED:
        return None
    advice = {
        Reason.SENDER_AUTH: "check the SPF, DKIM and DMARC records of the sending domains",
        Reason.REPUTATION: "check our IP's reverse DNS (PTR) and the blocklists that name it",
        Reason.RELAY_DENIED: "check [smtp] username/password and that the relay lets this host relay",
    }.get(
        res.reason or Reason.OTHER,
        f"check the bounce domain's DNS ({bounce_domain} must resolve, with an MX or A record)",
    )
    return (
        f"the relay refuses our sender at {res.stage.upper()}: {res.reply[:300]}; {advice}, "
        f"then run `mailer releases resume {release_id}`"
    )


@dataclass
class Breaker:
    """One release's breaker as seen by one process: the shared state from the last
    merge plus this process's results since (``pending``, not yet merged)."""

    settings: BreakerSettings
    release_id: int
    window: str = ""
    streak: int = 0
    pending: list[str] = field(default_factory=list)
    last: SendResult | None = None

    def add(self, res: SendResult, *, retry: bool = False) -> str | None:
        """Count one result; the pause reason when the breaker trips now, else None. A
        ``retry`` refused again is no new evidence about the relay (the same address said
        the same before): it is not counted, so a few stubborn addresses at the end of a
        release do not pause it over and over."""
        refused = counted(res)
        if refused and retry:
            return None
        mark = REFUSED if refused else OTHER
        self.pending.append(mark)
        self.window = (self.window + mark)[-self.settings.window :]
        if mark == REFUSED:
            self.streak += 1
            self.last = res
        else:
            self.streak = 0
        return self.tripped()

    def take_pending(self) -> str:
        """The marks not yet merged into the shared state (and forget them)."""
        marks, self.pending = "".join(self.pending), []
        return marks

    def merged(self, window: str, streak: int) -> None:
        """Continue from the shared state returned by a merge, plus this process's results
        counted since the marks of that merge were taken (recording runs off the event
        loop, so results keep coming while it does)."""
        since = "".join(self.pending)
        self.window = (window + since)[-self.settings.window :]
        trailing = len(since) - len(since.rstrip(REFUSED))
        self.streak = streak + trailing if trailing == len(since) else trailing

    def tripped(self) -> str | None:
        """The pause reason if the streak or the rate is reached, else None."""
        s = self.settings
        refused = self.window.count(REFUSED)
        if self.streak >= s.streak:
            why = f"{self.streak} refusals in a row"
        elif len(self.window) >= s.min_results and refused >= s.rate * len(self.window):
            why = f"{refused} of the last {len(self.window)} results were refusals"
        else:
            return None
        last = self.last
        named = f" ({last.reason.value}, at {last.stage.upper()}): {last.reply[:300]}" if last and last.reason else ""
        return (
            f"circuit breaker: {why} (policy, content or our sender){named}; find the cause, "
            f"then run `mailer releases resume {self.release_id}`"
        )
