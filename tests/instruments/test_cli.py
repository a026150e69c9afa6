"""``exocheck import``: JSON lines, --out, and exit status with bad files among good ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from exocheck.cli.main import app

from .builders import NanoSightOptions, fcs_file, nanosight_summary, zetaview_size

EXOCHECK = Path(sys.executable).parent / "exocheck"


def _inputs(tmp_path):
    ns = tmp_path / "A-ExperimentSummary.csv"
    ns.write_bytes(nanosight_summary(opts=NanoSightOptions(nbins=300)).csv)
    zv = tmp_path / "B_size_488.txt"
    zv.write_bytes(zetaview_size().txt)
    fc = tmp_path / "C.fcs"
    fcs_file(fc)
    bad = tmp_path / "notes.txt"
    bad.write_text("just some notes\n")
    return ns, zv, fc, bad


def test_json_lines_and_contract(tmp_path):
    ns, zv, fc, _ = _inputs(tmp_path)
    result = CliRunner().invoke(app, ["import", str(ns), str(zv), str(fc), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"]["instrument"] for r in records] == [
        "NanoSight NTA",
        "ZetaView",
        "CytoFLEX nano",
    ]
    for r in records:
        assert r["schema"] == "exocheck.nta/1"
        c = r["concentration"]
        if c["dilution_factor"]:
            assert (
                c["particles_per_ml"] == c["measured_per_ml"] * c["dilution_factor"]
                or abs(c["particles_per_ml"] / (c["measured_per_ml"] * c["dilution_factor"]) - 1)
                < 1e-9
            )
        assert {"mean_nm", "mode_nm", "d10_nm", "d50_nm", "d90_nm"} <= set(r["size"])


def test_bad_file_reported_others_imported(tmp_path):
    ns, zv, _, bad = _inputs(tmp_path)
    out = tmp_path / "records"
    result = CliRunner().invoke(app, ["import", str(ns), str(bad), str(zv), "--out", str(out)])
    assert result.exit_code == 2
    assert "notes.txt" in result.stderr and "not a supported instrument export" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["A-ExperimentSummary.json", "B_size_488.json"]
    assert "Imported measurements" in result.stdout


def test_exit_codes_via_console_script(tmp_path):
    ns, _, _, bad = _inputs(tmp_path)
    ok = subprocess.run(
        [str(EXOCHECK), "import", str(ns), "--json"], capture_output=True, text=True
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["sample"] == "EV lot 17 UC pellet"
    missing = tmp_path / "nope.csv"
    res = subprocess.run(
        [str(EXOCHECK), "import", str(bad), str(missing), str(ns), "--json"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "notes.txt" in errors[0] and "nope.csv" in errors[1]
    assert "Traceback" not in res.stderr
    assert len(res.stdout.splitlines()) == 1  # the good file still printed
