"""The recording channel (scatter or fluorescence through a filter) and its detection settings,
as ZetaView size exports, ZetaView per-track FCS exports and NanoSight summaries state them."""

from __future__ import annotations

import numpy as np
import pytest

from exocheck.errors import FormatError
from exocheck.instruments import read_measurement
from exocheck.instruments.channel import channel_from_name, parse_filter
from exocheck.records import Measurement

from .builders import Truth, ZetaViewOptions, zetaview_positions, zetaview_size

# A lab's HEK EV runs (488 nm laser, 500 nm long-pass): the fluorescence run used a higher
# sensitivity, shorter cycles and a shorter minimum trace length than the scatter run.
SCATTER = ZetaViewOptions(sensitivity=80, fpsec=30, min_tracelength=15)
FLUORESCENCE = ZetaViewOptions(
    filter_wavelength="500",
    sensitivity=95,
    fpsec=15,
    min_tracelength=7,
    traces=60,
    name_suffix="_F500",
    low_bleach=True,
)


def _write(tmp_path, data, name):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_scatter_run_states_its_channel_and_settings(tmp_path):
    export = zetaview_size(opts=SCATTER)
    m = read_measurement(_write(tmp_path, export.txt, "20210401_0003_EV_size_488.txt"))
    assert m.channel is not None
    assert m.channel.mode == "scatter" and m.channel.filter_name == "Scatter"
    assert m.channel.filter_wavelength_nm is None
    assert m.channel.laser_wavelength_nm == 488.0
    assert m.channel.settings == {
        "cycles": 3.0,
        "fps": 30.0,
        "gain": 28.8,
        "low_bleach": 0.0,
        "max_area": 1000.0,
        "max_brightness": 255.0,
        "min_area": 10.0,
        "min_brightness": 30.0,
        "min_trace_length": 15.0,
        "sensitivity": 80.0,
        "shutter": 100.0,
        "tracking_radius2": 100.0,
    }


@pytest.mark.parametrize(
    "opts",
    [{}, {"decimal_comma": True}, {"newline": "\n", "nul_bytes": True}],
    ids=["crlf", "decimal-comma", "lf-nul"],
)
def test_fluorescence_run_states_filter_and_its_own_settings(tmp_path, opts):
    o = ZetaViewOptions(**{**FLUORESCENCE.__dict__, **opts})
    export = zetaview_size(Truth(measured_per_ml=4.0e6), o)
    m = read_measurement(_write(tmp_path, export.txt, "20210401_0004_EV_size_488_F500.txt"))
    ch = m.channel
    assert ch.mode == "fluorescence"
    assert ch.filter_wavelength_nm == 500.0 and ch.filter_name == "500"
    assert ch.laser_wavelength_nm == 488.0
    assert ch.settings["sensitivity"] == 95.0
    assert ch.settings["fps"] == 15.0 and ch.settings["cycles"] == 3.0
    assert ch.settings["min_trace_length"] == 7.0
    assert ch.settings["low_bleach"] == 1.0
    # the rest of the import is as for scatter
    assert m.tracks.count == 60
    assert m.concentration.measured_per_ml == pytest.approx(4.0e6, rel=1e-3)
    # the record round-trips through JSON with its channel
    assert Measurement.from_json(m.to_json()).channel == ch


def test_scatter_and_fluorescence_settings_differ_as_recorded(tmp_path):
    """What a labelled-fraction analysis must see: the two channels were not recorded alike."""
    s = read_measurement(_write(tmp_path, zetaview_size(opts=SCATTER).txt, "a_size_488.txt"))
    f = read_measurement(
        _write(tmp_path, zetaview_size(opts=FLUORESCENCE).txt, "b_size_488_F500.txt")
    )
    differ = {k for k in s.channel.settings if s.channel.settings[k] != f.channel.settings.get(k)}
    assert differ == {"sensitivity", "fps", "min_trace_length", "low_bleach"}


def test_filter_line_absent_is_scatter_without_filter_fields(tmp_path):
    """Older software versions (no fluorescence option) write no Filter Wavelength line."""
    export = zetaview_size(opts=ZetaViewOptions(filter_wavelength=None))
    assert b"Filter Wavelength" not in export.txt
    m = read_measurement(_write(tmp_path, export.txt, "20210401_0003_EV_size_488.txt"))
    assert m.channel.mode == "scatter"
    assert m.channel.filter_name is None and m.channel.filter_wavelength_nm is None
    assert m.channel.laser_wavelength_nm == 488.0
    assert m.channel.settings["sensitivity"] == 80.0


@pytest.mark.parametrize(
    ("stated", "mode", "wavelength"),
    [
        ("500.000000", "fluorescence", 500.0),
        ("550", "fluorescence", 550.0),
        ("660,000000", "fluorescence", 660.0),
        ("Scatter", "scatter", None),
        ("scatter", "scatter", None),
    ],
)
def test_filter_values(tmp_path, stated, mode, wavelength):
    laser = 640.0 if wavelength == 660.0 else 520.0 if wavelength == 550.0 else 488.0
    opts = ZetaViewOptions(filter_wavelength=stated, laser_nm=laser)
    m = read_measurement(_write(tmp_path, zetaview_size(opts=opts).txt, "r_size_488.txt"))
    assert m.channel.mode == mode and m.channel.filter_wavelength_nm == wavelength
    assert m.channel.laser_wavelength_nm == laser
    assert not any("filter" in w for w in m.warnings)


def test_filter_below_the_laser_line_is_flagged(tmp_path):
    opts = ZetaViewOptions(filter_wavelength="450", laser_nm=488.0)
    m = read_measurement(_write(tmp_path, zetaview_size(opts=opts).txt, "r_size_488.txt"))
    assert m.channel.mode == "fluorescence" and m.channel.filter_wavelength_nm == 450.0
    assert any("does not block the 488 nm laser" in w for w in m.warnings)


def test_position_table_of_a_fluorescence_run(tmp_path):
    """The _11pos table still joins a fluorescence size file; with a scatter and a fluorescence
    size file of one run prefix in the folder, each gets the table named after it."""
    fl = _write(
        tmp_path, zetaview_size(opts=FLUORESCENCE).txt, "20210401_0004_EV_size_488_F500.txt"
    )
    sc = _write(tmp_path, zetaview_size(opts=SCATTER).txt, "20210401_0004_EV_size_488.txt")
    fl_table, fl_orig = zetaview_positions(Truth(measured_per_ml=4.0e6), removed={})
    sc_table, _ = zetaview_positions(removed={2: "MIN_TRACES"})
    (tmp_path / "20210401_0004_EV_size_488_F500_11pos.txt").write_bytes(fl_table)
    (tmp_path / "20210401_0004_EV_size_488_11pos.txt").write_bytes(sc_table)
    m = read_measurement(fl)
    assert "20210401_0004_EV_size_488_F500_11pos.txt" in m.source.files
    assert all(v.valid for v in m.per_video) and len(m.per_video) == 11
    assert m.per_video[0].concentration_per_ml == pytest.approx(fl_orig[0], rel=1e-4)
    assert m.channel.mode == "fluorescence"
    s = read_measurement(sc)
    assert "20210401_0004_EV_size_488_11pos.txt" in s.source.files
    assert [v.valid for v in s.per_video].count(False) == 1


def test_filter_statements():
    assert parse_filter("Scatter") == ("scatter", None, "Scatter")
    assert parse_filter("None") == ("scatter", None, "None")
    assert parse_filter("565nm Long Pass") == ("fluorescence", 565.0, "565nm Long Pass")
    assert parse_filter("FL") == ("fluorescence", None, "FL")
    assert parse_filter("NaN") is None and parse_filter("") is None and parse_filter(None) is None


@pytest.mark.parametrize(
    ("name", "mode", "filter_nm", "laser_nm"),
    [
        ("20240605_0003_CD63_F500_size_488.fcs", "fluorescence", 500.0, 488.0),
        ("20240605_0003_CD63_size_488_F500.fcs", "fluorescence", 500.0, 488.0),
        ("20240605_0002_CD63_Scatter_size_488.fcs", "scatter", None, 488.0),
        ("run-f550-tracks.fcs", "fluorescence", 550.0, None),
        # sample names with fractions and dilutions are not filters
        ("20250219_0001_EV_ip_p1_F8-1000_size_488.fcs", None, None, None),
        ("20251217_0005_PC3_100kDa_F5_size_488.fcs", None, None, None),
        ("EV_F100_size_488.fcs", None, None, None),  # 100 nm is no emission filter
        ("EV_F5000_size_488.fcs", None, None, None),
    ],
)
def test_channel_from_file_name(name, mode, filter_nm, laser_nm):
    ch = channel_from_name(name)
    if mode is None:
        assert ch is None
    else:
        assert ch.mode == mode and ch.filter_wavelength_nm == filter_nm
        assert ch.laser_wavelength_nm == laser_nm


def test_damaged_fluorescence_export_is_one_line(tmp_path):
    export = zetaview_size(opts=FLUORESCENCE)
    path = _write(tmp_path, export.txt.split(b"Size / nm")[0], "x_size_488_F500.txt")
    with pytest.raises(FormatError, match=r"x_size_488_F500\.txt.*Size / nm"):
        read_measurement(path)


def test_numbers_stay_numbers_in_settings(tmp_path):
    m = read_measurement(_write(tmp_path, zetaview_size(opts=SCATTER).txt, "a_size_488.txt"))
    assert all(isinstance(v, float) for v in m.channel.settings.values())
    assert np.isfinite(list(m.channel.settings.values())).all()


# ------------------------------------------------------------------ ZetaView per-track FCS
@pytest.fixture(scope="module")
def tracks():
    from .builders import simulated_tracks

    return simulated_tracks(n=800, median_nm=120.0, gsd=1.3, seed=11)


FULL = ("Size", "Brightness", "Area", "TraceLength", "X", "Y")


def test_per_track_fcs_with_filter_keywords(tmp_path, tracks):
    from .builders import zetaview_track_fcs

    path = tmp_path / "20240605_0004_CD63_tracks.fcs"
    keywords = {
        "Laser Wavelength nm": "488.000000",
        "Filter Wavelength nm": "500",
        "Sensitivity": "95.000000",
        "Shutter": "100.000000",
        "Minimum Tracelength": "7",
        "Camera": "FpSec 15 #Cycles 3 FRate 15.000000",
    }
    zetaview_track_fcs(path, tracks, keywords=keywords, names=FULL)
    m = read_measurement(path)
    assert m.source.instrument == "ZetaView"
    assert m.channel.mode == "fluorescence" and m.channel.filter_wavelength_nm == 500.0
    assert m.channel.laser_wavelength_nm == 488.0
    assert m.channel.settings == {
        "cycles": 3.0,
        "fps": 15.0,
        "min_trace_length": 7.0,
        "sensitivity": 95.0,
        "shutter": 100.0,
    }
    # number-weighted distribution of the per-track sizes, track count, mean trace length
    sizes = tracks.vendor_nm.astype(np.float32).astype(float)
    assert m.tracks.count == 800
    assert m.tracks.mean_length_frames == pytest.approx(tracks.length_frames.mean(), rel=1e-6)
    assert m.size.d50_nm == pytest.approx(np.median(sizes), rel=1e-9)
    assert m.size.mean_nm == pytest.approx(sizes.mean(), rel=1e-6)
    counts = np.histogram(sizes, bins=m.size.bin_edges_nm)[0]
    np.testing.assert_allclose(m.size.density, counts / counts.sum(), atol=1e-12)
    per_track = m.instrument_summary["per_track"]
    assert per_track["length_channel"] == "TraceLength"
    assert per_track["brightness_channel"] == "Brightness"
    assert m.concentration.particles_per_ml is None
    assert any("per-track export: no concentration" in w for w in m.warnings)


@pytest.mark.parametrize(
    ("name", "mode", "filter_nm"),
    [
        ("20240605_0004_CD63_F500_size_488.fcs", "fluorescence", 500.0),
        ("20240605_0003_CD63_Scatter_size_488.fcs", "scatter", None),
        ("20240605_0003_CD63_size_488.fcs", None, None),
        ("20250219_0001_EV_ip_p1_F8-1000_size_488.fcs", None, None),
    ],
)
def test_per_track_fcs_channel_from_the_file_name(tmp_path, tracks, name, mode, filter_nm):
    from .builders import zetaview_track_fcs

    zetaview_track_fcs(tmp_path / name, tracks, keywords={"SENSITIVITY": "95"})
    m = read_measurement(tmp_path / name)
    if mode is None:
        assert m.channel is None
        assert any("channel not stated" in w for w in m.warnings)
    else:
        assert m.channel.mode == mode and m.channel.filter_wavelength_nm == filter_nm
        assert m.channel.laser_wavelength_nm == 488.0
        assert m.channel.settings == {"sensitivity": 95.0}
        assert any("channel from the file name" in w for w in m.warnings)


def test_per_track_fcs_without_cyt_and_with_units_in_names(tmp_path, tracks):
    """No $CYT keyword: a size and a trace-length channel make it a ZetaView per-track file;
    channel names may carry units."""
    from .builders import zetaview_track_fcs

    names = ("Size [nm]", "Trace Length [frames]", "Intensity (a.u.)", "X", "Y")
    path = tmp_path / "run_Scatter_tracks.fcs"
    zetaview_track_fcs(path, tracks, names=names, cyt=None, keywords={"FILTER": "Scatter"})
    m = read_measurement(path)
    assert m.source.instrument == "ZetaView"
    assert m.channel.mode == "scatter" and m.channel.filter_name == "Scatter"
    assert m.tracks.mean_length_frames == pytest.approx(tracks.length_frames.mean(), rel=1e-6)
    assert m.instrument_summary["per_track"]["brightness_channel"] == "Intensity (a.u.)"


def test_nano_flow_fcs_is_unchanged(tmp_path):
    """A CytoFLEX nano file (no trace length): not ZetaView, no channel, concentration kept."""
    from .builders import fcs_file

    path = tmp_path / "EV_F500_lot17.fcs"  # even a filter-like name does not make it ZetaView
    fcs_file(path)
    m = read_measurement(path)
    assert m.source.instrument == "CytoFLEX nano" and m.channel is None
    assert m.concentration.particles_per_ml is not None


def test_damaged_per_track_fcs_is_one_line(tmp_path, tracks):
    from .builders import zetaview_track_fcs

    path = tmp_path / "x_F500_tracks.fcs"
    zetaview_track_fcs(path, tracks)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(FormatError) as info:
        read_measurement(path)
    assert "x_F500_tracks.fcs" in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------------- NanoSight
def _summary(tmp_path, **opts):
    from .builders import NanoSightOptions, nanosight_summary

    export = nanosight_summary(opts=NanoSightOptions(n_videos=3, nbins=300, **opts))
    path = tmp_path / "EV-ExperimentSummary.csv"
    path.write_bytes(export.csv)
    return read_measurement(path)


@pytest.mark.parametrize(
    "real",
    ["inst/extdata/beads.csv", "inst/extdata/beads2.csv", "nanotest.csv"],
)
def test_real_nanosight_summaries_state_no_channel(real):
    """NTA 3.2 and 3.4 summaries name the laser (Blue488) but no filter: nanotest.csv combines
    experiments named 'fluor_yes_125' and '100_no_125' and says nothing that tells their
    channels apart, so the channel is unknown rather than guessed."""
    from pathlib import Path

    path = Path(__file__).parents[1] / "data" / "instruments" / "nguyens7__tidyNano" / real
    m = read_measurement(path)
    assert m.channel is None
    assert not any("channel" in w for w in m.warnings)


@pytest.mark.parametrize(
    ("opts", "mode", "filter_nm"),
    [
        ({"filter_row": ("Filter", "500nm Long Pass")}, "fluorescence", 500.0),
        ({"filter_row": ("Filter Wheel", "565 nm LP"), "laser_type": "Green532"}, "fluorescence", 565.0),
        ({"filter_row": ("Filter", "None")}, "scatter", None),
        ({"filter_row": ("Filter", "No Filter"), "newline": "\r\n", "pad_rows": True}, "scatter", None),
        ({"filter_row": ("Fluorescence Mode", "Yes")}, "fluorescence", None),
    ],
)  # fmt: skip
def test_nanosight_filter_rows(tmp_path, opts, mode, filter_nm):
    m = _summary(tmp_path, **opts)
    assert m.channel.mode == mode and m.channel.filter_wavelength_nm == filter_nm
    laser = 532.0 if opts.get("laser_type") == "Green532" else 488.0
    assert m.channel.laser_wavelength_nm == laser
    assert m.channel.settings["camera_level"] == 14.0
    assert m.channel.settings["shutter_ms"] == 30.0
    assert m.channel.settings["detection_threshold"] == 5.0
    assert m.channel.settings["min_track_length"] == "Auto"
    assert m.channel.settings["camera"] == "sCMOS"


def test_nanosight_videos_through_different_filters(tmp_path):
    m = _summary(tmp_path, filter_row=("Filter", ("None", "500 nm LP", "500 nm LP")))
    assert m.channel is None
    assert (
        "videos recorded in different channels (scatter: EV-lot-17_001.avi; fluorescence "
        "500 nm: EV-lot-17_002.avi, EV-lot-17_003.avi): no one channel for the measurement"
    ) in m.warnings


def test_nanosight_without_filter_row_has_no_channel(tmp_path):
    m = _summary(tmp_path)
    assert m.channel is None


def test_channel_survives_the_nanosight_csv_export(tmp_path):
    from exocheck.instruments import to_nanosight_csv

    m = read_measurement(
        _write(tmp_path, zetaview_size(opts=FLUORESCENCE).txt, "a_size_488_F500.txt")
    )
    out = tmp_path / "back-ExperimentSummary.csv"
    to_nanosight_csv(m, out)
    back = read_measurement(out)
    assert back.channel.mode == "fluorescence"
    assert back.channel.filter_wavelength_nm == 500.0 and back.channel.laser_wavelength_nm == 488.0


def test_import_table_shows_the_channel(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from exocheck.cli._common import console
    from exocheck.cli.main import app

    # the console measured its width when it was made (80 columns without a terminal): widen it,
    # or the table's cells are cut whatever COLUMNS says now
    monkeypatch.setattr(console, "width", 200)

    fl = _write(tmp_path, zetaview_size(opts=FLUORESCENCE).txt, "a_size_488_F500.txt")
    sc = _write(tmp_path, zetaview_size(opts=SCATTER).txt, "b_size_488.txt")
    result = CliRunner().invoke(app, ["import", str(fl), str(sc)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    import re

    cells = [c.strip() for c in re.split(r"[│┃]", result.stdout)]
    assert cells.count("ZetaView") == 2
    assert cells.count("FL 500") == 1 and cells.count("scatter") == 1


def test_per_track_fcs_laser_from_the_fcs_excitation_keyword(tmp_path, tracks):
    from .builders import zetaview_track_fcs

    path = tmp_path / "run_tracks.fcs"
    zetaview_track_fcs(path, tracks, keywords={"$P1L": "520", "Filter Wavelength nm": "550"})
    m = read_measurement(path)
    assert m.channel.laser_wavelength_nm == 520.0 and m.channel.filter_wavelength_nm == 550.0
