"""What each role may do. :func:`permits` is the one place that decides whether a user
may take an action on a release; the web pages ask it both to show buttons and to
refuse requests, the API to refuse calls, the command line (:func:`cli_actor`) to
refuse ``--as``. The state machine (:func:`mailer.domain.states.allowed_actions`) still
decides whether the move is legal at all.

Roles (``mailer.domain.states.Role``):

    admin      everything (suppressions by hand included)
    publicist  read, preview, submit, schedule, send proofs, cancel their own drafts;
               edit contacts, lists and segments, import contacts; correct or withdraw
               a release that went out
    approver   read, preview, approve, lift the cadence cap for a release
    viewer     read, preview
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy.orm import Session

from mailer.accounts.signin import authenticate
from mailer.accounts.users import StaffUser, staff_user
from mailer.audience.contacts import normalize_email
from mailer.domain.errors import InputError, NotFoundError, WorkflowError
from mailer.domain.states import ReleaseStatus, Role
from mailer.store import users as user_store


class Action(StrEnum):
    """Things a staff user may do; reading (lists, logs, previews, exports) is ``view``."""

    VIEW = "view"
    WRITE = "write"  # create or edit a release
    SUBMIT = "submit"
    APPROVE = "approve"
    SCHEDULE = "schedule"
    PROOF = "proof"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY = "retry"
    CONTACTS = "contacts"  # edit contacts, notes, lists and segments; import contacts
    SUPPRESS = "suppress"  # add, lift and import suppressions
    # answering a release that went out (mailer.releases.threads): writing a new release
    CORRECT = "correct"
    WITHDRAW = "withdraw"
    # an approver lets one release past the cadence cap (mailer.releases.cadence)
    LIFT_CAP = "lift-cap"


_ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.PUBLICIST: frozenset(
        {
            Action.VIEW,
            Action.WRITE,
            Action.SUBMIT,
            Action.SCHEDULE,
            Action.PROOF,
            Action.CANCEL,
            Action.CORRECT,
            Action.WITHDRAW,
            Action.CONTACTS,
        }
    ),
    Role.APPROVER: frozenset({Action.VIEW, Action.APPROVE, Action.LIFT_CAP}),
    Role.VIEWER: frozenset({Action.VIEW}),
}


def parse_role(value: str) -> Role:
    """``value`` as a Role; InputError naming the choices otherwise."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise InputError(f"--role: {value!r} is not one of: {choices}") from None


def permits(user: StaffUser, action: Action, *, author: str | None = None, status: str | None = None) -> bool:
    """True when ``user``'s role allows ``action`` (on a release by ``author`` in ``status``).

    A publicist may cancel only a draft they wrote; every other rule is by role alone.
    """
    if action not in _ROLE_ACTIONS[user.role]:
        return False
    if user.role is Role.PUBLICIST and action is Action.CANCEL:
        return author is not None and author.casefold() == user.email.casefold() and status == ReleaseStatus.DRAFT.value
    return True


def cli_actor(
    session: Session, name: str, action: Action, *, author: str | None = None, status: str | None = None
) -> str:
    """Who ``--as NAME`` is when ``action`` is taken on the command line.

    With no user accounts at all (a single-person install) the name is taken as given.
    Once accounts exist, NAME must be the address of an enabled user whose role permits
    ``action`` (as on the staff pages); their address is returned, so the two-person rule
    compares the same names whichever way a release was handled. Raises NotFoundError
    for an unknown user, WorkflowError for a disabled one or a role that may not.
    """
    if not user_store.any_user(session):
        return name
    try:
        user = user_store.find_user(session, normalize_email(name))
    except InputError:
        user = None
    if user is None:
        raise NotFoundError(f"no user '{name}' (mailer users list)")
    if not user.active:
        raise WorkflowError(f"user '{name}' is disabled and cannot {action.value}")
    staff = staff_user(user)
    if not permits(staff, action, author=author, status=status):
        article = "an" if staff.role.value[0] in "aeiou" else "a"
        mine = " this release" if author is not None else ""
        raise WorkflowError(f"user '{name}' is {article} {staff.role.value} and cannot {action.value}{mine}")
    return staff.email


def accounts_exist(session: Session) -> bool:
    """True once any user account exists (then ``--as`` must name one)."""
    return user_store.any_user(session)


def cli_approver(session: Session, name: str, password: str | None) -> str:
    """Who approves with ``releases approve --as NAME`` on the command line.

    With no user accounts the name is taken as given (a fresh demo). Once accounts exist,
    NAME must be an enabled user who may approve **and** ``password`` must be theirs: a
    name alone is not an identity (issue 21: anyone could approve as anyone). Raises
    WorkflowError (no password, a wrong one, a disabled user or a role that may not) or
    NotFoundError (no such user); a wrong password and an unknown user cost the same.
    """
    if not user_store.any_user(session):
        return name
    if not password:
        raise WorkflowError(
            f"--as {name}: user accounts exist, so approving needs {name}'s password "
            "(--password-stdin, or type it when asked)"
        )
    try:
        address = normalize_email(name)
    except InputError:
        address = name
    user = authenticate(session, address, password)
    if user is None:
        raise WorkflowError(f"--as {name}: wrong password, or no such active user with a password")
    return cli_actor(session, user.email, Action.APPROVE)
