"""Command-line contract of ``exocheck simulate``, ``analyze`` and ``calibrate``.

What later checks rely on: the simulated TIFF and its metadata, ``truth.json``, mixture scenarios,
the keys of ``result.json`` with the tracks table and plot beside it, flags overriding file
metadata, the calibration round trip, replicate videos, ``--help`` and ``--version``. Bad input is
tested in ``test_nta_cli_errors.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from rich.console import Console

import exocheck
from exocheck.io.video import open_video

ANALYZE_OUTPUTS = {"result.json", "tracks.parquet", "size_distribution.png"}

# --------------------------------------------------------------------------------------------
# simulate: contract


def assert_only_progress_lines(stderr: str) -> None:
    """Off a terminal, stderr holds nothing but plain progress lines (long work reports them
    every few seconds): no warnings, no blank lines, no control characters of a progress bar."""
    from exocheck.cli._common import PlainProgress

    for line in stderr.splitlines():
        assert PlainProgress.LINE.match(line), repr(line)


def test_simulate_contract(exo_process, tmp_path):
    out = tmp_path / "sim"
    outcome = exo_process(
        "simulate", "--diameter-nm", 100, "--refractive-index", 1.59,
        "--concentration-per-ml", 3e8, "--frames", 40, "--fps", 30, "--pixel-size-um", 0.166,
        "--temperature-c", 25, "--seed", 7, "--out", out,
    )  # fmt: skip
    assert outcome.code == 0, outcome.stderr
    assert_only_progress_lines(outcome.stderr)
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
    assert_only_progress_lines(outcome.stderr)  # no bar remnants or warnings off a terminal
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
    # the pointwise band around the density, and the reported (supported) peaks
    low, high = np.array(size["density_ci_low"]), np.array(size["density_ci_high"])
    assert low.shape == high.shape == density.shape
    assert np.all(low <= density + 1e-12) and np.all(density <= high + 1e-12)
    assert len(size["peaks"]) == 1  # one bead population: one peak
    peak = size["peaks"][0]
    assert edges[0] < peak["diameter_nm"] < edges[-1] and peak["support"] >= 0.8
    assert peak["fraction"] == pytest.approx(1.0)
    assert "peaks" in outcome.stdout
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
    1.0 of an ignored flag. The progress bar on stderr counts the frames. A frame rate against
    the file's own is refused unless --override gives the reason, which the record keeps.
    """
    base = _read_result(analysis[0])
    bar = io.StringIO()
    monkeypatch.setattr(
        "exocheck.cli._common.err_console", Console(file=bar, force_terminal=True, width=120)
    )
    out = tmp_path / "fast"
    refused = exo("analyze", beads / "video.tif", "--fps", 60, "--bootstrap", 0, "--out", out)
    assert refused.code == 2 and "--fps 60 contradicts the file's 30 fps" in refused.stderr
    assert not out.exists()
    reason = "the frame rate in the file header is known to be wrong"
    outcome = exo("analyze", beads / "video.tif", "--fps", 60, "--override", reason,
                  "--bootstrap", 0, "--out", out)  # fmt: skip
    assert outcome.code == 0, outcome.stderr
    fast = _read_result(out)
    assert fast["settings"]["override"]["reason"] == reason
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
