"""What a long-running ``mailer run`` process does besides sending: its heartbeat (with
its counters) and the webhook outbox's POSTs. Handed to
:func:`mailer.engine.scheduler.run_forever` as ``extra_jobs``."""

from __future__ import annotations

import asyncio

from mailer.engine.scheduler import PeriodicJob
from mailer.ops.heartbeat import beat, process_name
from mailer.ops.webhooks import deliver_due
from mailer.runtime import Runtime


def sender_jobs(rt: Runtime) -> list[PeriodicJob]:
    """The periodic jobs of ``mailer run`` (the database work off the event loop)."""
    name = process_name("sender")

    async def heartbeat() -> None:
        await asyncio.to_thread(beat, rt, "sender", name=name)

    async def webhooks() -> None:
        await asyncio.to_thread(deliver_due, rt)

    return [
        ("heartbeat", rt.settings.ops.heartbeat_seconds, heartbeat),
        ("webhooks", rt.settings.webhooks.poll_seconds, webhooks),
    ]
