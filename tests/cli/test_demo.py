"""`exocheck demo` (what `make demo` runs) does the whole job and keeps its promise: one lot
conforms, the other falls short of its label claim, and both certificates cite the method,
instrument, calibration and detection limit their particle measurement rests on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from exocheck.qc.release import fmt

EXOCHECK = Path(sys.executable).parent / "exocheck"


def pdf_text(pdf: Path) -> str:
    """The text of a PDF (``pdftotext``), blanks collapsed."""
    done = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True)
    return " ".join(done.stdout.split())


def squash(text: str) -> str:
    """``text`` without blanks."""
    return "".join(text.split())


def page_fills(pdf: Path, folder: Path) -> list[float]:
    """How far down its text area the ink of each page reaches (0: blank, 1: full), from the
    page rendered at 50 dpi in grey; the 16 mm margins (running header, footer) left out."""
    prefix = folder / pdf.stem
    subprocess.run(
        ["pdftoppm", "-r", "50", "-gray", str(pdf), str(prefix)], check=True, capture_output=True
    )
    fills = []
    pages = sorted(folder.glob(f"{pdf.stem}-*.pgm"), key=lambda p: int(p.stem.split("-")[-1]))
    for path in pages:
        magic, width, height, _depth, pixels = path.read_bytes().split(maxsplit=4)
        assert magic == b"P5"
        image = np.frombuffer(pixels, dtype=np.uint8).reshape(int(height), int(width))
        margin = round(16 / 25.4 * 50)
        body = image[margin : image.shape[0] - margin]
        rows = np.flatnonzero((body < 160).any(axis=1))
        fills.append(0.0 if rows.size == 0 else (rows[-1] + 1) / body.shape[0])
    return fills


@pytest.mark.slow  # the whole program end to end (make demo)
def test_demo_runs_the_whole_job(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if os.environ.get("PYTHONPATH"):  # the checkout under test, where it is not the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    done = subprocess.run(
        [str(EXOCHECK), "demo", "--out", str(out)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    for lot in ("EXO-DEMO-001", "EXO-DEMO-002"):
        pdf = out / f"{lot}-CoA.pdf"
        assert pdf.read_bytes()[:5] == b"%PDF-"
        assert (out / f"{lot}-CoA.html").stat().st_size > 1000
        result = json.loads((out / lot / "result.json").read_text())
        assert result["schema"] == "exocheck.nta/1"
        assert result["concentration"]["calibrated"] is True
    # the certificates are signed, and the command the demo prints verifies one
    command = done.stdout.split("verify one as a recipient would: ")[1].split("\n")[0].split()
    assert command[:2] == [str(EXOCHECK), "verify"]  # the program as it was called
    verified = subprocess.run(command, capture_output=True, text=True, env=env)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("genuine: certificate COA-")
    assert not list((tmp_path / ".local").rglob("keyring.json"))  # no keys in the home folder
    listed = subprocess.run(
        [str(EXOCHECK), "lot", "list", "--json", "--db", str(out / "exocheck-demo.db")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert listed.returncode == 0, listed.stderr
    decisions = {row["lot"]: row["decision"] for row in json.loads(listed.stdout)}
    assert decisions == {"EXO-DEMO-001": "conforms", "EXO-DEMO-002": "does-not-conform"}

    # Each certificate cites the method (name@version), the instrument of the register, the
    # stored bead calibration with its standard, and the detection limit its record states;
    # the protein, marker and safety results are not taken for measurements missing a method.
    for lot in ("EXO-DEMO-001", "EXO-DEMO-002"):
        text = pdf_text(out / f"{lot}-CoA.pdf")
        cells = squash(text)  # table cells wrap and interleave in the text; their words do not
        record = json.loads((out / lot / "result.json").read_text())
        assert record["settings"]["method"]["name"] == "nta-ev-scatter"
        assert "Method nta-ev-scatter@1" in text  # the particle measurement's own table
        certified = fmt(record["settings"]["calibration"]["known_concentration_per_ml"])
        for cited in (
            "nta-ev-scatter@1",
            "EV size and concentration by scatter NTA",
            "NanoSight NS300, s/n NS-DEMO-0042",
            f"standard Polystyrene nanospheres (certified 100 nm, {certified} per mL)",
            "lot PS100-DEMO-2291",
            "stored calibration 1",
        ):
            assert squash(cited) in cells, cited
        made = record["settings"]["calibration"]["made_at"][:10]
        until = record["settings"]["calibration"]["valid_until"][:10]
        assert squash(f"date {made}; due {until}") in cells
        limit = re.search(r"Detection limit (\d+) nm \(particles of refractive index 1.39\)", text)
        assert limit, "no detection limit on the certificate"
        assert int(limit.group(1)) == round(record["diagnostics"]["detection_limit_nm"])
        # the distribution starts below the estimated limit (its margin): the page says where
        start = record["size"]["bin_edges_nm"][0]
        assert start < record["diagnostics"]["detection_limit_nm"]
        assert squash(f"the size distribution is reported from {start:.0f} nm") in squash(text)
        assert "NO METHOD RECORDED" not in text and "cite no method" not in text
        assert squash("BCA (SOP-QC-012)") in cells and squash("Western blot (SOP") in cells
        assert "exocheck's methods, instruments and calibrations cover particle" in text
        # the people by printed name
        assert "Data entered by Olivia Operator (operator)" in text
        assert "Rita Reviewer (reviewer), role reviewer" in text
        signer = "Released by" if lot == "EXO-DEMO-001" else "Rejected by"
        assert f"{signer} Lena Lead (qa-lead)" in text
        # no page nearly empty (before the last: 60 % filled; the last: 20 %)
        fills = page_fills(out / f"{lot}-CoA.pdf", tmp_path)
        assert all(f >= 0.6 for f in fills[:-1]) and fills[-1] >= 0.2, (lot, fills)
    users = (out / "demo-users.txt").read_text()
    assert "operator\tanalyst\tOlivia Operator\t" in users


def test_demo_without_pango_ends_with_html_and_says_what_to_install(
    tmp_path: Path, exo, monkeypatch
) -> None:
    """Where WeasyPrint cannot load pango, the demo still runs to the end (exit 0), writes HTML
    certificates and no PDF, and says in one line what to install."""
    from exocheck.report import coa

    def no_pango() -> str:
        return f"PDF output needs pango, which was not found: {coa.PANGO_INSTRUCTION}"

    monkeypatch.setattr(coa, "pdf_unavailable", no_pango)
    out = tmp_path / "demo"
    outcome = exo("demo", "--out", out, "--frames", 200)
    assert outcome.code == 0, outcome.stderr
    for lot in ("EXO-DEMO-001", "EXO-DEMO-002"):
        assert not (out / f"{lot}-CoA.pdf").exists()
        assert (out / f"{lot}-CoA.html").stat().st_size > 1000
    notes = [line for line in outcome.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1
    assert "sudo apt install libpango-1.0-0 libpangoft2-1.0-0" in notes[0]
    assert "verify one as a recipient would" not in outcome.stdout
