"""A worker that runs one engine pass and kills itself (SIGKILL) at a named point.

    python -m tests.support.crashworker POINT   (settings from MAILER_* environment variables)

Points: after_claim (rows leased, nothing sent), in_data (one row marked as in the data
exchange, its data not yet sent), after_accept (the server accepted a chunk, nothing
recorded), mid_batch (one chunk recorded, the next accepted but not recorded).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from mailer.config import load_settings
from mailer.engine import dispatch
from mailer.runtime import Runtime
from mailer.smtp.client import make_transport
from mailer.store import deliveries as q


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(point: str) -> None:
    calls = {"record": 0}
    if point == "after_claim":

        async def send_one(self: Any, prepared: Any, row: Any) -> Any:
            die()

        dispatch.Dispatcher._send_one = send_one  # type: ignore[method-assign]
    elif point == "in_data":
        real_mark = q.mark_in_data

        def mark(session: Any, ids: Any, owner: str) -> int:
            marked = real_mark(session, ids, owner)
            session.commit()
            die()
            return marked

        q.mark_in_data = mark  # type: ignore[assignment]
    elif point in ("after_accept", "mid_batch"):
        real_record = dispatch.Dispatcher._record

        def record(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls["record"] += 1
            if point == "after_accept" or calls["record"] == 2:
                die()
            return real_record(self, *args, **kwargs)

        dispatch.Dispatcher._record = record  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown point {point}")
    rt = Runtime.open(load_settings())
    pool = make_transport(rt.settings.smtp)
    asyncio.run(dispatch.Dispatcher(rt, pool).run_once())


if __name__ == "__main__":
    main(sys.argv[1])
