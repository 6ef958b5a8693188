"""The SMTP client alone: CPU per message of :class:`mailer.smtp.pool.SmtpPool` sending
N ready-made ~8 KB messages to Postfix's smtp-sink (no database, no rendering), on
asyncio's loop or uvloop's.

    .venv/bin/python bench/smtp_client_bench.py [--n 20000] [--pool-size 4] [--loop asyncio|uvloop]
                                                [--source DIR] [--runs 3]

Each run is a fresh process (``--source DIR`` puts another source tree first on its
``PYTHONPATH``, for before/after runs); it reports user+system CPU of that process per
message (``getrusage(RUSAGE_SELF)`` around the sends, start-up excluded) and msgs/s.
``before_data`` is an empty coroutine (the engine's "in data" mark without its database).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from send_bench import free_port, reference_root, wait_for_port

CHILD = r"""
import asyncio, json, resource, sys, time
from mailer.config import Settings
from mailer.smtp.pool import SmtpPool

n, port, pool_size, loop_kind = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
line = b"Researchers at the Harbor Institute reported on Tuesday that the new coastal mon=\r\n"
head = (
    b"From: Harbor Institute Press Office <press@harbor.example.org>\r\nTo: a@example.com\r\n"
    b"Subject: Harbor Institute report\r\nMessage-ID: <m1@harbor.example.org>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
)
data = head + line * 95

async def noop() -> None:
    return None

async def main() -> tuple[float, float]:
    settings = Settings.model_validate({"smtp": {"host": "127.0.0.1", "port": port, "pool_size": pool_size}}).smtp
    pool = SmtpPool(settings)
    await pool.send("b@bounces.example.org", "warm@example.com", data)
    todo = iter(range(n))

    async def lane() -> None:
        for i in todo:
            result = await pool.send("b@bounces.example.org", f"r{i}@example.com", data, before_data=noop)
            assert result.outcome.value == "sent", result

    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(pool_size)))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    await pool.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall

if loop_kind == "uvloop":
    import uvloop
    cpu, wall = uvloop.run(main())
else:
    cpu, wall = asyncio.run(main())
print(json.dumps({"cpu_us_per_msg": cpu / n * 1e6, "msgs_per_s": n / wall, "loop": loop_kind}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--pool-size", type=int, default=4)
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--source", type=Path, default=None)
    p.add_argument("--runs", type=int, default=1)
    args = p.parse_args()
    root = reference_root()
    if root is None:
        print("Postfix's smtp-sink is unavailable", file=sys.stderr)
        return 1
    port = free_port()
    env = dict(os.environ, LD_LIBRARY_PATH=str(root / "usr/lib/postfix"))
    sink = subprocess.Popen(
        [str(root / "usr/sbin/smtp-sink"), "-u", "nobody", f"127.0.0.1:{port}", "1024"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        child_env = dict(os.environ)
        if args.source is not None:
            child_env["PYTHONPATH"] = str(args.source.resolve())
        for _ in range(args.runs):
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.n), str(port), str(args.pool_size), args.loop],
                env=child_env,
                cwd=tempfile.gettempdir(),
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(done.stdout)
            result.update(source=str(args.source or "this tree"), load=os.getloadavg()[0])
            print(json.dumps(result), flush=True)
    finally:
        sink.terminate()
        sink.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
