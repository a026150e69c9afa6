"""Certificates of analysis: PDF pages and text, HTML content, the optional expiry section,
and the command line's contract and one-line errors (exit 2, nothing changed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from exocheck.cli.main import run
from exocheck.errors import ParameterError
from exocheck.store import Store

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from qc_factories import SPEC_YAML, fill_lot, lognormal_measurement


@pytest.fixture
def store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'qc.db'}") as s:
        s.add_product("EXO-1", particles_per_unit=2e10, fill_volume_ml=1.0, by="ana")
        (tmp_path / "spec.yaml").write_text(SPEC_YAML)
        s.add_specification(tmp_path / "spec.yaml", product="EXO-1", by="qa")
        raw = tmp_path / "L-OK.json"
        lognormal_measurement(particles_per_ml=2.1e10).save(raw)
        fill_lot(s, "L-OK", particles_per_ml=2.1e10)
        s.add_measurement(
            "L-OK", lognormal_measurement(particles_per_ml=2.1e10), by="ana", original_file=raw
        )
        fill_lot(s, "L-SHORT", particles_per_ml=1.1e10)
        s.approve("L-OK", by="bob")
        yield s


def test_pdf_certificate(store, tmp_path):
    out = tmp_path / "coa.pdf"
    from exocheck.report import write_coa

    write_coa(store, "L-OK", out)
    reader = PdfReader(out)
    assert len(reader.pages) == 2
    text = " ".join(page.extract_text() for page in reader.pages)
    for expected in (
        "Certificate of analysis",
        "L-OK",
        "EXO-1",
        "test-release version 1",
        "CONFORMS",
        "UNSIGNED COPY",  # written without keys: a copy of a released lot's certificate
        "The lot is released",
        "Particles per vial",
        "Released by bob",
        "exocheck 0.",
        store.lot_info("L-OK")["attachments"][0]["sha256"],
    ):
        assert expected in text, expected
    assert "Remaining particles at expiry" not in text


def test_html_certificate_with_expiry_and_short_lot(store, tmp_path):
    from exocheck.report import render_html

    html = render_html(
        store,
        "L-SHORT",
        expiry={"expiry": "2027-06-30", "particles_per_unit": 1.5e10, "lower_95": 1.2e10},
    )
    assert "DOES-NOT-CONFORM" in html and "NOT SIGNED" in html
    assert "Remaining particles at expiry" in html and "1.20e+10" in html
    assert html.count("data:image/svg+xml;base64,") == 3  # size, claim, control chart


def test_bad_suffix_writes_nothing(store, tmp_path):
    from exocheck.report import write_coa

    with pytest.raises(ParameterError, match=r"\.pdf or \.html"):
        write_coa(store, "L-OK", tmp_path / "coa.docx")
    assert not (tmp_path / "coa.docx").exists()


def cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["exocheck", *args])
    code = 0
    try:
        run()
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_contract_and_errors(store, tmp_path, monkeypatch, capsys):
    url = str(store.engine.url)
    monkeypatch.setenv("EXOCHECK_DATABASE_URL", url)
    code, out, _ = cli(monkeypatch, capsys, "release", "L-SHORT", "--json")
    data = json.loads(out)
    assert code == 0 and data["lot"] == "L-SHORT" and data["decision"] == "does-not-conform"
    assert {"name", "result", "value", "limit"} == set(data["criteria"][0])
    code, out, _ = cli(monkeypatch, capsys, "lot", "list", "--json", "--db", url)
    assert [(r["lot"], r["status"], r["decision"]) for r in json.loads(out)] == [
        ("L-OK", "released", "conforms"),
        ("L-SHORT", "in review", "does-not-conform"),
    ]
    events = len(store.history())
    for args, message in [
        (("release", "L-SHORT", "--approve", "--by", "ana"), "four-eyes rule"),
        (("release", "NOPE", "--json"), "unknown lot 'NOPE'"),
        (("spec", "add", str(tmp_path / "missing.yaml"), "--by", "qa"), "cannot read"),
        (("coa", "L-OK", "--out", str(tmp_path / "x.txt")), ".pdf or .html"),
        (
            ("measurement", "protein", "L-OK", "--ug-per-ml", "3", "--by", "ana"),
            "can no longer change",
        ),
    ]:
        code, out, err = cli(monkeypatch, capsys, *args)
        assert code == 2, (args, out, err)
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert len(store.history()) == events
    assert store.evaluate("L-SHORT").decision == "does-not-conform"
    assert store.lot_info("L-SHORT")["approved_by"] is None
    code, out, _ = cli(monkeypatch, capsys, "coa", "L-SHORT", "--out", str(tmp_path / "s.html"))
    assert code == 0 and (tmp_path / "s.html").read_text().startswith("<!DOCTYPE html>")
