"""Bad input to ``exocheck simulate``, ``analyze`` and ``calibrate``.

A user mistake (a damaged video, a video without particles, an absurd setting, a malformed
settings file, an output path that cannot be used) must end with exit status 2 and exactly one
line on stderr starting with ``error:``, never a traceback, and must leave no output behind: no new
file, no half-written file, and an earlier run's files in the same folder unchanged.
"""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import pytest


def assert_user_error(outcome, message: str) -> str:
    """Exit 2, one ``error:`` line on stderr naming ``message``, no traceback anywhere.

    Off a terminal, long work reports its progress as plain lines on stderr
    (:class:`~exocheck.cli._common.PlainProgress`); those are not part of the error and are set
    aside, each matched exactly.
    """
    from exocheck.cli._common import PlainProgress

    assert "Traceback" not in outcome.stderr + outcome.stdout, outcome.stderr
    assert outcome.code == 2, (outcome.code, outcome.stderr)
    lines = [x for x in outcome.stderr.splitlines() if not PlainProgress.LINE.match(x)]
    # a blank line counts
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert message.lower() in lines[0].lower(), lines[0]
    return lines[0]


def _refused_without_output(exo, command: str, args: list, message: str, tmp_path, old_result,
                            out_name: str | None = None) -> None:  # fmt: skip
    """Run the failing command into a fresh path and into a folder holding an earlier result."""
    fresh = tmp_path / "fresh"
    target = fresh / out_name if out_name else fresh
    assert_user_error(exo(command, *args, "--out", target), message)
    assert not fresh.exists(), sorted(p.name for p in fresh.rglob("*"))
    folder, snapshot = old_result
    before = snapshot()
    target = folder / out_name if out_name else folder
    assert_user_error(exo(command, *args, "--out", target), message)
    assert snapshot() == before  # nothing rewritten, nothing added (no temporary leftovers)


# --------------------------------------------------------------------------------------------
# analyze: bad input

SETTINGS = ["--pixel-size-um", 0.166, "--fps", 30, "--temperature-c", 25]

ANALYZE_FAILURES = {
    "missing-file": (lambda b, v: [b["missing"]], "no such file"),
    "zero-byte-tif": (lambda b, v: [b["empty"]], "empty"),
    "text-renamed-tif": (lambda b, v: [b["text"]], "not a readable tiff"),
    "truncated-tif": (lambda b, v: [b["truncated"]], "truncated"),
    "cut-avi": (lambda b, v: [b["cut_avi"], *SETTINGS], "truncated"),
    "cut-mp4": (lambda b, v: [b["cut_mp4"], *SETTINGS], "cut.mp4"),
    "blank-video": (lambda b, v: [b["blank"], *SETTINGS], "no particles"),
    "noise-video": (lambda b, v: [b["noise"], *SETTINGS], "no particles"),
    "second-video-truncated": (lambda b, v: [v, b["truncated"]], "truncated"),
    "fps-negative": (lambda b, v: [v, "--fps", -30], "fps"),
    "fps-zero": (lambda b, v: [v, "--fps", 0], "fps"),
    "fps-nan": (lambda b, v: [v, "--fps", "nan"], "fps"),
    "pixel-negative": (lambda b, v: [v, "--pixel-size-um", -0.166], "pixel_size_um"),
    "pixel-zero": (lambda b, v: [v, "--pixel-size-um", 0], "pixel_size_um"),
    "pixel-nan": (lambda b, v: [v, "--pixel-size-um", "nan"], "pixel_size_um"),
    "exposure-over-frame-file-fps": (lambda b, v: [v, "--exposure-ms", 50], "exposure"),
    "exposure-over-frame-flag-fps": (
        lambda b, v: [v, "--fps", 30, "--exposure-ms", 50],
        "exposure",
    ),
    "exposure-negative": (lambda b, v: [v, "--exposure-ms", -15], "exposure_ms"),
    "temperature-500": (lambda b, v: [v, "--temperature-c", 500], "temperature"),
    "temperature-nan": (lambda b, v: [v, "--temperature-c", "nan"], "temperature"),
    "viscosity-zero": (lambda b, v: [v, "--viscosity-mpa-s", 0], "viscosity"),
    "refractive-index-zero": (lambda b, v: [v, "--refractive-index", 0], "refractive_index"),
    "threshold-negative": (lambda b, v: [v, "--threshold-sigma", -5], "threshold"),
    "bootstrap-negative": (lambda b, v: [v, "--bootstrap", -1], "--bootstrap"),
    "dilution-below-one": (lambda b, v: [v, "--dilution-factor", 0.5], "dilution"),
    "calibration-missing": (
        lambda b, v: [v, "--calibration", b["missing"].with_suffix(".json")],
        "cannot read calibration",
    ),
    "calibration-not-json": (lambda b, v: [v, "--calibration", b["cal_text"]], "not a json"),
    "calibration-wrong-schema": (
        lambda b, v: [v, "--calibration", b["cal_schema"]],
        "not an exocheck calibration",
    ),
    "calibration-missing-field": (lambda b, v: [v, "--calibration", b["cal_missing"]], "fps"),
    "calibration-text-value": (lambda b, v: [v, "--calibration", b["cal_string"]], "depth_um"),
    "calibration-nan-value": (lambda b, v: [v, "--calibration", b["cal_nan"]], "depth_um"),
}


@pytest.mark.parametrize("case", ANALYZE_FAILURES)
def test_analyze_refuses_bad_input_without_output(case, exo, bad, beads, tmp_path, old_result):
    build, message = ANALYZE_FAILURES[case]
    args = build(bad, beads / "video.tif")
    _refused_without_output(exo, "analyze", args, message, tmp_path, old_result)


def test_video_errors_name_the_file(exo, bad, tmp_path):
    for key in ("missing", "empty", "text", "truncated", "cut_avi", "blank", "noise"):
        outcome = exo("analyze", bad[key], *SETTINGS, "--out", tmp_path / "out")
        assert bad[key].name in assert_user_error(outcome, "")


def test_analyze_out_is_a_file(exo, bad, beads):
    before = bad["a_file"].read_bytes()
    for out in (bad["a_file"], bad["a_file"] / "inside"):
        outcome = exo("analyze", beads / "video.tif", "--out", out)
        assert_user_error(outcome, "not a folder")
    assert bad["a_file"].read_bytes() == before


def test_analyze_write_failure_leaves_nothing(exo, beads, tmp_path, old_result, monkeypatch):
    """The disk fills up while the third output is written: none of the three may appear."""
    real_mkstemp = tempfile.mkstemp
    folder, snapshot = old_result
    fresh = tmp_path / "fresh"
    calls = {"n": 0}

    def mkstemp(*args, **kwargs):
        if Path(kwargs.get("dir", "")) in (folder, fresh):
            calls["n"] += 1
            if calls["n"] % 3 == 0:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    before = snapshot()
    args = ["analyze", beads / "video.tif", "--bootstrap", 0, "--out"]
    assert_user_error(exo(*args, folder), "no space left")
    assert snapshot() == before
    assert_user_error(exo(*args, fresh), "no space left")
    assert not fresh.exists()
    assert calls["n"] == 6


# --------------------------------------------------------------------------------------------
# calibrate: bad input

CALIBRATE_FAILURES = {
    "missing-file": (lambda b, v: [b["missing"], "--known-concentration-per-ml", 5e8], "no such"),
    "zero-byte-tif": (lambda b, v: [b["empty"], "--known-concentration-per-ml", 5e8], "empty"),
    "blank-video": (
        lambda b, v: [b["blank"], "--known-concentration-per-ml", 5e8],
        "no particles",
    ),
    "noise-video": (
        lambda b, v: [b["noise"], "--known-concentration-per-ml", 5e8],
        "no particles",
    ),
    "concentration-negative": (
        lambda b, v: [v, "--known-concentration-per-ml", -5e8],
        "known concentration",
    ),
    "concentration-zero": (
        lambda b, v: [v, "--known-concentration-per-ml", 0],
        "known concentration",
    ),
    "concentration-nan": (
        lambda b, v: [v, "--known-concentration-per-ml", "nan"],
        "known concentration",
    ),
    "bead-diameter-negative": (
        lambda b, v: [v, "--known-concentration-per-ml", 5e8, "--bead-diameter-nm", -100],
        "bead diameter",
    ),
    "bead-diameter-wrong": (
        lambda b, v: [v, "--known-concentration-per-ml", 5e8, "--bead-diameter-nm", 1000],
        "the beads measure about",
    ),
    "fps-negative": (lambda b, v: [v, "--known-concentration-per-ml", 5e8, "--fps", -1], "fps"),
    "temperature-500": (
        lambda b, v: [v, "--known-concentration-per-ml", 5e8, "--temperature-c", 500],
        "temperature",
    ),
}


@pytest.mark.parametrize("case", CALIBRATE_FAILURES)
def test_calibrate_refuses_bad_input_without_output(case, exo, bad, beads, tmp_path, old_result):
    build, message = CALIBRATE_FAILURES[case]
    args = build(bad, beads / "video.tif")
    _refused_without_output(exo, "calibrate", args, message, tmp_path, old_result, "cal.json")


def test_calibrate_out_is_a_folder(exo, beads, old_result):
    folder, snapshot = old_result
    before = snapshot()
    outcome = exo("calibrate", beads / "video.tif", "--known-concentration-per-ml", 5e8,
                  "--out", folder)  # fmt: skip
    assert_user_error(outcome, "is a folder")
    assert snapshot() == before


# --------------------------------------------------------------------------------------------
# simulate: bad input

SIMULATE_FAILURES = {
    "concentration-negative": (lambda b: ["--concentration-per-ml", -3e8], "concentration"),
    "concentration-zero": (lambda b: ["--concentration-per-ml", 0], "concentration"),
    "diameter-negative": (lambda b: ["--diameter-nm", -100], "--diameter-nm"),
    "diameter-zero": (lambda b: ["--diameter-nm", 0], "--diameter-nm"),
    "diameter-nan": (lambda b: ["--diameter-nm", "nan"], "--diameter-nm: input should be a finite"),
    "concentration-inf": (lambda b: ["--concentration-per-ml", "inf"], "finite number"),
    "fps-negative": (lambda b: ["--fps", -30], "fps"),
    "fps-zero": (lambda b: ["--fps", 0], "fps"),
    "fps-nan": (lambda b: ["--fps", "nan"], "fps"),
    "pixel-zero": (lambda b: ["--pixel-size-um", 0], "--pixel-size-um"),
    "temperature-500": (lambda b: ["--temperature-c", 500], "--temperature-c"),
    "exposure-over-frame": (lambda b: ["--fps", 30, "--exposure-ms", 50], "exposure_ms"),
    "one-frame": (lambda b: ["--frames", 1], "frames"),
    "scenario-yaml-syntax": (lambda b: ["--scenario", b["yaml_syntax"]], "line 4"),
    "scenario-bad-value": (
        lambda b: ["--scenario", b["yaml_value"]],
        "populations.0.diameter_nm",
    ),
    "scenario-unknown-key": (lambda b: ["--scenario", b["yaml_unknown"]], "frame_rate"),
    "scenario-not-mapping": (lambda b: ["--scenario", b["yaml_list"]], "mapping"),
    "scenario-missing": (
        lambda b: ["--scenario", b["missing"].with_suffix(".yaml")],
        "cannot read scenario",
    ),
}


@pytest.mark.parametrize("case", SIMULATE_FAILURES)
def test_simulate_refuses_bad_input_without_output(case, exo, bad, tmp_path, old_result):
    build, message = SIMULATE_FAILURES[case]
    _refused_without_output(exo, "simulate", build(bad), message, tmp_path, old_result)


def test_simulate_scenario_error_names_the_file(exo, bad, tmp_path):
    line = assert_user_error(
        exo("simulate", "--scenario", bad["yaml_syntax"], "--out", tmp_path / "s"), "invalid yaml"
    )
    assert bad["yaml_syntax"].name in line


def test_simulate_out_is_a_file(exo, bad):
    before = bad["a_file"].read_bytes()
    assert_user_error(exo("simulate", "--frames", 10, "--out", bad["a_file"]), "not a folder")
    assert bad["a_file"].read_bytes() == before


def test_one_error_line_from_the_installed_command(exo_process, bad, tmp_path):
    """The console script itself (not only the in-process entry point) keeps to one line."""
    outcome = exo_process("analyze", bad["truncated"], "--out", tmp_path / "out")
    assert_user_error(outcome, "truncated")
    assert not (tmp_path / "out").exists()
