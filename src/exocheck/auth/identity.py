"""Who is acting, and may they: the one question every shell asks before it writes.

A store without users (one workstation, a notebook) records the name it is given. A store with
users takes no bare name: the person proves who they are, with their password or with a live
session (the web's cookie or token, the command line's ``exocheck login``), and their role must
allow the action (:mod:`exocheck.auth.roles`). The audit trail then names the authenticated
user. The command line, the web service and batch call :func:`identify` and only map its
errors::

    from exocheck.auth.identity import identify

    actor = identify(store, "measurement.add", user="ana", password=...)
    store.add_protein("L-001", 20.0, by=actor.name)

Sessions end like the web's: on logout, on revocation, when the account is disabled or locked,
and after :func:`idle_timeout_s` of inactivity (``$EXOCHECK_IDLE_TIMEOUT_MIN``, 15 minutes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from exocheck.auth.accounts import Accounts, UserView
from exocheck.auth.roles import PERMISSIONS, require
from exocheck.errors import AuthError, ParameterError
from exocheck.store.base import StoreBase, check_actor

IDLE_TIMEOUT_ENV = "EXOCHECK_IDLE_TIMEOUT_MIN"
#: the web service's default (:class:`exocheck.web.Settings.idle_timeout_min`)
DEFAULT_IDLE_TIMEOUT_MIN = 15.0

#: a value, or a function that gives it when it is needed (a password prompt)
Lazy = str | Callable[[], str | None] | None


@dataclass(frozen=True)
class Actor:
    """The person an action is recorded under.

    Attributes
    ----------
    name : str
        The name the audit trail records.
    user : UserView or None
        The authenticated user; None in a store without users.
    via : {"name", "password", "session"}
        How the name was established: given (a store without users), by password, by session.
    """

    name: str
    user: UserView | None
    via: Literal["name", "password", "session"]

    @property
    def authenticated(self) -> bool:
        """True when a password or a session proved who this is."""
        return self.user is not None


def has_users(store: StoreBase) -> bool:
    """True when the store has users (who then authenticate for every change)."""
    return store.has_users()


def idle_timeout_s(environ: Mapping[str, str] | None = None) -> float:
    """Seconds of inactivity that end a session: ``$EXOCHECK_IDLE_TIMEOUT_MIN`` (minutes, the
    web service's setting), 15 minutes without it."""
    raw = (os.environ if environ is None else environ).get(IDLE_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_IDLE_TIMEOUT_MIN * 60.0
    try:
        minutes = float(raw)
    except ValueError:
        minutes = float("nan")
    if not minutes > 0 or minutes == float("inf"):
        raise ParameterError(
            f"{IDLE_TIMEOUT_ENV} must be a positive number of minutes, not {raw!r}"
        )
    return minutes * 60.0


def _value(lazy: Lazy) -> str | None:
    return lazy() if callable(lazy) else lazy


def identify(
    store: StoreBase,
    action: str | None,
    *,
    by: str | None = None,
    user: str | None = None,
    password: Lazy = None,
    token: Lazy = None,
    default_name: Lazy = None,
    idle_timeout: float | None = None,
    accounts: Accounts | None = None,
) -> Actor:
    """The person doing ``action`` on ``store``, authenticated where the store has users.

    Parameters
    ----------
    store : StoreBase
        The store the action changes.
    action : str or None
        An action of :data:`exocheck.auth.roles.PERMISSIONS` the user's role must allow
        (``"measurement.add"``, ``"catalog.edit"``...); None checks no role.
    by : str, optional
        A name given outright. Accepted only in a store without users.
    user, password : str, optional
        A user name and its password. ``password`` may be a function returning it, called
        only when the store has users (a prompt is then shown only when it is needed).
    token : str or callable, optional
        A session token (from ``Accounts.login``), or a function returning it; used when no
        ``user`` is given.
    default_name : str or callable, optional
        The name recorded in a store without users when ``by`` is not given (the command line
        passes ``$EXOCHECK_USER`` or the login name), or a function returning it. Ignored in
        a store with users.
    idle_timeout : float, optional
        Seconds of inactivity that end a session (default: :func:`idle_timeout_s`).
    accounts : Accounts, optional
        The accounts to check against (default: ``Accounts(store)``; the web passes its own,
        with its lockout setting).

    Returns
    -------
    Actor
        Who acts: the authenticated user, or in a store without users the name given.

    Raises
    ------
    AuthError
        The store has users and no password or live session says who this is, or a bare name
        was given; a wrong password (counted towards the lockout, as at login).
    AccountLocked
        The account is locked or disabled.
    NotAllowed
        The user's role does not allow ``action``.
    StoreError
        A store without users and no name to record.
    """
    if action is not None and action not in PERMISSIONS:
        raise ParameterError(f"unknown action {action!r}")
    if not has_users(store):
        if user is not None:
            raise AuthError(
                f"this store has no users, so {user} cannot log in: name who acts with "
                "--by NAME (or $EXOCHECK_USER)"
            )
        return Actor(check_actor(by or _value(default_name) or ""), None, "name")
    if by is not None:
        raise AuthError(
            "this store has users, so a name alone (--by) is not accepted: give --user NAME "
            "(the password is asked, or read with --password-stdin), or log in first with "
            "'exocheck login --user NAME'"
        )
    accounts = accounts or Accounts(store)
    if user is not None:
        given = _value(password)
        if not given:
            raise AuthError(f"no password given for {user}")
        view = accounts.verify(user, given, purpose="login")
        found = Actor(view.name, view, "password")
    else:
        seconds = idle_timeout_s() if idle_timeout is None else idle_timeout
        saved = _value(token)
        live = accounts.session(saved, idle_timeout_s=seconds)
        if live is None:
            raise AuthError(
                (
                    "your session has ended: say who you are"
                    if saved
                    else "this store has users: say who you are"
                )
                + " with --user NAME (the password is asked, or read with --password-stdin), "
                "or log in with 'exocheck login --user NAME' (a session ends after "
                f"{seconds / 60:g} idle minutes and on 'exocheck logout')"
            )
        found = Actor(live.user.name, live.user, "session")
    if action is not None:
        require(found.user.role, action)
    return found


def check_first_user(store: StoreBase, role: str) -> None:
    """The first user of a store is an administrator, who then adds the others.

    In a store without users anyone may add the first user (nobody could authenticate yet);
    were it not an administrator, nobody could add the next. :class:`ParameterError` otherwise.
    """
    if role != "admin" and not has_users(store):
        raise ParameterError(
            f"the first user of a store must be an admin (who then adds the others), not {role}"
        )
