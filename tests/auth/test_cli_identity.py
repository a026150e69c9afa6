"""Identity on the command line: in a store with users every command that writes authenticates
(``--user`` with the password, or an ``exocheck login`` session that ends like the web's) and
its role is checked; ``--by`` names the person only in a store without users."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from identity_helpers import LOT, PRODUCT, SPEC_YAML, exocheck, password
from sqlalchemy import text

from exocheck.store import Store
from exocheck.store.models import utcnow

TIDYNANO = Path(__file__).parents[1] / "data" / "instruments" / "nguyens7__tidyNano"


def _events(url: str) -> list[dict]:
    with Store.open(url) as store:
        return store.history()


def _measurements(url: str) -> list[dict]:
    with Store.open(url) as store:
        return store.lot_info(LOT)["measurements"]


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


WRITES = {
    "product add": ["product", "add", "EXO-2"],
    "spec add": ["spec", "add", "{spec}", "--product", PRODUCT],
    "lot add": ["lot", "add", "W-002", "--product", PRODUCT],
    "measurement add": ["measurement", "add", LOT, "{result}"],
    "measurement protein": ["measurement", "protein", LOT, "--ug-per-ml", "5"],
    "measurement markers": ["measurement", "markers", LOT, "CD9=present"],
    "measurement safety": ["measurement", "safety", LOT, "endotoxin_eu_per_ml=0.05"],
    "study import": ["study", "import", "{csv}", "--name", "S1", "--product", PRODUCT],
    "import --lot": ["import", str(TIDYNANO / "inst/extdata/beads2.csv"), "--lot", LOT],
    "user add": ["user", "add", "vera", "--role", "reviewer", "--password-stdin"],
    "user disable": ["user", "disable", "ben"],
    "user unlock": ["user", "unlock", "ben"],
}


def _args(name: str, tmp_path: Path, result_file: Path) -> list[str]:
    (tmp_path / "spec2.yaml").write_text(SPEC_YAML.replace("version: 1", "version: 2"))
    (tmp_path / "study.csv").write_text("lot,time,response\nW-001,0,1e10\n")
    values = {"spec": tmp_path / "spec2.yaml", "result": result_file, "csv": tmp_path / "study.csv"}
    return [a.format(**{k: str(v) for k, v in values.items()}) for a in WRITES[name]]


@pytest.mark.parametrize("command", sorted(WRITES))
def test_a_bare_name_is_refused_in_a_store_with_users(
    command, db, tmp_path, result_file, monkeypatch, capsys
):
    before = _events(db)
    done = exocheck(
        monkeypatch,
        capsys,
        *_args(command, tmp_path, result_file),
        "--db",
        db,
        "--by",
        "rita",
        stdin="new-user-password\n",
    )
    assert done.code == 2 and _one_line(done.err), done.err
    assert "--by" in done.err and "--user NAME" in done.err and "exocheck login" in done.err
    assert _events(db) == before  # nothing written, not even a refusal to count


@pytest.mark.parametrize("command", sorted(WRITES))
def test_without_a_password_or_session_nothing_is_written(
    command, db, tmp_path, result_file, monkeypatch, capsys
):
    before = _events(db)
    done = exocheck(
        monkeypatch,
        capsys,
        *_args(command, tmp_path, result_file),
        "--db",
        db,
        stdin="new-user-password\n",
    )
    assert done.code == 2 and _one_line(done.err), done.err
    assert "this store has users: say who you are with --user NAME" in done.err
    assert _events(db) == before


def test_batch_with_a_lot_authenticates_before_any_work(db, tmp_path, monkeypatch, capsys):
    out = tmp_path / "batch-out"
    done = exocheck(
        monkeypatch, capsys, "batch", tmp_path / "missing.tif", "--out", out,
        "--lot", LOT, "--db", db, "--by", "rita",
    )  # fmt: skip
    assert done.code == 2 and _one_line(done.err) and "(--by) is not accepted" in done.err
    assert not out.exists()
    done = exocheck(
        monkeypatch, capsys, "batch", tmp_path / "missing.tif", "--out", out,
        "--lot", LOT, "--db", db, "--user", "rita", "--password-stdin",
        stdin=password("rita") + "\n",
    )  # fmt: skip
    assert done.code == 2 and "role reviewer cannot add measurements" in done.err
    assert not out.exists() and _measurements(db) == []


def test_the_password_authenticates_and_the_audit_names_the_user(
    db, result_file, monkeypatch, capsys
):
    done = exocheck(
        monkeypatch, capsys, "measurement", "add", LOT, result_file, "--db", db,
        "--user", "ana", "--password-stdin", stdin=password("ana") + "\n",
    )  # fmt: skip
    assert done.code == 0, done.err
    assert [m["created_by"] for m in _measurements(db)] == ["ana"]
    last = _events(db)[-1]
    assert last["action"].startswith("measurement.add") and last["actor"] == "ana"
    assert password("ana") not in done.out + done.err

    done = exocheck(
        monkeypatch, capsys, "import", TIDYNANO / "inst/extdata/beads2.csv", "--lot", LOT,
        "--db", db, "--user", "ben", "--password-stdin", stdin=password("ben") + "\n",
    )  # fmt: skip
    assert done.code == 0, done.err
    assert [m["created_by"] for m in _measurements(db)] == ["ana", "ben"]


def test_a_wrong_password_is_refused_and_counts_towards_the_lockout(db, monkeypatch, capsys):
    add = ["measurement", "protein", LOT, "--ug-per-ml", "5", "--db", db]
    add += ["--user", "ana", "--password-stdin"]
    for attempt in range(1, 6):
        done = exocheck(monkeypatch, capsys, *add, stdin="not-her-password\n")
        assert done.code == 2 and _one_line(done.err)
        if attempt < 5:
            assert "wrong user name or password" in done.err
        else:
            assert "account ana is now locked after 5 wrong passwords" in done.err
    done = exocheck(monkeypatch, capsys, *add, stdin=password("ana") + "\n")
    assert done.code == 2 and "account ana is locked" in done.err
    actions = [e["action"] for e in _events(db)]
    assert actions.count("login.failed") == 5 and "user.locked" in actions
    assert _measurements(db) == []
    # an admin lifts the lock, authenticated too
    done = exocheck(
        monkeypatch, capsys, "user", "unlock", "ana", "--db", db,
        "--user", "adam", "--password-stdin", stdin=password("adam") + "\n",
    )  # fmt: skip
    assert done.code == 0, done.err
    assert _events(db)[-1]["actor"] == "adam"
    assert exocheck(monkeypatch, capsys, *add, stdin=password("ana") + "\n").code == 0


def _age_sessions(url: str, minutes: float) -> None:
    with Store.open(url) as store, store.engine.begin() as conn:
        conn.execute(
            text("UPDATE auth_sessions SET last_seen_at = :t"),
            {"t": utcnow() - timedelta(minutes=minutes)},
        )


def test_login_opens_a_session_that_ends_when_idle_and_on_logout(
    db, _session_file, monkeypatch, capsys
):
    protein = ["measurement", "protein", LOT, "--ug-per-ml", "5", "--db", db]
    done = exocheck(
        monkeypatch, capsys, "login", "--user", "ana", "--password-stdin", "--db", db,
        stdin=password("ana") + "\n",
    )  # fmt: skip
    assert done.code == 0, done.err
    assert "logged in as ana (analyst)" in done.out and "15 idle minutes" in done.out
    # the token is in a file only its owner can read, and nowhere else
    assert stat.S_IMODE(_session_file.stat().st_mode) == 0o600
    saved = json.loads(_session_file.read_text())["sessions"]
    assert len(saved) == 1
    token = next(iter(saved.values()))
    assert token not in done.out + done.err and password("ana") not in done.out + done.err
    with Store.open(db) as store, store.engine.connect() as conn:
        rows = conn.execute(text("SELECT token_sha256, kind FROM auth_sessions")).all()
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(), "cli")]
    assert token.encode() not in Path(db.removeprefix("sqlite:///")).read_bytes()

    done = exocheck(monkeypatch, capsys, *protein)
    assert done.code == 0, done.err
    assert _events(db)[-1]["actor"] == "ana"
    # the session's role is checked like a password's
    done = exocheck(monkeypatch, capsys, "product", "add", "EXO-9", "--db", db)
    assert done.code == 2 and "role analyst cannot change products" in done.err
    # idle for less than the web's setting: still open; for longer: ended
    monkeypatch.setenv("EXOCHECK_IDLE_TIMEOUT_MIN", "60")
    _age_sessions(db, 30)
    assert exocheck(monkeypatch, capsys, *protein).code == 0
    monkeypatch.delenv("EXOCHECK_IDLE_TIMEOUT_MIN")
    _age_sessions(db, 16)
    before = _events(db)
    done = exocheck(monkeypatch, capsys, *protein)
    assert done.code == 2 and _one_line(done.err) and "your session has ended" in done.err
    assert _events(db) == before
    # a new session, then logout: the store revokes it and the file forgets it
    exocheck(
        monkeypatch, capsys, "login", "--user", "ana", "--password-stdin", "--db", db,
        stdin=password("ana") + "\n",
    )  # fmt: skip
    assert exocheck(monkeypatch, capsys, *protein).code == 0
    done = exocheck(monkeypatch, capsys, "logout", "--db", db)
    assert done.code == 0 and "logged out of" in done.out
    assert json.loads(_session_file.read_text())["sessions"] == {}
    with Store.open(db) as store, store.engine.connect() as conn:
        reasons = conn.execute(text("SELECT revoked_reason FROM auth_sessions")).scalars().all()
    assert sorted(reasons) == ["idle timeout", "logout"]
    done = exocheck(monkeypatch, capsys, *protein)
    assert done.code == 2 and "this store has users: say who you are" in done.err
    assert exocheck(monkeypatch, capsys, "logout", "--db", db).out.startswith("no session")


def test_a_session_file_others_can_read_is_not_used(db, _session_file, monkeypatch, capsys):
    exocheck(
        monkeypatch, capsys, "login", "--user", "ana", "--password-stdin", "--db", db,
        stdin=password("ana") + "\n",
    )  # fmt: skip
    _session_file.chmod(0o644)
    done = exocheck(monkeypatch, capsys, "measurement", "protein", LOT, "--ug-per-ml", "5",
                    "--db", db)  # fmt: skip
    assert done.code == 2 and _one_line(done.err) and "can be read by others" in done.err
    assert _measurements(db) == []


def test_a_disabled_user_s_session_ends(db, monkeypatch, capsys):
    exocheck(
        monkeypatch, capsys, "login", "--user", "ana", "--password-stdin", "--db", db,
        stdin=password("ana") + "\n",
    )  # fmt: skip
    done = exocheck(
        monkeypatch, capsys, "user", "disable", "ana", "--db", db,
        "--user", "adam", "--password-stdin", stdin=password("adam") + "\n",
    )  # fmt: skip
    assert done.code == 0, done.err
    done = exocheck(monkeypatch, capsys, "lot", "add", "W-009", "--product", PRODUCT, "--db", db)
    assert done.code == 2 and "your session has ended" in done.err


@pytest.mark.parametrize(
    ("name", "args", "refusal"),
    [
        ("ana", ["spec", "add", "{spec}", "--product", PRODUCT], "role analyst cannot change"),
        ("quinn", ["lot", "add", "W-002", "--product", PRODUCT], "role qa cannot create lots"),
        ("rita", ["measurement", "protein", LOT, "--ug-per-ml", "5"], "cannot add measurements"),
        ("adam", ["product", "add", "EXO-2"], "role admin cannot change products"),
        ("ana", ["user", "unlock", "ben"], "role analyst cannot manage users"),
    ],
)
def test_each_command_checks_the_role(
    name, args, refusal, db, tmp_path, result_file, monkeypatch, capsys
):
    (tmp_path / "spec2.yaml").write_text("schema: exocheck.spec/1\nname: s2\nversion: 1\n")
    args = [a.format(spec=tmp_path / "spec2.yaml") for a in args]
    before = _events(db)
    done = exocheck(
        monkeypatch, capsys, *args, "--db", db, "--user", name, "--password-stdin",
        stdin=password(name) + "\n",
    )  # fmt: skip
    assert done.code == 2 and _one_line(done.err) and refusal in done.err, done.err
    assert _events(db) == before


def test_qa_edits_the_catalog_and_admins_add_users(db, tmp_path, monkeypatch, capsys):
    spec = tmp_path / "spec2.yaml"
    spec.write_text(SPEC_YAML.replace("name: test-release", "name: second-release"))
    done = exocheck(
        monkeypatch, capsys, "spec", "add", spec, "--product", PRODUCT, "--db", db,
        "--user", "quinn", "--password-stdin", stdin=password("quinn") + "\n",
    )  # fmt: skip
    assert done.code == 0 and "second-release v1 stored" in done.out, done.err
    assert _events(db)[-1]["actor"] == "quinn"
    # user add: the admin's password first, then the new user's
    done = exocheck(
        monkeypatch, capsys, "user", "add", "vera", "--role", "reviewer", "--db", db,
        "--user", "adam", "--password-stdin", stdin=f"{password('adam')}\nvera-long-password\n",
    )  # fmt: skip
    assert done.code == 0 and "user vera added (reviewer)" in done.out, done.err
    last = _events(db)[-1]
    assert (last["action"], last["actor"]) == ("user.add", "adam")
    assert "vera-long-password" not in json.dumps(_events(db))
    done = exocheck(
        monkeypatch, capsys, "login", "--user", "vera", "--password-stdin", "--db", db,
        stdin="vera-long-password\n",
    )  # fmt: skip
    assert done.code == 0 and "logged in as vera (reviewer)" in done.out


def test_the_first_user_of_a_store_is_an_admin_added_without_a_password(
    tmp_path, monkeypatch, capsys
):
    db = f"sqlite:///{tmp_path / 'new.db'}"
    assert exocheck(monkeypatch, capsys, "db", "init", "--db", db).code == 0
    done = exocheck(
        monkeypatch, capsys, "user", "add", "ana", "--role", "analyst", "--db", db,
        "--password-stdin", stdin=password("ana") + "\n",
    )  # fmt: skip
    assert done.code == 2 and "the first user of a store must be an admin" in done.err
    done = exocheck(
        monkeypatch, capsys, "user", "add", "adam", "--role", "admin", "--db", db,
        "--password-stdin", "--by", "it-desk", stdin=password("adam") + "\n",
    )  # fmt: skip
    assert done.code == 0, done.err
    assert _events(db)[-1]["actor"] == "it-desk"
    done = exocheck(
        monkeypatch, capsys, "user", "add", "ana", "--role", "analyst", "--db", db,
        "--password-stdin", "--by", "it-desk", stdin=password("ana") + "\n",
    )  # fmt: skip
    assert done.code == 2 and "(--by) is not accepted" in done.err


def test_a_store_without_users_works_as_before(plain_db, result_file, monkeypatch, capsys):
    done = exocheck(
        monkeypatch, capsys, "measurement", "add", LOT, result_file, "--db", plain_db,
        "--by", "rita",
    )  # fmt: skip
    assert done.code == 0, done.err
    monkeypatch.setenv("EXOCHECK_USER", "erin")
    done = exocheck(
        monkeypatch, capsys, "measurement", "protein", LOT, "--ug-per-ml", "5", "--db", plain_db
    )
    assert done.code == 0, done.err
    events = _events(plain_db)
    assert [e["actor"] for e in events[-2:]] == ["rita", "erin"]
    assert [m["created_by"] for m in _measurements(plain_db)] == ["rita", "erin"]
    # no users: nobody to authenticate, and no password is asked for
    done = exocheck(
        monkeypatch, capsys, "lot", "add", "W-002", "--product", PRODUCT, "--db", plain_db,
        "--user", "ana", "--password-stdin", stdin="whatever-password\n",
    )  # fmt: skip
    assert done.code == 2 and "this store has no users" in done.err
    done = exocheck(
        monkeypatch, capsys, "login", "--user", "ana", "--password-stdin", "--db", plain_db,
        stdin="whatever-password\n",
    )  # fmt: skip
    assert done.code == 2 and "nothing to log in to" in done.err


def test_password_stdin_needs_a_user(db, monkeypatch, capsys):
    done = exocheck(
        monkeypatch, capsys, "measurement", "protein", LOT, "--ug-per-ml", "5", "--db", db,
        "--password-stdin", stdin=password("ana") + "\n",
    )  # fmt: skip
    assert done.code == 2 and "give --user" in done.err
    done = exocheck(
        monkeypatch, capsys, "measurement", "protein", LOT, "--ug-per-ml", "5", "--db", db,
        "--user", "ana",
    )  # fmt: skip
    assert done.code == 2 and "no terminal to ask for the password" in done.err
