"""The suite's fixtures live in tests/support/, a pytest plugin registered here.

Tests that take ``rt`` run once per backend (SQLite file and the local PostgreSQL);
see tests/support/databases.py.
"""

pytest_plugins = [
    "tests.support.databases",
    "tests.support.faultsmtp",
    "tests.support.dkim",
    "tests.support.web",
    "tests.support.browser",
    "tests.support.cli",
]
