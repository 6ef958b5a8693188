"""Browser tests: headless Debian Chromium through Playwright, and the app served by
uvicorn in a thread. Under CI the browser must be there; locally the tests skip when
/usr/bin/chromium is missing (`make /usr/bin/chromium` installs it)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, sync_playwright

from mailer.runtime import Runtime
from mailer.web import create_app
from tests.support.constants import FIXED_NOW, REPO

CHROMIUM = Path("/usr/bin/chromium")


SCREENSHOTS = REPO / "test-output"


# Everything but our own server resolves to a dead address: the page may load nothing
# from the outside world, and a test that tried would fail instead of reaching out.
CHROMIUM_ARGS = ["--host-resolver-rules=MAP * 127.0.0.254 , EXCLUDE localhost , EXCLUDE 127.0.0.1", "--no-sandbox"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, shared by the module's tests."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is required under CI (run `make {CHROMIUM}`)")
        pytest.skip(f"{CHROMIUM} not installed (run `make {CHROMIUM}`)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def base_url(rt: Runtime) -> Iterator[str]:
    """The app served by uvicorn in a thread on 127.0.0.1 and a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(rt.settings, clock=lambda: FIXED_NOW), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def shot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
