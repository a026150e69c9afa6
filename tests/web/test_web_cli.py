"""The command line of users and signatures: passwords never on the command line, the same
signing rules as the web service, users never deleted and names never reused."""

from __future__ import annotations

import io
import json
import sys

import pytest
from qc_factories import fill_lot
from web_helpers import password

from exocheck.cli.main import run
from exocheck.store import Store


def _exocheck(monkeypatch, capsys, *args: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["exocheck", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    try:
        run()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_user_add_reads_the_password_from_stdin_and_never_reuses_a_name(
    db_url, monkeypatch, capsys
):
    code, out, _ = _exocheck(
        monkeypatch,
        capsys,
        "user",
        "add",
        "vera",
        "--role",
        "reviewer",
        "--full-name",
        "Vera Vance",
        "--password-stdin",
        "--db",
        db_url,
        "--user",
        "adam",
        stdin=f"{password('adam')}\nvera-long-password\n",
    )
    assert code == 0 and "vera added" in out
    code, _, err = _exocheck(
        monkeypatch,
        capsys,
        "user",
        "add",
        "vera",
        "--role",
        "qa",
        "--password-stdin",
        "--db",
        db_url,
        "--user",
        "adam",
        stdin=f"{password('adam')}\nanother-password\n",
    )
    assert code == 2 and "never reused" in err and err.count("\n") == 1
    code, _, err = _exocheck(
        monkeypatch,
        capsys,
        "user",
        "add",
        "wes",
        "--role",
        "boss",
        "--password-stdin",
        "--db",
        db_url,
        "--user",
        "adam",
        stdin=f"{password('adam')}\nwes-long-password\n",
    )
    assert code == 2 and "role must be one of" in err
    code, _, err = _exocheck(
        monkeypatch,
        capsys,
        "user",
        "add",
        "wes",
        "--role",
        "qa",
        "--password-stdin",
        "--db",
        db_url,
        "--user",
        "adam",
        stdin=f"{password('adam')}\nshort\n",
    )
    assert code == 2 and "at least 8 characters" in err
    code, _, err = _exocheck(
        monkeypatch,
        capsys,
        "user",
        "add",
        "wes",
        "--role",
        "qa",
        "--password",
        "in-the-clear",
        "--db",
        db_url,
    )
    assert code == 2 and "--password" in err  # there is no such option
    code, _, err = _exocheck(
        monkeypatch, capsys, "user", "add", "wes", "--role", "qa", "--db", db_url, "--user", "adam"
    )
    assert code == 2 and "no terminal to ask for the password: use --password-stdin" in err
    code, _, err = _exocheck(
        monkeypatch, capsys, "user", "disable", "vera", "--db", db_url, "--by", "adam"
    )
    assert code == 2 and "a name alone (--by) is not accepted" in err  # a bare name is no admin
    code, _, _ = _exocheck(
        monkeypatch,
        capsys,
        "user",
        "disable",
        "vera",
        "--db",
        db_url,
        "--user",
        "adam",
        "--password-stdin",
        stdin=password("adam") + "\n",
    )
    assert code == 0
    code, out, _ = _exocheck(monkeypatch, capsys, "user", "list", "--json", "--db", db_url)
    users = {u["user"]: u for u in json.loads(out)}
    assert users["vera"]["state"] == "disabled" and users["vera"]["printed_name"] == "Vera Vance"
    with Store.open(db_url) as store:
        assert "vera-long-password" not in json.dumps(store.history())


def test_cli_signing_follows_the_web_rules(db_url, monkeypatch, capsys):
    with Store.open(db_url) as store:
        fill_lot(store, "L-1", by="rita")  # the reviewer entered the data herself
    sign = ["sign", "L-1", "--reason", "checked", "--password-stdin", "--db", db_url]
    code, _, err = _exocheck(
        monkeypatch,
        capsys,
        *sign,
        "--meaning",
        "reviewed",
        "--user",
        "rita",
        stdin=password("rita") + "\n",
    )
    assert code == 2 and "four-eyes rule: rita entered data" in err
    code, _, err = _exocheck(
        monkeypatch,
        capsys,
        *sign,
        "--meaning",
        "reviewed",
        "--user",
        "quinn",
        stdin=password("quinn") + "\n",
    )
    assert code == 2 and "role qa cannot sign 'reviewed'" in err
    with Store.open(db_url) as store:
        from exocheck.auth import Accounts

        Accounts(store).add_user("rex", role="reviewer", password=password("rex"), by="adam")
    code, _, err = _exocheck(
        monkeypatch,
        capsys,
        *sign,
        "--meaning",
        "reviewed",
        "--user",
        "rex",
        stdin="not-his-password\n",
    )
    assert code == 2 and "wrong user name or password" in err
    code, out, _ = _exocheck(
        monkeypatch,
        capsys,
        *sign,
        "--meaning",
        "reviewed",
        "--user",
        "rex",
        "--json",
        stdin=password("rex") + "\n",
    )
    assert code == 0 and json.loads(out)["meaning"] == "reviewed"
    # a bare name no longer signs a store that has users
    code, _, err = _exocheck(
        monkeypatch, capsys, "release", "L-1", "--approve", "--by", "quinn", "--db", db_url
    )
    assert code == 2 and "exocheck sign L-1 --meaning approved" in err
    code, out, _ = _exocheck(
        monkeypatch,
        capsys,
        *sign,
        "--meaning",
        "approved",
        "--user",
        "quinn",
        stdin=password("quinn") + "\n",
    )
    assert code == 0 and "signed 'approved' by Quinn Example" in out
    with Store.open(db_url) as store:
        actions = [e["action"] for e in store.history("L-1")]
        assert store.lot_info("L-1")["approved_by"] == "quinn"
    assert actions.count("signature.refused") == 2 and "signature.failed" in actions


@pytest.mark.parametrize("role", ["analyst", "admin"])
def test_disabled_or_unsuitable_users_cannot_sign(db_url, monkeypatch, capsys, role):
    with Store.open(db_url) as store:
        fill_lot(store, "L-1", by="ben")
    name = {"analyst": "ana", "admin": "adam"}[role]
    code, _, err = _exocheck(
        monkeypatch,
        capsys,
        "sign",
        "L-1",
        "--meaning",
        "rejected",
        "--reason",
        "no",
        "--user",
        name,
        "--password-stdin",
        "--db",
        db_url,
        stdin=password(name) + "\n",
    )
    assert code == 2 and f"role {role} cannot sign 'rejected'" in err
    code, _, _ = _exocheck(
        monkeypatch,
        capsys,
        "user",
        "disable",
        "rita",
        "--db",
        db_url,
        "--user",
        "adam",
        "--password-stdin",
        stdin=password("adam") + "\n",
    )
    assert code == 0
    code, _, err = _exocheck(
        monkeypatch,
        capsys,
        "sign",
        "L-1",
        "--meaning",
        "reviewed",
        "--reason",
        "ok",
        "--user",
        "rita",
        "--password-stdin",
        "--db",
        db_url,
        stdin=password("rita") + "\n",
    )
    assert code == 2 and "account rita is disabled" in err
