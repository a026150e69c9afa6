"""``exocheck labelled-fraction`` and ``analyze --mode fluorescence`` from the command line.

Bad input (channels recorded with different settings and no calibration, a control recorded
unlike the sample, one file in two roles, an unknown mode) ends with exit status 2, one ``error:``
line and nothing written; a good run writes the record and the plot. A capture with no track at
all (a clean control, a sample nothing labels) is a result, never a stop.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exocheck.records import Measurement
from exocheck.simulate import Population, make_params, simulate


def assert_user_error(outcome, message: str) -> None:
    """Exit 2 and one ``error:`` line naming ``message`` (progress lines set aside)."""
    from exocheck.cli._common import PlainProgress

    assert "Traceback" not in outcome.stderr + outcome.stdout, outcome.stderr
    assert outcome.code == 2, (outcome.code, outcome.stderr)
    lines = [x for x in outcome.stderr.splitlines() if not PlainProgress.LINE.match(x)]
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith("error: ") and message.lower() in lines[0].lower(), lines[0]


SMALL = {"frames": 150, "width_px": 320, "height_px": 240, "photons_per_nm2": 200.0}


def _sample(fraction: float = 0.4, **kw) -> list[Population]:
    return [
        Population(
            name="EV", distribution="lognormal", diameter_nm=150, gsd=1.3,
            refractive_index=1.39, concentration_per_ml=1.5e9, labelled_fraction=fraction, **kw,
        )
    ]  # fmt: skip


@pytest.fixture(scope="module")
def channels(tmp_path_factory) -> dict[str, Path]:
    """Scatter and fluorescence captures of one stained sample; a fluorescence capture at
    another frame rate; an unstained sample's fluorescence capture (nothing fluoresces)."""
    root = tmp_path_factory.mktemp("channels")
    p = make_params(
        populations=_sample(), seed=5, fluorescence={"background_photons": 3.0}, **SMALL
    )
    files = {}
    for name, params in [
        ("scatter", p.for_mode("scatter")),
        ("fluorescence", p.for_mode("fluorescence")),
        ("fluorescence_15fps", p.model_copy(update={"fps": 15.0}).for_mode("fluorescence")),
        ("unstained", p.model_copy(update={"populations": _sample(0.0)}).for_mode("fluorescence")),
        (
            "unstained_replicate",
            p.model_copy(update={"populations": _sample(0.0), "seed": 6}).for_mode("fluorescence"),
        ),
    ]:
        simulate(params, root / name)
        files[name] = root / name / "video.tif"
    return files


def _run(exo, channels, out: Path, *extra):
    return exo(
        "labelled-fraction", "--scatter", channels["scatter"], "--fluorescence",
        channels["fluorescence"], "--refractive-index", 1.39, "--out", out, *extra,
    )  # fmt: skip


def test_labelled_fraction_writes_record_and_plot(exo, channels, tmp_path):
    out = tmp_path / "lf"
    outcome = _run(exo, channels, out, "--marker", "CD63", "--control-unstained",
                   channels["unstained"])  # fmt: skip
    assert outcome.code == 0, outcome.stderr
    assert sorted(p.name for p in out.iterdir()) == ["labelled_fraction.png", "result.json"]
    assert (out / "labelled_fraction.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = Measurement.load(out / "result.json")
    lab = record.labelled
    assert lab is not None and lab.marker == "CD63"
    assert 0.0 < lab.ci.low <= lab.fraction <= lab.ci.high < 1.0
    assert lab.classes and all(c.low_nm < c.high_nm for c in lab.classes)
    # the unstained sample shows nothing in fluorescence: subtracted, and it takes nothing away
    assert lab.subtracted_per_ml == {"unstained": 0.0}
    assert record.channel is not None and record.channel.mode == "fluorescence"
    # every input by role and name, the clean control too, with its SHA-256
    assert sorted(record.provenance.inputs) == [
        "fluorescence/video.tif", "scatter/video.tif", "unstained/video.tif",
    ]  # fmt: skip
    assert all(len(sha) == 64 for sha in record.provenance.inputs.values())
    assert "CD63" in outcome.stdout and "all " in outcome.stdout
    assert json.loads((out / "result.json").read_text())["schema"] == "exocheck.nta/1"
    # no bleaching measured: no fresh supply fitted
    assert record.diagnostics["fresh_supply_per_s"] == {"fluorescence": None}


def test_fresh_supply_is_reported_with_its_range(exo, channels, tmp_path):
    """A half-life given for a capture: the fresh supply, fitted so that the corrected count
    stays level over the capture, is in the record with its 95 % bootstrap range on the grid
    of rates (0-10/s). On this short capture (150 frames, 5 s) the range spans
    most of the grid: the count's fall over time is not pinned down."""
    out = tmp_path / "lf"
    outcome = _run(exo, channels, out, "--bleach-half-life-s", 2.0)
    assert outcome.code == 0, outcome.stderr
    record = json.loads((out / "result.json").read_text())
    supply = record["diagnostics"]["fresh_supply_per_s"]
    assert set(supply) == {"fluorescence"}, supply
    fitted = supply["fluorescence"]
    assert 0.0 <= fitted["ci_low"] <= fitted["value"] <= fitted["ci_high"] <= 10.0, fitted
    assert fitted["ci_high"] > fitted["ci_low"], fitted


def test_few_fluorescent_tracks_and_missing_controls_are_warned(exo, channels, tmp_path):
    outcome = _run(exo, channels, tmp_path / "lf")
    assert outcome.code == 0, outcome.stderr
    record = Measurement.load(tmp_path / "lf" / "result.json")
    text = " ".join(record.warnings)
    assert "fluorescent tracks (fewer than 100)" in text
    assert "no unstained control" in text and "no label-only or detergent control" in text


LABELLED_FAILURES = {
    "settings-differ": (
        lambda c: ["--scatter", c["scatter"], "--fluorescence", c["fluorescence_15fps"]],
        "different settings",
    ),
    "control-recorded-otherwise": (
        lambda c: [
            "--scatter",
            c["scatter"],
            "--fluorescence",
            c["fluorescence"],
            "--control-label-only",
            c["fluorescence_15fps"],
        ],
        "--control-label-only",
    ),
    "one-file-two-roles": (
        lambda c: ["--scatter", c["scatter"], "--fluorescence", c["scatter"]],
        "given both as",
    ),
    "one-calibration-only": (
        lambda c: [
            "--scatter",
            c["scatter"],
            "--fluorescence",
            c["fluorescence"],
            "--calibration-scatter",
            c["scatter"],
        ],
        "calibration",
    ),
    "bad-size-range": (
        lambda c: [
            "--scatter",
            c["scatter"],
            "--fluorescence",
            c["fluorescence"],
            "--size-range-nm",
            200,
            100,
        ],
        "--size-range-nm",
    ),
    "missing-video": (
        lambda c: ["--scatter", c["scatter"], "--fluorescence", c["scatter"].with_name("no.tif")],
        "no such file",
    ),
}


@pytest.mark.parametrize("case", LABELLED_FAILURES)
def test_labelled_fraction_refuses_bad_input(case, exo, channels, tmp_path):
    build, message = LABELLED_FAILURES[case]
    out = tmp_path / "out"
    assert_user_error(exo("labelled-fraction", *build(channels), "--out", out), message)
    assert not out.exists()


def test_analyze_fluorescence_mode_records_its_channel(exo, channels, tmp_path):
    out = tmp_path / "fl"
    outcome = exo("analyze", channels["fluorescence"], "--mode", "fluorescence", "--out", out)
    assert outcome.code == 0, outcome.stderr
    record = Measurement.load(out / "result.json")
    assert record.channel.mode == "fluorescence"
    assert "saturated_track_fraction" in record.diagnostics
    assert "bleach_half_life_s" in record.diagnostics
    bad = exo("analyze", channels["fluorescence"], "--mode", "fluo", "--out", tmp_path / "x")
    assert_user_error(bad, "--mode")


def test_no_fluorescent_track_gives_zero_with_an_upper_bound(exo, channels, tmp_path):
    """A fluorescence capture in which nothing fluoresces: the labelled fraction is 0, its
    interval runs from 0 to a Poisson bound above 0, and a warning says nothing was sized."""
    out = tmp_path / "lf"
    outcome = exo("labelled-fraction", "--scatter", channels["scatter"], "--fluorescence",
                  channels["unstained"], "--control-unstained", channels["unstained_replicate"],
                  "--out", out)  # fmt: skip
    assert outcome.code == 0, outcome.stderr
    record = Measurement.load(out / "result.json")
    lab = record.labelled
    assert lab.fraction == 0.0 and lab.ci.low == 0.0
    # at most 3.7 tracks' worth of labelled particles over some 10^9/mL in the range
    assert 0.0 < lab.ci.high < 0.05, lab.ci
    assert record.diagnostics["too_few_tracks_to_size"] == {"fluorescence": 0, "unstained": 0}
    assert any("only 0 fluorescent tracks" in w for w in record.warnings), record.warnings
    assert sorted(record.provenance.inputs) == [
        "fluorescence/video.tif", "scatter/video.tif", "unstained/video.tif",
    ]  # fmt: skip


def test_analyze_fluorescence_of_a_clean_control_is_a_result(exo, channels, tmp_path):
    """``analyze --mode fluorescence`` of an unstained sample (no track at all): a record with no
    particle counted, a Poisson upper bound above 0, an empty size distribution and a warning."""
    out = tmp_path / "clean"
    outcome = exo("analyze", channels["unstained"], "--mode", "fluorescence", "--out", out)
    assert outcome.code == 0, outcome.stderr
    record = Measurement.load(out / "result.json")
    assert record.tracks.count == 0
    assert record.concentration.particles_per_ml == 0.0
    assert record.concentration.ci.low == 0.0 < record.concentration.ci.high
    assert record.size.density == [] and record.size.d50_nm is None
    assert record.channel.mode == "fluorescence"
    assert any("only 0 tracks" in w and "nothing is sized" in w for w in record.warnings)
    assert sorted(p.name for p in out.iterdir()) == [
        "result.json", "size_distribution.png", "tracks.parquet",
    ]  # fmt: skip


def test_fluorescent_beads_calibrate_the_fluorescence_channel(exo, tmp_path):
    """``calibrate --mode fluorescence`` on fluorescent beads of known concentration measures the
    channel's detection depth: another capture of the same beads (another seed, so other beads
    in the box), analysed with it, gives its concentration. At 2·10⁹/mL about 40 beads are in
    the field per frame; each capture's count then scatters by about 10 % (the beads' share of
    the capture in the slab), so 25 % is over two standard deviations of the difference."""
    from exocheck.simulate import fluorescent_beads

    p = make_params(
        populations=[fluorescent_beads(2e9)], frames=300, width_px=320, height_px=240,
        fluorescence={"background_photons": 3.0},
    )  # fmt: skip
    truths = [
        simulate(p.model_copy(update={"seed": seed}).for_mode("fluorescence"), tmp_path / str(seed))
        for seed in (1, 2)
    ]
    cal = tmp_path / "cal.json"
    known = truths[0]["concentration_per_ml"]  # the standard's stated concentration
    ok = exo("calibrate", tmp_path / "1" / "video.tif", "--known-concentration-per-ml", known,
             "--mode", "fluorescence", "--bead-diameter-nm", 100, "--out", cal)  # fmt: skip
    assert ok.code == 0, ok.stderr
    out = tmp_path / "beads"
    run = exo("analyze", tmp_path / "2" / "video.tif", "--mode", "fluorescence",
              "--calibration", cal, "--out", out)  # fmt: skip
    assert run.code == 0, run.stderr
    measured = Measurement.load(out / "result.json").concentration
    assert measured.calibrated
    truth = truths[1]["concentration_per_ml"]
    assert measured.particles_per_ml == pytest.approx(truth, rel=0.25), (measured, truth)
    bad = exo("calibrate", tmp_path / "1" / "video.tif", "--known-concentration-per-ml", known,
              "--mode", "fluo", "--out", tmp_path / "x.json")  # fmt: skip
    assert_user_error(bad, "--mode")
    assert not (tmp_path / "x.json").exists()


def _calibration(path: Path, video: Path, depth_um: float) -> Path:
    from exocheck.io.video import open_video
    from exocheck.nta.concentration import Calibration

    with open_video(video) as v:
        meta = v.meta
    Calibration(
        depth_um=depth_um, bead_brightness_ratio=20.0, bead_diameter_nm=100.0,
        known_concentration_per_ml=1e9, pixel_size_um=meta.pixel_size_um, fps=meta.fps,
        temperature_c=25.0, exposure_ms=meta.exposure_ms,
    ).save(path)  # fmt: skip
    return path


@pytest.mark.slow  # three calibrations and a labelled fraction
def test_calibrations_let_channels_differ_in_settings(exo, channels, tmp_path):
    """With a bead calibration for each channel, captures at different frame rates are compared
    in absolute detection depths; a calibration of other optics is refused."""
    cal_s = _calibration(tmp_path / "s.json", channels["scatter"], 10.0)
    cal_f = _calibration(tmp_path / "f.json", channels["fluorescence_15fps"], 10.0)
    args = ["--scatter", channels["scatter"], "--fluorescence", channels["fluorescence_15fps"]]
    out = tmp_path / "lf"
    ok = exo("labelled-fraction", *args, "--calibration-scatter", cal_s,
             "--calibration-fluorescence", cal_f, "--out", out)  # fmt: skip
    assert ok.code == 0, ok.stderr
    lab = Measurement.load(out / "result.json").labelled
    assert 0 < lab.fraction < 1
    # twice the fluorescence channel's depth: half its concentration, half the fraction
    cal_f2 = _calibration(tmp_path / "f2.json", channels["fluorescence_15fps"], 20.0)
    ok2 = exo("labelled-fraction", *args, "--calibration-scatter", cal_s,
              "--calibration-fluorescence", cal_f2, "--out", tmp_path / "lf2")  # fmt: skip
    assert ok2.code == 0, ok2.stderr
    half = Measurement.load(tmp_path / "lf2" / "result.json").labelled
    assert half.fraction == pytest.approx(lab.fraction / 2, rel=1e-6)
    wrong = exo("labelled-fraction", *args, "--calibration-scatter", cal_f,
                "--calibration-fluorescence", cal_f, "--out", tmp_path / "x")  # fmt: skip
    assert_user_error(wrong, "--calibration-scatter")
    assert not (tmp_path / "x").exists()


def test_several_files_after_one_flag():
    """``--scatter a b --fluorescence c d`` is read as the issue and the docs write it."""
    from exocheck.cli.nta_cmds import spread_multi_values

    argv = ["labelled-fraction", "--scatter", "a", "b", "--fluorescence", "c", "d",
            "--marker", "CD63", "--size-range-nm", "100", "200", "--out", "o"]  # fmt: skip
    assert spread_multi_values(argv) == [
        "labelled-fraction", "--scatter", "a", "--scatter", "b", "--fluorescence", "c",
        "--fluorescence", "d", "--marker", "CD63", "--size-range-nm", "100", "200", "--out", "o",
    ]  # fmt: skip
    other = ["analyze", "a", "b", "--out", "o"]
    assert spread_multi_values(other) == other


def test_several_videos_per_role_from_the_command_line(exo, channels, tmp_path):
    out = tmp_path / "lf"
    outcome = exo("labelled-fraction", "--scatter", channels["scatter"], "--fluorescence",
                  channels["fluorescence"], "--control-unstained", channels["unstained"],
                  channels["unstained_replicate"], "--out", out)  # fmt: skip
    assert outcome.code == 0, outcome.stderr
    lab = Measurement.load(out / "result.json").labelled
    assert lab.inputs["unstained"] == ["video.tif", "video.tif"]
