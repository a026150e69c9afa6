"""The command line: ``keys init/export-public``, ``coa`` issuing a signed certificate,
``verify`` (exit 0; exit 1 and one line naming the failure), ``audit verify``, ``recall`` and
``certificate status``."""

from __future__ import annotations

import io
import sys

from signing_factories import stock
from sqlalchemy import text

from exocheck.cli.main import run
from exocheck.store import Store


def cli(monkeypatch, capsys, *args, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["exocheck", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = 0
    try:
        run()
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_issue_verify_recall_and_audit(tmp_path, monkeypatch, capsys):
    db = str(tmp_path / "qc.db")
    keys = str(tmp_path / "keys")
    with Store.open(db) as store:
        stock(store, tmp_path)
    code, out, err = cli(
        monkeypatch,
        capsys,
        "keys",
        "init",
        "--org",
        "Example Biologics",
        "--public-url",
        "https://verify.example.org",
        "--keys",
        keys,
    )
    assert code == 0, err
    assert "PRIVATE" not in out + err
    code, out, err = cli(
        monkeypatch,
        capsys,
        "keys",
        "export-public",
        "--out",
        str(tmp_path / "pub.json"),
        "--keys",
        keys,
    )
    assert code == 0, err
    pdf = tmp_path / "L-OK.pdf"
    code, out, err = cli(
        monkeypatch,
        capsys,
        "coa",
        "L-OK",
        "--out",
        str(pdf),
        "--db",
        db,
        "--keys",
        keys,
        "--by",
        "bob",
        "--no-study",
    )
    assert code == 0, err
    certificate_id = out.split("signed certificate ")[1].split(";")[0]
    assert certificate_id.startswith("COA-")

    code, out, err = cli(
        monkeypatch, capsys, "verify", str(pdf), "--public-key", str(tmp_path / "pub.json")
    )
    assert code == 0, err
    assert out.startswith(f"genuine: certificate {certificate_id} of lot L-OK")
    assert "signed 'approved' by bob" in out

    damaged = tmp_path / "damaged.pdf"
    content = bytearray(pdf.read_bytes())
    content[content.index(b"/Producer") + 3] ^= 1
    damaged.write_bytes(bytes(content))
    code, out, err = cli(
        monkeypatch, capsys, "verify", str(damaged), "--public-key", str(tmp_path / "pub.json")
    )
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "document altered after signing" in err

    code, out, err = cli(monkeypatch, capsys, "verify", str(pdf), "--keys", str(tmp_path / "x"))
    assert code == 1 and "unknown key" in err
    (tmp_path / "notes.txt").write_text("not a certificate")
    code, out, err = cli(monkeypatch, capsys, "verify", str(tmp_path / "notes.txt"), "--keys", keys)
    assert code == 1 and "not a signed certificate" in err

    code, out, err = cli(monkeypatch, capsys, "audit", "verify", "--db", db)
    assert code == 0 and "audit trail intact" in out and "1 certificate anchor" in out

    code, out, err = cli(
        monkeypatch,
        capsys,
        "user",
        "add",
        "adam",
        "--role",
        "admin",
        "--password-stdin",
        "--db",
        db,
        "--by",
        "admin",
        stdin="correct horse 0\n",
    )
    assert code == 0, err  # the first user of a store: an admin, added without a password
    code, out, err = cli(
        monkeypatch,
        capsys,
        "user",
        "add",
        "quinn",
        "--role",
        "qa",
        "--password-stdin",
        "--db",
        db,
        "--user",
        "adam",
        stdin="correct horse 0\ncorrect horse 1\n",
    )
    assert code == 0, err
    code, out, err = cli(
        monkeypatch,
        capsys,
        "recall",
        "L-OK",
        "--user",
        "quinn",
        "--reason",
        "contamination found",
        "--password-stdin",
        "--db",
        db,
        stdin="correct horse 1\n",
    )
    assert code == 0, err
    code, out, err = cli(monkeypatch, capsys, "certificate", "status", certificate_id, "--db", db)
    assert code == 0 and "recalled" in out and "contamination found" in out

    with Store.open(db) as store, store.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        conn.execute(text("DELETE FROM audit_events WHERE id = 4"))
    code, out, err = cli(monkeypatch, capsys, "audit", "verify", "--db", db)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "audit trail broken at event #5" in err
