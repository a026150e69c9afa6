"""Command-line contract of ``exocheck simulate``, ``analyze`` and ``calibrate``, and bad input.

A user mistake (a damaged video, a video without particles, an absurd setting, a malformed
settings file, an output path that cannot be used) must end with exit status 2 and exactly one
line on stderr starting with ``error:``, never a traceback, and must leave no output behind: no new
file, no half-written file, and an earlier run's files in the same folder unchanged.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from rich.console import Console

import exocheck
from exocheck.io.video import open_video

ANALYZE_OUTPUTS = {"result.json", "tracks.parquet", "size_distribution.png"}


def assert_user_error(outcome, message: str) -> str:
    """Exit 2, one ``error:`` line on stderr naming ``message``, no traceback anywhere."""
    assert "Traceback" not in outcome.stderr + outcome.stdout, outcome.stderr
    assert outcome.code == 2, (outcome.code, outcome.stderr)
    lines = outcome.stderr.splitlines()  # a blank line counts
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
    "fps-negative": (lambda b: ["--fps", -30], "fps"),
    "fps-zero": (lambda b: ["--fps", 0], "fps"),
    "fps-nan": (lambda b: ["--fps", "nan"], "fps"),
    "pixel-zero": (lambda b: ["--pixel-size-um", 0], "pixel_size_um"),
    "temperature-500": (lambda b: ["--temperature-c", 500], "temperature_c"),
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


# --------------------------------------------------------------------------------------------
# simulate: contract


def test_simulate_contract(exo_process, tmp_path):
    out = tmp_path / "sim"
    outcome = exo_process(
        "simulate", "--diameter-nm", 100, "--refractive-index", 1.59,
        "--concentration-per-ml", 3e8, "--frames", 40, "--fps", 30, "--pixel-size-um", 0.166,
        "--temperature-c", 25, "--seed", 7, "--out", out,
    )  # fmt: skip
    assert outcome.code == 0, outcome.stderr
    assert outcome.stderr == ""
    with open_video(out / "video.tif") as video:
        meta = video.meta
        assert (meta.n_frames, meta.height, meta.width) == (40, 480, 640)
        assert meta.dtype == np.uint8
        assert meta.fps == pytest.approx(30.0, rel=1e-9)
        assert meta.pixel_size_um == pytest.approx(0.166, rel=1e-6)
        assert meta.exposure_ms == pytest.approx(15.0)
    with tifffile.TiffFile(out / "video.tif") as tif:
        assert len(tif.pages) == 40  # a multi-page TIFF, one page per frame
    truth = json.loads((out / "truth.json").read_text())
    params = truth["params"]
    assert (params["fps"], params["pixel_size_um"], params["temperature_c"]) == (30, 0.166, 25)
    assert (params["frames"], params["seed"]) == (40, 7)
    (population,) = params["populations"]
    assert population["diameter_nm"] == 100 and population["refractive_index"] == 1.59
    assert truth["nominal_concentration_per_ml"] == 3e8
    # realised concentration: a Poisson draw of ~3e8 × box volume (~70) particles
    n_in_box = truth["populations"][0]["n_in_box"]
    assert truth["concentration_per_ml"] == pytest.approx(n_in_box / truth["box_volume_ml"])
    assert abs(n_in_box - 3e8 * truth["box_volume_ml"]) < 5 * math.sqrt(
        3e8 * truth["box_volume_ml"]
    )
    # every particle ever visible, and only those, with its diameter (monodisperse: 100 nm)
    visible = set(pd.read_parquet(out / "truth_tracks.parquet")["particle"])
    assert {p["id"] for p in truth["particles"]} == visible and visible
    assert all(p["diameter_nm"] == 100.0 and p["frames_visible"] >= 1 for p in truth["particles"])


def test_simulate_mixture_scenario(exo, tmp_path):
    scenario = tmp_path / "mixture.yaml"
    scenario.write_text(
        "frames: 30\nwidth_px: 160\nheight_px: 120\nfps: 30\nseed: 3\n"
        "populations:\n"
        "  - {name: small, diameter_nm: 80, cv: 0.02, concentration_per_ml: 2.0e9}\n"
        "  - {name: large, distribution: lognormal, diameter_nm: 250, gsd: 1.2,\n"
        "     refractive_index: 1.39, concentration_per_ml: 1.0e9}\n"
    )
    out = tmp_path / "sim"
    outcome = exo("simulate", "--scenario", scenario, "--fps", 25, "--exposure-ms", 10,
                  "--out", out)  # fmt: skip
    assert outcome.code == 0, outcome.stderr
    truth = json.loads((out / "truth.json").read_text())
    params = truth["params"]
    # typed flags override the file; settings not typed keep the file's values
    assert (params["fps"], params["exposure_ms"]) == (25, 10)
    assert (params["frames"], params["width_px"], params["height_px"]) == (30, 160, 120)
    assert [p["name"] for p in params["populations"]] == ["small", "large"]
    assert truth["nominal_concentration_per_ml"] == pytest.approx(3e9)
    by_name = {name: [p for p in truth["particles"] if p["population"] == name]
               for name in ("small", "large")}  # fmt: skip
    assert by_name["small"] and by_name["large"]
    small = np.array([p["diameter_nm"] for p in by_name["small"]])
    large = np.array([p["diameter_nm"] for p in by_name["large"]])
    assert np.all(np.abs(small - 80) < 80 * 0.02 * 5)  # within 5 SD of a 2 % CV
    assert np.all(np.abs(np.log(large / 250)) < 5 * np.log(1.2))
    assert {p["refractive_index"] for p in by_name["large"]} == {1.39}
    with open_video(out / "video.tif") as video:
        assert video.meta.fps == pytest.approx(25.0)


# --------------------------------------------------------------------------------------------
# analyze: contract


def _read_result(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


def _params(folder: Path) -> dict:
    """The simulated video's settings, from its ground truth."""
    return json.loads((folder / "truth.json").read_text())["params"]


def test_analyze_contract(analysis, beads):
    out, outcome = analysis
    assert outcome.code == 0, outcome.stderr
    assert outcome.stderr == ""  # no progress remnants or warnings off a terminal
    assert {p.name for p in out.iterdir()} == ANALYZE_OUTPUTS
    result = _read_result(out)
    assert result["schema"] == "exocheck.nta/1"
    size = result["size"]
    for key in ("d10_nm", "d50_nm", "d90_nm", "mode_nm", "mean_nm"):
        assert math.isfinite(size[key]) and size[key] > 0
        low, high = size["ci"][key]["low"], size["ci"][key]["high"]
        assert low <= high
    assert size["d10_nm"] <= size["d50_nm"] <= size["d90_nm"]
    edges, density = np.array(size["bin_edges_nm"]), np.array(size["density"])
    assert density.size == edges.size - 1 and np.all(np.diff(edges) > 0)
    assert density.sum() == pytest.approx(1.0, abs=1e-9) and np.all(density >= 0)
    # a unit or override mistake would be off by a factor: 100 nm beads within ±25 %
    params = _params(beads)
    assert size["d50_nm"] == pytest.approx(params["populations"][0]["diameter_nm"], rel=0.25)
    conc = result["concentration"]
    assert conc["calibrated"] is False and conc["particles_per_ml"] > 0
    assert conc["ci"]["low"] <= conc["particles_per_ml"] <= conc["ci"]["high"]
    assert result["tracks"]["count"] > 0 and result["particles_per_frame"] > 0
    # settings and provenance
    conditions = result["settings"]["conditions"]
    assert (conditions["fps"], conditions["pixel_size_um"], conditions["temperature_c"]) == (
        30, 0.166, 25,
    )  # fmt: skip
    assert conditions["exposure_ms"] == 15
    assert result["settings"]["analysis"]["sizing"]["n_bootstrap"] == 8
    video = beads / "video.tif"
    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    assert result["provenance"]["inputs"] == {"video.tif": sha}
    assert result["source"]["file_sha256"] == sha
    assert result["provenance"]["exocheck_version"] == exocheck.__version__
    # the tracks table and the plot beside it
    tracks = pd.read_parquet(out / "tracks.parquet")
    assert {"video", "frame", "x", "y", "particle"} <= set(tracks.columns)
    assert tracks["frame"].between(0, params["frames"] - 1).all()
    # pixels (drift-corrected positions may lie a little outside the frame)
    for axis, extent in (("x", params["width_px"]), ("y", params["height_px"])):
        assert tracks[axis].between(-0.1 * extent, 1.1 * extent).all()
        assert tracks[axis].max() - tracks[axis].min() > 0.5 * extent
    assert tracks.groupby(["video", "particle"]).ngroups >= result["tracks"]["count"]
    assert (out / "size_distribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in outcome.stdout and "D50" in outcome.stdout


def test_fps_flag_overrides_file(exo, analysis, beads, tmp_path, monkeypatch):
    """At twice the frame rate the same displacements mean faster diffusion, smaller particles.

    Displacements over Δt give D ∝ 1/Δt, so diameters halve; a motion-blur-aware reading,
    MSD = 4 D (Δt − t_e/3) + 4σ² with the file's 15 ms exposure kept, gives
    (16.7 − 5) / (33.3 − 5) = 0.41. Either way the ratio lies in 0.41–0.5 (±10 %), far from the
    1.0 of an ignored flag. The progress bar on stderr counts the frames.
    """
    base = _read_result(analysis[0])
    bar = io.StringIO()
    monkeypatch.setattr(
        "exocheck.cli._common.err_console", Console(file=bar, force_terminal=True, width=120)
    )
    out = tmp_path / "fast"
    outcome = exo("analyze", beads / "video.tif", "--fps", 60, "--bootstrap", 0, "--out", out)
    assert outcome.code == 0, outcome.stderr
    fast = _read_result(out)
    assert fast["settings"]["per_video"][0]["fps"] == 60
    assert fast["settings"]["per_video"][0]["exposure_ms"] == 15  # still from the file
    ratio = fast["size"]["d50_nm"] / base["size"]["d50_nm"]
    assert 0.9 * (1000 / 60 - 5) / (1000 / 30 - 5) < ratio < 1.1 * 0.5
    frames = _params(beads)["frames"]
    assert "Analysing frames" in bar.getvalue() and f"{frames}/{frames}" in bar.getvalue()


def test_calibrate_then_analyze(exo, beads, tmp_path):
    """Calibrated on this very video at 5e8/mL, the analysis must give back 5e8/mL."""
    cal = tmp_path / "cal.json"
    outcome = exo(
        "calibrate", beads / "video.tif", "--known-concentration-per-ml", 5e8,
        "--bead-diameter-nm", 100, "--pixel-size-um", 0.166, "--fps", 30, "--temperature-c", 25,
        "--out", cal,
    )  # fmt: skip
    assert outcome.code == 0, outcome.stderr
    assert {p.name for p in tmp_path.iterdir()} == {"cal.json"}
    saved = json.loads(cal.read_text())
    assert saved["schema"] == "exocheck.calibration/1"
    assert saved["known_concentration_per_ml"] == 5e8 and saved["bead_diameter_nm"] == 100
    assert saved["depth_um"] > 0 and saved["bead_brightness_ratio"] > 1
    assert saved["source_sha256"] == hashlib.sha256((beads / "video.tif").read_bytes()).hexdigest()
    out = tmp_path / "result"
    outcome = exo("analyze", beads / "video.tif", "--calibration", cal, "--bootstrap", 0,
                  "--dilution-factor", 10, "--out", out)  # fmt: skip
    assert outcome.code == 0, outcome.stderr
    result = _read_result(out)
    conc = result["concentration"]
    assert conc["calibrated"] is True
    assert conc["measured_per_ml"] == pytest.approx(5e8, rel=1e-6)
    assert conc["particles_per_ml"] == pytest.approx(5e9, rel=1e-6)  # per undiluted mL
    assert result["settings"]["calibration"]["depth_um"] == pytest.approx(saved["depth_um"])


def test_two_videos(exo, beads, beads_replicate, tmp_path):
    out = tmp_path / "pair"
    videos = [beads / "video.tif", beads_replicate / "video.tif"]  # same name, two folders
    outcome = exo("analyze", *videos, "--bootstrap", 0, "--out", out)
    assert outcome.code == 0, outcome.stderr
    result = _read_result(out)
    per_video = result["per_video"]
    assert len(per_video) == 2
    assert sum(v["tracks"] for v in per_video) == result["tracks"]["count"]
    values = np.array([v["concentration_per_ml"] for v in per_video])
    conc = result["concentration"]
    assert conc["particles_per_ml"] == pytest.approx(values.mean())
    assert conc["sd_per_ml"] == pytest.approx(values.std(ddof=1))
    assert conc["sd_per_ml"] > 0
    hashes = {hashlib.sha256(v.read_bytes()).hexdigest() for v in videos}
    assert set(result["provenance"]["inputs"].values()) == hashes  # both inputs recorded
    assert set(pd.read_parquet(out / "tracks.parquet")["video"]) == {0, 1}


# --------------------------------------------------------------------------------------------
# help and version


@pytest.mark.parametrize("command", [[], ["simulate"], ["analyze"], ["calibrate"]])
def test_help(exo, command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # option names unbroken
    outcome = exo(*command, "--help")
    assert outcome.code == 0
    assert "Usage" in outcome.stdout
    for flag in {"simulate": ["--scenario", "--concentration-per-ml"],
                 "analyze": ["--calibration", "--fps", "--invert", "--viscosity-mpa-s"],
                 "calibrate": ["--known-concentration-per-ml", "--bead-diameter-nm"]}.get(
        command[0] if command else "", ["analyze", "calibrate", "simulate"]
    ):  # fmt: skip
        assert flag in outcome.stdout


def test_version(exo_process):
    outcome = exo_process("--version")
    assert outcome.code == 0
    assert outcome.stdout.strip() == f"exocheck {exocheck.__version__}"
