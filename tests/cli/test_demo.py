"""`exocheck demo` (what `make demo` runs) does the whole job and keeps its promise: one lot
conforms, the other falls short of its label claim."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXOCHECK = Path(sys.executable).parent / "exocheck"


@pytest.mark.slow  # the whole program end to end (make demo)
def test_demo_runs_the_whole_job(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
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
