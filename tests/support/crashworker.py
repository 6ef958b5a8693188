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
from mailer.engine import dispatch, sender, writer
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store import queue as delivery_queue


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(point: str) -> None:
    calls = {"record": 0}
    if point == "after_claim":

        async def send_one(self: Any, prepared: Any, row: Any, *args: Any) -> Any:
            die()

        sender.Sender._send_one = send_one  # type: ignore[method-assign,assignment]
    elif point == "in_data":
        real_mark = delivery_queue.mark_in_data

        def mark(conn: Any, ids: Any, owner: str) -> set[int]:
            marked = real_mark(conn, ids, owner)
            conn.commit()
            die()
            return marked

        delivery_queue.mark_in_data = mark  # type: ignore[assignment]
    elif point in ("after_accept", "mid_batch"):
        real_record = writer.record_results

        def record(*args: Any, **kwargs: Any) -> Any:
            calls["record"] += 1
            if point == "after_accept" or calls["record"] == 2:
                die()
            return real_record(*args, **kwargs)

        writer.record_results = record
    else:
        raise SystemExit(f"unknown point {point}")
    rt = Runtime.open(load_settings())
    pool = make_transport(rt.settings.smtp)
    asyncio.run(dispatch.Dispatcher(rt, pool).run_once())


if __name__ == "__main__":
    main(sys.argv[1])
