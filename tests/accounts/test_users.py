"""Staff accounts: adding users (argon2 hashes), API tokens (sha256 stored), disabling,
and the ``mailer users`` commands."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mailer.accounts.api_tokens import issue_token, user_for_token
from mailer.accounts.permits import Action, permits
from mailer.accounts.signin import authenticate
from mailer.accounts.users import StaffUser, add_user, disable_user
from mailer.cli.root import app as cli
from mailer.domain.errors import InputError, NotFoundError
from mailer.domain.states import Role
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import User
from tests.support.constants import FIXED_NOW

PASSWORD = "a long enough password"


def test_password_is_stored_as_argon2_and_checked(rt: Runtime) -> None:
    """The stored hash is argon2id, never the password; the right password signs in, a wrong one does not."""
    with transaction(rt.sessions) as session:
        add_user(session, "Pat@Example.com", role=Role.PUBLICIST, name="Pat", password=PASSWORD, now=FIXED_NOW)
    with transaction(rt.sessions) as session:
        row = session.scalar(select(User))
        assert row is not None and row.email == "pat@example.com"
        assert row.password_hash is not None and row.password_hash.startswith("$argon2id$")
        assert PASSWORD not in row.password_hash
        user = authenticate(session, "PAT@example.com", PASSWORD)
        assert user is not None and user.role is Role.PUBLICIST
        assert authenticate(session, "pat@example.com", "wrong password") is None
        assert authenticate(session, "nobody@example.com", PASSWORD) is None


def test_bad_input_is_refused(rt: Runtime) -> None:
    """A short password, a duplicate address or a bad address is an InputError."""
    with transaction(rt.sessions) as session:
        with pytest.raises(InputError, match="at least"):
            add_user(session, "a@example.com", role=Role.VIEWER, password="short", now=FIXED_NOW)
        add_user(session, "a@example.com", role=Role.VIEWER, password=None, now=FIXED_NOW)
        with pytest.raises(InputError, match="already exists"):
            add_user(session, "A@example.com", role=Role.VIEWER, password=None, now=FIXED_NOW)
        with pytest.raises(InputError):
            add_user(session, "not an address", role=Role.VIEWER, password=None, now=FIXED_NOW)


def test_token_is_shown_once_and_stored_hashed(rt: Runtime) -> None:
    """A new token authenticates; only its sha256 is stored; a newer token replaces it; disabling revokes it."""
    with transaction(rt.sessions) as session:
        add_user(session, "api@example.com", role=Role.VIEWER, password=None, now=FIXED_NOW)
        first = issue_token(session, "api@example.com")
        second = issue_token(session, "api@example.com")
    with transaction(rt.sessions) as session:
        row = session.scalar(select(User))
        assert row is not None and row.api_token_hash == hashlib.sha256(second.encode()).hexdigest()
        assert user_for_token(session, first, now=FIXED_NOW) is None
        assert user_for_token(session, second, now=FIXED_NOW) is not None
        disable_user(session, "api@example.com", now=FIXED_NOW)
    with transaction(rt.sessions) as session:
        assert user_for_token(session, second, now=FIXED_NOW) is None
        with pytest.raises(NotFoundError):
            disable_user(session, "ghost@example.com", now=FIXED_NOW)


def test_permits_table() -> None:
    """Roles map to actions as documented; a publicist cancels only their own drafts."""
    pub = StaffUser(1, "pub@example.com", None, Role.PUBLICIST)
    assert permits(StaffUser(2, "a@example.com", None, Role.ADMIN), Action.RETRY)
    assert permits(StaffUser(3, "b@example.com", None, Role.APPROVER), Action.APPROVE)
    assert not permits(StaffUser(4, "c@example.com", None, Role.VIEWER), Action.SUBMIT)
    assert not permits(pub, Action.APPROVE)
    assert permits(pub, Action.CANCEL, author="PUB@example.com", status="draft")
    assert not permits(pub, Action.CANCEL, author="other@example.com", status="draft")
    assert not permits(pub, Action.CANCEL, author="pub@example.com", status="approved")


def test_users_cli(rt: Runtime) -> None:
    """`mailer users add/list/token/disable` work end to end; bad input is one line and exit 2."""
    runner = CliRunner()
    env = {"MAILER_DATABASE__URL": rt.settings.database.url}
    added = runner.invoke(
        cli, ["users", "add", "ed@example.com", "--role", "approver", "--name", "Ed", "--password-stdin"],
        input=PASSWORD + "\n", env=env,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "added ed@example.com as approver" in added.output
    listed = runner.invoke(cli, ["users", "list", "--json"], env=env)
    [row] = json.loads(listed.stdout)
    assert (row["email"], row["role"], row["active"], row["password"], row["token"]) == (
        "ed@example.com", "approver", True, True, False,
    )  # fmt: skip
    token = runner.invoke(cli, ["users", "token", "ed@example.com"], env=env)
    assert token.exit_code == 0 and token.stdout.strip().startswith("mlr_")
    with transaction(rt.sessions) as session:
        assert user_for_token(session, token.stdout.strip(), now=FIXED_NOW) is not None
    assert runner.invoke(cli, ["users", "disable", "ed@example.com"], env=env).exit_code == 0
    bad = runner.invoke(cli, ["users", "add", "x@example.com", "--role", "boss"], env=env)
    assert bad.exit_code != 0


def test_importing_the_app_does_no_argon2_work() -> None:
    """Importing the CLI and the web app hashes nothing: the dummy hash for unknown addresses is made on first use."""
    probe = (
        "import pwdlib.hashers.argon2 as a\n"
        "calls = []\n"
        "real = a.Argon2Hasher.hash\n"
        "a.Argon2Hasher.hash = lambda self, *args, **kw: calls.append(1) or real(self, *args, **kw)\n"
        "import mailer.cli.root, mailer.web, mailer.accounts.signin\n"
        "print(len(calls))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "0"
