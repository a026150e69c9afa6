"""Users, passwords (Argon2 through pwdlib) and server-side sessions.

Passwords are never stored or logged: only their Argon2 hash. Five wrong passwords in a row
(at login or at signing) lock the account; the failures and the lock are audit events. A session
is a random token given to the browser (cookie) or a script (``Authorization: Bearer``); the
database keeps only its SHA-256, so a copy of the database opens no session. Sessions end on
logout, on revocation, when the account is disabled or locked, and after an idle period.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from exocheck.auth.models import ROLES, AuthSession, User
from exocheck.errors import AccountLocked, AuthError, ParameterError, StoreError
from exocheck.store.base import StoreBase, aware, check_actor
from exocheck.store.models import utcnow

LOCKOUT_AFTER = 5
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
#: last_seen_at is written at most this often per session (reads stay reads under load)
TOUCH_EVERY_S = 15.0


@lru_cache(maxsize=1)
def _hasher():
    from pwdlib import PasswordHash

    return PasswordHash.recommended()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class UserView:
    """A user as plain data (no hash)."""

    id: int
    name: str
    printed_name: str
    role: str
    disabled: bool
    locked: bool
    failed_logins: int


@dataclass(frozen=True)
class SessionView:
    """A live session and its user."""

    id: int
    user: UserView
    csrf_token: str
    kind: str


def _view(user: User) -> UserView:
    return UserView(
        user.id,
        user.name,
        user.printed_name,
        user.role,
        bool(user.disabled),
        user.locked_at is not None,
        user.failed_logins or 0,
    )


def check_password_text(password: str) -> str:
    """A password acceptable to store: 8 to 1024 characters, not only blanks."""
    if not isinstance(password, str) or not password.strip():
        raise ParameterError("the password is empty")
    if len(password) < MIN_PASSWORD_CHARS:
        raise ParameterError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ParameterError(f"the password is longer than {MAX_PASSWORD_CHARS} characters")
    return password


class Accounts:
    """Users and sessions of a store."""

    def __init__(self, store: StoreBase, *, lockout_after: int = LOCKOUT_AFTER) -> None:
        self.store = store
        self.lockout_after = lockout_after

    # ---- users ------------------------------------------------------------------------------
    def add_user(
        self, name: str, *, role: str, password: str, by: str, printed_name: str | None = None
    ) -> UserView:
        """Create a user. Names are never reused, even of disabled users."""
        by = check_actor(by)
        name = (name or "").strip()
        if not name or len(name) > 200 or any(c.isspace() for c in name):
            raise ParameterError("a user name is 1 to 200 characters without spaces")
        if role not in ROLES:
            raise ParameterError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        printed = " ".join((printed_name or name).split())[:200]
        hashed = _hasher().hash(check_password_text(password))
        with self.store.transaction() as session:
            if session.scalar(select(User).where(User.name == name)) is not None:
                raise StoreError(f"user {name!r} exists (names are never reused)")
            user = User(
                name=name,
                printed_name=printed,
                role=role,
                password_hash=hashed,
                disabled=False,
                failed_logins=0,
                created_by=by,
            )
            session.add(user)
            session.flush()
            self.store.audit(
                session,
                by,
                "user.add",
                "user",
                name,
                after={"user": name, "printed_name": printed, "role": role},
            )
            return _view(user)

    def _user(self, session: Session, name: str) -> User:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise StoreError(f"unknown user {name!r}")
        return user

    def get_user(self, name: str) -> UserView:
        with self.store.read() as session:
            return _view(self._user(session, name))

    def list_users(self) -> list[UserView]:
        with self.store.read() as session:
            return [_view(u) for u in session.scalars(select(User).order_by(User.name))]

    def disable_user(self, name: str, *, by: str) -> UserView:
        """Disable a user for good: no login, every session ended; the record stays."""
        by = check_actor(by)
        with self.store.transaction() as session:
            user = self._user(session, name)
            before = {"disabled": bool(user.disabled)}
            user.disabled = True
            self._revoke_all(session, user.id, "user disabled")
            self.store.audit(
                session, by, "user.disable", "user", name, before=before, after={"disabled": True}
            )
            return _view(user)

    def unlock_user(self, name: str, *, by: str) -> UserView:
        """Lift a lockout (failed passwords) and start the count again."""
        by = check_actor(by)
        with self.store.transaction() as session:
            user = self._user(session, name)
            before = {"locked": user.locked_at is not None, "failed_logins": user.failed_logins}
            user.locked_at, user.failed_logins = None, 0
            self.store.audit(
                session,
                by,
                "user.unlock",
                "user",
                name,
                before=before,
                after={"locked": False, "failed_logins": 0},
            )
            return _view(user)

    # ---- passwords --------------------------------------------------------------------------
    def verify(
        self, name: str, password: str, *, purpose: str = "login", lot_id: int | None = None
    ) -> UserView:
        """The user, when ``password`` is theirs; else :class:`AuthError` (wrong password or
        unknown user, the same message) or :class:`AccountLocked`.

        Every failure is an audit event (``purpose``.failed); the :attr:`lockout_after`-th in a
        row locks the account (``user.locked``). A success resets the count.
        """
        name = (name or "").strip()
        password = password if isinstance(password, str) else ""
        with self.store.read() as session:
            user = session.scalar(select(User).where(User.name == name))
            stored = user.password_hash if user is not None else None
            user_id = user.id if user is not None else None
        if user is not None and (user.disabled or user.locked_at is not None):
            why = "disabled" if user.disabled else "locked after repeated wrong passwords"
            self._record(None, name, f"{purpose}.refused", lot_id, {"reason": why})
            raise AccountLocked(f"account {name} is {why}; ask an administrator")
        valid = False
        if password and len(password) <= MAX_PASSWORD_CHARS:
            valid = _hasher().verify(password, stored or _dummy_hash())
        if user is None or not valid:
            locked = self._record(
                user_id,
                name,
                f"{purpose}.failed",
                lot_id,
                {"reason": "wrong user name or password"},
            )
            if locked:
                raise AccountLocked(
                    f"account {name} is now locked after {self.lockout_after} "
                    "wrong passwords; ask an administrator"
                )
            raise AuthError("wrong user name or password")
        if user.failed_logins:
            with self.store.transaction() as session:
                session.execute(update(User).where(User.id == user_id).values(failed_logins=0))
        return _view(user)

    def _record(
        self, user_id: int | None, name: str, action: str, lot_id: int | None, after: dict
    ) -> bool:
        """Audit a refused password; count it for a known user. True when it locked them."""
        with self.store.transaction() as session:
            locked = False
            if user_id is not None and action.endswith(".failed"):
                user = session.get(User, user_id)
                user.failed_logins = (user.failed_logins or 0) + 1
                after = after | {"failed_in_a_row": user.failed_logins}
                if user.failed_logins >= self.lockout_after and user.locked_at is None:
                    user.locked_at = utcnow()
                    self._revoke_all(session, user.id, "account locked")
                    locked = True
            self.store.audit(
                session, name or "(no name)", action, "user", name or "", lot_id=lot_id, after=after
            )
            if locked:
                self.store.audit(
                    session,
                    name,
                    "user.locked",
                    "user",
                    name,
                    lot_id=lot_id,
                    after={"failed_in_a_row": self.lockout_after},
                )
            return locked

    # ---- sessions ---------------------------------------------------------------------------
    def login(self, name: str, password: str, *, kind: str = "page") -> tuple[str, SessionView]:
        """Check the password and open a session: ``(token, session)``."""
        user = self.verify(name, password, purpose="login")
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        with self.store.transaction() as session:
            row = AuthSession(
                token_sha256=token_sha256(token), user_id=user.id, csrf_token=csrf, kind=kind
            )
            session.add(row)
            session.flush()
            self.store.audit(
                session,
                user.name,
                "login",
                "user",
                user.name,
                after={"session": row.id, "kind": kind},
            )
            return token, SessionView(row.id, user, csrf, kind)

    def session(self, token: str | None, *, idle_timeout_s: float) -> SessionView | None:
        """The live session of ``token``, or None (unknown, revoked, idle too long, user
        disabled or locked). An idle session is revoked as it is found."""
        if not token or len(token) > 200:
            return None
        digest = token_sha256(token)
        now = utcnow()
        with self.store.read() as session:
            row = session.scalar(select(AuthSession).where(AuthSession.token_sha256 == digest))
            if row is None or row.revoked_at is not None:
                return None
            user = row.user
            seen = aware(row.last_seen_at)
            view = SessionView(row.id, _view(user), row.csrf_token, row.kind)
        if user.disabled or user.locked_at is not None:
            return None
        if now - seen > timedelta(seconds=idle_timeout_s):
            self._revoke(digest, "idle timeout")
            return None
        if now - seen > timedelta(seconds=TOUCH_EVERY_S):
            with self.store.transaction() as session:
                session.execute(
                    update(AuthSession).where(AuthSession.id == view.id).values(last_seen_at=now)
                )
        return view

    def logout(self, token: str | None) -> None:
        if token:
            self._revoke(token_sha256(token), "logout")

    def _revoke(self, digest: str, reason: str) -> None:
        with self.store.transaction() as session:
            session.execute(
                update(AuthSession)
                .where(AuthSession.token_sha256 == digest, AuthSession.revoked_at.is_(None))
                .values(revoked_at=utcnow(), revoked_reason=reason)
            )

    @staticmethod
    def _revoke_all(session: Session, user_id: int, reason: str) -> None:
        session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoked_reason=reason)
        )
