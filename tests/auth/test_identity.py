"""The library's one identity rule (:func:`exocheck.auth.identity.identify`), as any shell
calls it, and the client-side session file."""

from __future__ import annotations

import stat

import pytest
from identity_helpers import password

from exocheck.auth import Accounts
from exocheck.auth.identity import Actor, check_first_user, has_users, identify, idle_timeout_s
from exocheck.auth.token_file import forget_token, load_token, save_token, session_file
from exocheck.errors import AccountLocked, AuthError, NotAllowed, ParameterError, StoreError
from exocheck.store import Store


@pytest.fixture
def store(db):
    with Store.open(db) as opened:
        yield opened


@pytest.fixture
def plain(plain_db):
    with Store.open(plain_db) as opened:
        yield opened


def _never() -> str:
    raise AssertionError("asked for a password it does not need")


def test_a_store_without_users_records_the_name_given(plain):
    assert not has_users(plain)
    assert identify(plain, "lot.create", by="rita", password=_never) == Actor("rita", None, "name")
    found = identify(plain, "catalog.edit", default_name=lambda: "erin")
    assert found.name == "erin" and not found.authenticated
    with pytest.raises(StoreError, match="name the user"):
        identify(plain, "lot.create")
    with pytest.raises(AuthError, match="this store has no users"):
        identify(plain, "lot.create", user="ana", password=_never)
    check_first_user(plain, "admin")
    with pytest.raises(ParameterError, match="first user of a store must be an admin"):
        check_first_user(plain, "qa")


def test_a_store_with_users_takes_a_password_or_a_session(store):
    assert has_users(store)
    check_first_user(store, "analyst")  # not the first any more
    with pytest.raises(AuthError, match=r"a name alone \(--by\) is not accepted"):
        identify(store, "lot.create", by="ana", default_name="ana")
    with pytest.raises(AuthError, match="say who you are"):
        identify(store, "lot.create", default_name="ana")  # the login name proves nothing
    found = identify(store, "lot.create", user="ana", password=lambda: password("ana"))
    assert (found.name, found.via, found.user.role) == ("ana", "password", "analyst")
    with pytest.raises(AuthError, match="wrong user name or password"):
        identify(store, "lot.create", user="ana", password="not-her-password")
    with pytest.raises(AuthError, match="wrong user name or password"):
        identify(store, "lot.create", user="nobody", password="any-password")
    assert Accounts(store).get_user("ana").failed_logins == 1
    # the web's API token serves as well as the command line's: one rule for every shell
    token, _ = Accounts(store).login("quinn", password("quinn"), kind="api")
    found = identify(store, "catalog.edit", token=token)
    assert (found.name, found.via) == ("quinn", "session")
    with pytest.raises(NotAllowed, match="role qa cannot create lots"):
        identify(store, "lot.create", token=token)
    assert identify(store, None, token=token).name == "quinn"  # no role asked for
    with pytest.raises(AuthError, match="your session has ended"):
        identify(store, "catalog.edit", token=token, idle_timeout=0.0)
    with pytest.raises(AuthError, match="your session has ended"):
        identify(store, "catalog.edit", token=token)  # revoked when found idle
    with pytest.raises(ParameterError, match="unknown action"):
        identify(store, "lot.destroy", token=token)


def test_locked_and_disabled_accounts(store):
    accounts = Accounts(store, lockout_after=2)
    for _ in range(2):
        with pytest.raises(AuthError):
            identify(store, "lot.create", user="ben", password="wrong-pw", accounts=accounts)
    with pytest.raises(AccountLocked, match="account ben is locked"):
        identify(store, "lot.create", user="ben", password=password("ben"), accounts=accounts)
    token, _ = accounts.login("ana", password("ana"), kind="cli")
    accounts.disable_user("ana", by="adam")
    with pytest.raises(AuthError, match="your session has ended"):
        identify(store, "lot.create", token=token)


def test_idle_timeout_follows_the_web_setting():
    assert idle_timeout_s({}) == 15 * 60.0
    assert idle_timeout_s({"EXOCHECK_IDLE_TIMEOUT_MIN": "2.5"}) == 150.0
    for bad in ("0", "-1", "soon", "inf", "nan"):
        with pytest.raises(ParameterError, match="EXOCHECK_IDLE_TIMEOUT_MIN"):
            idle_timeout_s({"EXOCHECK_IDLE_TIMEOUT_MIN": bad})


def test_the_session_file_is_private_and_keyed_by_database(_session_file):
    assert session_file() == _session_file
    assert load_token("sqlite:///a.db") is None and forget_token("sqlite:///a.db") is None
    save_token("sqlite:///a.db", "token-a")
    save_token("sqlite:///b.db", "token-b")
    assert stat.S_IMODE(_session_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(_session_file.parent.stat().st_mode) == 0o700
    assert (load_token("sqlite:///a.db"), load_token("sqlite:///b.db")) == ("token-a", "token-b")
    assert forget_token("sqlite:///a.db") == "token-a"
    assert load_token("sqlite:///a.db") is None and load_token("sqlite:///b.db") == "token-b"
    assert [p.name for p in _session_file.parent.iterdir()] == ["sessions.json"]
    _session_file.chmod(0o640)
    with pytest.raises(AuthError, match="can be read by others"):
        load_token("sqlite:///b.db")
    _session_file.chmod(0o600)
    _session_file.write_text("{not json")
    assert load_token("sqlite:///b.db") is None
