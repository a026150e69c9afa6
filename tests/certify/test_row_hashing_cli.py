"""The command line on records changed past exocheck: ``audit verify`` exits 1 with one line
per finding; ``coa``, ``release`` and ``lot show`` refuse the lot in one line (exit 2), never
with a traceback; rows written before row hashing are reported as not sealed (exit 0)."""

from __future__ import annotations

import json

import pytest
from signing_factories import stock
from sqlalchemy import text
from test_signing_cli import cli

from exocheck.store import Store, rowhash


@pytest.fixture
def db(tmp_path) -> str:
    """A SQLite store with two released lots (L-1 with its raw file) and signing keys."""
    path = tmp_path / "qc.db"
    with Store.open(str(path)) as store:
        stock(store, tmp_path, lots=("L-1", "L-2"))
    return str(path)


def _nta(db: str, lot: str) -> int:
    with Store.open(db) as store, store.engine.begin() as conn:
        return conn.execute(
            text(
                "SELECT m.id FROM measurements m JOIN lots l ON l.id = m.lot_id "
                "WHERE l.number = :lot AND m.kind = 'nta' ORDER BY m.id LIMIT 1"
            ),
            {"lot": lot},
        ).scalar()


def _sql(db: str, statement: str, **params) -> None:
    with Store.open(db) as store, store.engine.begin() as conn:
        conn.execute(text(statement), params)


def _keys(monkeypatch, capsys, tmp_path) -> str:
    keys = str(tmp_path / "keys")
    code, _, err = cli(monkeypatch, capsys, "keys", "init", "--org", "Example", "--keys", keys)
    assert code == 0, err
    return keys


def test_an_intact_store_verifies(db, monkeypatch, capsys):
    code, out, err = cli(monkeypatch, capsys, "audit", "verify", "--db", db)
    assert code == 0, err
    assert out.startswith("audit trail intact: ") and "record(s) match their hash" in out
    assert "not sealed" not in out and err == ""


def test_edited_data_is_named_and_not_certified(db, tmp_path, monkeypatch, capsys):
    """Case 5: a signed lot's measurement edited in the database (temperature 37 °C)."""
    keys = _keys(monkeypatch, capsys, tmp_path)
    nta = _nta(db, "L-1")
    with Store.open(db) as store, store.engine.begin() as conn:
        data = json.loads(
            conn.execute(text(f"SELECT data FROM measurements WHERE id = {nta}")).scalar()
        )
        data["temperature_c"] = 37.0
        conn.execute(
            text("UPDATE measurements SET data = :d WHERE id = :i"),
            {"d": json.dumps(data), "i": nta},
        )
    code, out, err = cli(monkeypatch, capsys, "audit", "verify", "--db", db)
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"FAILED: measurement {nta} of lot L-1: ")
    assert "no longer matches the hash recorded at event #" in lines[0]

    pdf = tmp_path / "L-1.pdf"
    common = ("--db", db, "--keys", keys, "--by", "bob", "--no-study")
    code, out, err = cli(monkeypatch, capsys, "coa", "L-1", "--out", str(pdf), *common)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("error: lot L-1: its records fail verification")
    assert f"measurement {nta} of lot L-1" in err
    assert not pdf.exists()
    with Store.open(db) as store, store.engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM certificates")).scalar() == 0
    code, out, err = cli(monkeypatch, capsys, "release", "L-1", "--db", db)
    assert code == 2 and err.count("\n") == 1 and f"measurement {nta} of lot L-1" in err
    # the other lot is untouched and still certified
    code, out, err = cli(
        monkeypatch, capsys, "coa", "L-2", "--out", str(tmp_path / "L-2.pdf"), *common
    )
    assert code == 0, err
    assert "signed certificate COA-" in out


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE measurements SET data = '{\"schema\": ' WHERE id = {nta}",  # not JSON
        'UPDATE measurements SET data = \'{"schema": "exocheck.nta/1"}\' WHERE id = {nta}',
        "UPDATE measurements SET data = '[1, 2]' WHERE id = {nta}",
        "UPDATE releases SET result = '{}' WHERE lot_id = (SELECT lot_id FROM measurements WHERE id = {nta})",
        "UPDATE measurements SET kind = 'magic' WHERE id = {nta}",
    ],
)
def test_an_inconsistent_edit_is_one_line_never_a_traceback(
    db, tmp_path, monkeypatch, capsys, edit
):
    nta = _nta(db, "L-1")
    _sql(db, edit.replace("{nta}", str(nta)))
    for command in (
        ("coa", "L-1", "--out", str(tmp_path / "L-1.html"), "--no-study"),
        ("coa", "L-1", "--out", str(tmp_path / "L-1.pdf"), "--no-study"),
        ("lot", "show", "L-1"),
        ("release", "L-1"),
        ("release", "L-1", "--json"),
    ):
        code, out, err = cli(monkeypatch, capsys, *command, "--db", db)
        assert code == 2, (command, out, err)
        assert err.count("\n") == 1 and err.startswith("error: lot L-1: its records fail"), err
        assert "Traceback" not in out + err
    code, out, err = cli(monkeypatch, capsys, "audit", "verify", "--db", db)
    assert code == 1 and "Traceback" not in err
    assert all(line.startswith("FAILED: ") for line in err.strip().splitlines())
    code, out, err = cli(monkeypatch, capsys, "lot", "show", "L-2", "--db", db)
    assert code == 0, err


def test_rows_written_before_row_hashing_are_reported_as_not_sealed(tmp_path, monkeypatch, capsys):
    db = str(tmp_path / "old.db")
    with monkeypatch.context() as patch:
        patch.setattr(rowhash, "seal_written", lambda session: {})
        with Store.open(db) as store:
            stock(store, tmp_path, lots=("L-OLD",))
    code, out, err = cli(monkeypatch, capsys, "audit", "verify", "--db", db)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("audit trail intact: ") and "0 of " in lines[0]
    assert len(lines) > 1
    assert all(line.startswith("not sealed (written before row hashing): ") for line in lines[1:])
    assert "FAILED" not in out + err and "tamper" not in out
    code, out, err = cli(monkeypatch, capsys, "lot", "show", "L-OLD", "--db", db)
    assert code == 0, err
