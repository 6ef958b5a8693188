"""A worker that starts the due releases, plans them in steps of STEP contacts and kills
itself (SIGKILL) inside step KILL_AT, after the step's rows are written, before its commit.

    python -m tests.support.crashplanner STEP KILL_AT   (settings from MAILER_* environment variables)
"""

from __future__ import annotations

import os
import signal
import sys

from sqlalchemy.orm import Session

from mailer.config import load_settings
from mailer.engine.planner import Planner
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime


def main(step: int, kill_at: int) -> None:
    rt = Runtime.open(load_settings())
    planner = Planner(rt, renderer_for(rt.settings), owner="doomed", step_contacts=step)
    planner.step_seconds = float("inf")  # STEP contacts every step, however slow
    steps = {"n": 0}

    def hook(session: Session, release_id: int) -> None:
        steps["n"] += 1
        if steps["n"] == kill_at:
            session.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    planner.step_hook = hook
    planner.plan_due()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
