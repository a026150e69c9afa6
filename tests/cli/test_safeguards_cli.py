"""Wrong answers with a clean exit, refused at the command line (issue cases 2, 3, 4, 5, 8, 9, 10):
a calibration from other optics, a forgotten --invert, absurd dilutions and concentrations, the
same video twice, a mistyped --db; terminal output for 80 columns; store start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from exocheck.errors import AnalysisError

BULK_WATER = Path(__file__).parents[1] / "data" / "bulk-water.mov"
BULK = ("--pixel-size-um", 100.0 / 285.0, "--fps", 24, "--temperature-c", 22, "--bootstrap", 0)
BEADS = ("--pixel-size-um", 0.166, "--fps", 30, "--temperature-c", 25, "--bootstrap", 0)


def _one_line_error(outcome, *words: str) -> None:
    from exocheck.cli._common import PlainProgress

    assert outcome.code == 2, (outcome.stdout, outcome.stderr)
    lines = [x for x in outcome.stderr.splitlines() if not PlainProgress.LINE.match(x)]
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.stderr
    for word in words:
        assert word in outcome.stderr, outcome.stderr


def test_polarity_is_read_from_the_frames():
    """Case 3: the real bright-field recording has dark particles, the simulated scattering
    video bright ones."""
    from exocheck.io.video import open_video
    from exocheck.nta.checks import polarity

    with open_video(BULK_WATER) as video:
        assert polarity(video.read(0, 64)) == "dark"
    flat = np.full((20, 64, 64), 100, np.uint16)
    assert polarity(flat) is None  # nothing moves: no verdict, no refusal


def test_bright_field_video_without_invert_is_refused(exo, beads, tmp_path):
    """Case 3: a forgotten --invert gave D50 = 23.8 µm at the grid edge with exit 0; now one line
    naming the option, exit 2, nothing written. The reverse mistake is refused too."""
    out = tmp_path / "bf"
    _one_line_error(exo("analyze", BULK_WATER, *BULK, "--out", out), "bright-field", "--invert")
    assert not out.exists()
    _one_line_error(
        exo("analyze", beads / "video.tif", *BEADS, "--invert", "--out", out), "without --invert"
    )
    assert not out.exists()


def test_absurd_dilution_is_refused(exo, beads, tmp_path):
    """Case 4: --dilution-factor 1e300 printed inf with exit 0; 1e12 gave 8e20 particles/mL."""
    for factor in ("1e300", "1e12", "0.5", "nan"):
        out = tmp_path / f"d{factor}"
        _one_line_error(
            exo("analyze", beads / "video.tif", *BEADS, "--dilution-factor", factor, "--out", out),
            "dilution factor",
        )
        assert not out.exists()


def test_concentration_and_sizes_beyond_physics_are_refused():
    """Case 4: more particles than fit in a millilitre, sizes at the edge of the grid."""
    from exocheck.nta.checks import check_result

    edges = np.geomspace(20.0, 2000.0, 200)
    check_result(5e9, 110.0, 100.0, edges)  # an ordinary EV sample passes
    with pytest.raises(AnalysisError, match="times the volume"):
        check_result(8e20, 110.0, 100.0, edges)
    with pytest.raises(AnalysisError, match="not a finite number"):
        check_result(float("inf"), 110.0, 100.0, edges)
    with pytest.raises(AnalysisError, match=r"edge of the measurable sizes.*--invert"):
        check_result(1e5, 23_800.0, 50_000.0, np.geomspace(100.0, 50_000.0, 300))


def test_same_video_twice_is_not_two_replicates(exo, beads, tmp_path):
    """Case 5: the same video given twice doubled the tracks and narrowed the interval; now it is
    refused, or accepted with a reason that the record keeps."""
    video = beads / "video.tif"
    copy = tmp_path / "copy.tif"
    copy.write_bytes(video.read_bytes())  # another name, the same content
    out = tmp_path / "twice"
    _one_line_error(exo("analyze", video, copy, *BEADS, "--out", out), "same data", "allow-reuse")
    assert not out.exists()
    outcome = exo("analyze", video, copy, *BEADS, "--allow-reuse", "software check", "--out", out)
    assert outcome.code == 0, outcome.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["settings"]["allow_reuse"] == "software check"
    assert any("same data used twice" in w for w in result["warnings"])


def test_calibration_from_other_optics_is_refused(exo, beads, tmp_path):
    """Case 2: a calibration made at 0.166 µm/px and 30 fps was applied to other optics with
    ``calibrated: true``; now refused, or used under a recorded reason and marked."""
    cal = tmp_path / "cal.json"
    assert (
        exo(
            "calibrate",
            beads / "video.tif",
            "--known-concentration-per-ml",
            5e8,
            "--pixel-size-um",
            0.166,
            "--fps",
            30,
            "--exposure-ms",
            15,
            "--wavelength-nm",
            488,
            "--out",
            cal,
        ).code
        == 0
    )
    saved = json.loads(cal.read_text())
    assert saved["exposure_ms"] == 15 and saved["wavelength_nm"] == 488
    out = tmp_path / "other"
    # optics given against the video's own metadata are refused first, unless a reason is given
    against_file = ("--pixel-size-um", 0.35, "--fps", 24, "--temperature-c", 25, "--bootstrap", 0)
    _one_line_error(
        exo("analyze", beads / "video.tif", *against_file, "--calibration", cal, "--out", out),
        "--fps 24 contradicts the file's 30 fps",
        "--override REASON",
    )
    other = (*against_file, "--override", "bench test: optics other than the file's")
    _one_line_error(
        exo("analyze", beads / "video.tif", *other, "--calibration", cal, "--out", out),
        "other optics",
        "pixel size 0.35 µm/px",
        "frame rate 24",
    )
    assert not out.exists()
    _one_line_error(
        exo(
            "analyze",
            beads / "video.tif",
            *BEADS,
            "--wavelength-nm",
            405,
            "--calibration",
            cal,
            "--out",
            out,
        ),
        "wavelength 405 nm",
    )
    outcome = exo(
        "analyze",
        beads / "video.tif",
        *other,
        "--calibration",
        cal,
        "--calibration-override",
        "bench test of the optics check",
        "--out",
        out,
    )
    assert outcome.code == 0, outcome.stderr
    result = json.loads((out / "result.json").read_text())
    assert "pixel size 0.35 µm/px" in result["concentration"]["calibration_mismatch"]
    assert result["settings"]["calibration_override"] == "bench test of the optics check"
    assert result["settings"]["override"]["reason"] == "bench test: optics other than the file's"


def test_mistyped_database_is_refused_and_writes_name_the_database(exo, tmp_path, monkeypatch):
    """Case 8: a typo in --db created a new empty database and then reported 'unknown lot'."""
    monkeypatch.delenv("EXOCHECK_DATABASE_URL", raising=False)
    typo = tmp_path / "qc-typo.db"
    for args in (
        ("lot", "list", "--db", typo),
        ("history", "L1", "--db", f"sqlite:///{typo}"),
        ("product", "add", "P", "--db", typo, "--by", "ana"),
    ):
        _one_line_error(exo(*args), "no database at", "exocheck db init")
        assert not typo.exists()
    db = tmp_path / "qc.db"
    init = exo("db", "init", "--db", db)
    assert init.code == 0 and db.exists() and f"created: sqlite:///{db}" in init.stdout
    added = exo("product", "add", "P", "--db", db, "--by", "ana")
    assert added.code == 0 and added.stderr.strip() == f"database: sqlite:///{db}"
    listed = exo("lot", "list", "--db", db)
    assert listed.code == 0 and "database:" not in listed.stderr  # reading says nothing
    created = exo("product", "add", "Q", "--db", tmp_path / "new.db", "--create", "--by", "ana")
    assert created.code == 0 and (tmp_path / "new.db").exists()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    _one_line_error(exo("lot", "list", "--db", empty), "holds no exocheck store")


def test_release_table_fits_80_columns_with_whole_numbers(exo, tmp_path):
    """Case 9: at 80 columns numbers were split across lines; fractions beside percentages."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
    from qc_factories import SPEC_YAML, fill_lot

    from exocheck.store import Store

    db = tmp_path / "qc.db"
    with Store.open(db) as store:
        store.add_product("EXO-1", particles_per_unit=2e10, fill_volume_ml=1.0, by="ana")
        store.add_specification("spec.yaml", text=SPEC_YAML, product="EXO-1", by="qa")
        fill_lot(store, "L1", particles_per_ml=2.2e10)
    outcome = exo("release", "L1", "--db", db)
    assert outcome.code == 0, outcome.stderr
    lines = outcome.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "(2.02e+10–2.38e+10)" in outcome.stdout  # the interval whole, on one line
    fraction = next(line for line in lines if line.startswith("Particles 50-400"))
    assert "%" in fraction.split("≥")[0] and "fraction" not in outcome.stdout


def test_numbers_carry_units_and_sensible_figures():
    """Case 9: "1.06e+03 (818–1.09e+03) nm", "14.4762 month", "remaining 93.54"."""
    from exocheck.cli.stability import _fmt
    from exocheck.qc.release import CriterionResult, fmt

    assert [fmt(1060.0), fmt(818.4), fmt(0.00123), fmt(2.5e10)] == [
        "1060",
        "818",
        "0.00123",
        "2.50e+10",
    ]
    shown = CriterionResult(
        name="D90",
        kind="range",
        result="pass",
        value=1060.0,
        limit="",
        unit="nm",
        interval=(818.0, 1090.0),
    ).display_value
    assert shown == "1060 (818–1090) nm"
    assert _fmt(14.4762, " month") == "14.5 months" and _fmt(None, " month") == "not reached"


def test_accelerated_study_states_time_units(exo, tmp_path):
    """Case 9: the time to 80 % remaining had no unit."""
    rows = ["hour,temperature_c,count"]
    for temp, k in ((25, 0.001), (37, 0.004), (50, 0.02)):
        rows += [f"{t},{temp},{1e10 * np.exp(-k * t):.6g}" for t in (0, 24, 48, 96)]
    path = tmp_path / "acc.csv"
    path.write_text("\n".join(rows) + "\n")
    outcome = exo("accelerated", path, "--time-col", "hour", "--count-col", "count")
    assert outcome.code == 0, outcome.stderr
    assert "k (per hour)" in outcome.stdout and " hours (lower bound " in outcome.stdout


def test_progress_off_a_terminal_is_a_plain_line(capsys):
    """Case 9: piped output was silent for 8–30 s; now a plain line every few seconds."""
    from exocheck.cli._common import PlainProgress

    bar = PlainProgress("Analysing frames", 300)
    bar.EVERY_S = 0.0
    bar.advance(bar.task_ids[0], 150)
    bar.advance(bar.task_ids[0], 150)
    bar.finish()
    err = capsys.readouterr().err.splitlines()
    assert all(PlainProgress.LINE.match(line) for line in err)
    assert err[0].startswith("Analysing frames: 150/300 frames (50 %), ")
    assert err[-1].startswith("Analysing frames: 300/300 frames (100 %)") and len(err) == 2
    assert not any("\x1b" in line or "\r" in line for line in err)


def test_store_commands_do_not_load_the_heavy_science(tmp_path):
    """Case 10: every store command took 2.4–3.3 s because the store imported statsmodels,
    scipy and pandas. (The time itself is measured by ``make bench``.)"""
    code = (
        "import sys\n"
        "from exocheck.cli.main import run\n"
        f"sys.argv = ['exocheck', 'history', '--db', {str(tmp_path / 'qc.db')!r}]\n"
        "from exocheck.store import Store\n"
        f"Store.open({str(tmp_path / 'qc.db')!r}).close()\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pandas', 'scipy', 'statsmodels', 'matplotlib') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
