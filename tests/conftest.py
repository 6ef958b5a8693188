"""The suite's fixtures live in tests/support/, a pytest plugin registered here.

Tests that take ``rt`` run once per backend (SQLite file and the local PostgreSQL);
see tests/support/databases.py.

Every template rendered from a skeleton is also rendered in full and compared
(``MAILER_RENDER_VERIFY``, :mod:`mailer.message.trace`), in this process and in every
process it starts (render processes, workers, the web server).
"""

import os

os.environ["MAILER_RENDER_VERIFY"] = "1"

pytest_plugins = [
    "tests.support.databases",
    "tests.support.faultsmtp",
    "tests.support.dkim",
    "tests.support.web",
    "tests.support.browser",
    "tests.support.cli",
]
