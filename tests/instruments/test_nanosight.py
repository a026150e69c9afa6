"""NanoSight NTA 3.x ExperimentSummary.csv: layout, quirks and the instrument's definitions."""

from __future__ import annotations

import numpy as np
import pytest

from exocheck.errors import FormatError
from exocheck.instruments import read_measurement
from exocheck.instruments._text import quantiles_from_bins
from exocheck.records import sha256_file

from .builders import NanoSightOptions, Truth, nano_companion, nanosight_summary


def _write(tmp_path, export, name="EV-lot-17-ExperimentSummary.csv"):
    path = tmp_path / name
    path.write_bytes(export.csv)
    return path


def test_stated_values_failed_video_and_flags(tmp_path):
    export = nanosight_summary(opts=NanoSightOptions(failed=(2,), noise=(1,), vibration=(4,)))
    path = _write(tmp_path, export)
    m = read_measurement(path)
    assert m.source.instrument == "NanoSight NTA"
    assert m.source.software_version == "3.3.301"
    assert m.source.file_sha256 == sha256_file(path)
    assert m.sample == "EV lot 17 UC pellet"
    assert m.date.isoformat() == "2021-04-01T15:42:48"  # day/month/year
    assert m.temperature_c == pytest.approx(25.02, abs=0.006)
    assert m.viscosity_mpa_s == pytest.approx(0.8902)
    # the stated Average includes the failed video (concentration 0): keep it as stated
    assert m.concentration.particles_per_ml == pytest.approx(export.stated_conc, rel=1e-5)
    assert m.concentration.measured_per_ml == pytest.approx(export.stated_conc / 500, rel=1e-5)
    assert m.dilution_factor == m.concentration.dilution_factor == 500
    for key in ("mean", "mode", "sd", "d10", "d50", "d90"):
        assert getattr(m.size, f"{key}_nm") == pytest.approx(export.stated[key], rel=1e-5)
    assert len(m.per_video) == 5
    assert [v.valid for v in m.per_video] == [True, True, False, True, True]
    assert "failed" in m.per_video[2].note
    assert m.per_video[0].concentration_per_ml == pytest.approx(export.video_conc[0], rel=1e-5)
    text = " | ".join(m.warnings)
    assert "failed videos (concentration 0): EV-lot-17_003.avi; the stated average" in text
    others = [c for i, c in enumerate(export.video_conc) if i != 2]
    assert f"the average of the 4 others is {np.mean(others):.3g}/mL" in text
    valid = m.instrument_summary["average of valid videos"]
    assert valid["concentration_per_ml"] == pytest.approx(np.mean(others), rel=1e-5)
    assert "Noise level = Noise detected: EV-lot-17_002.avi" in text
    assert "Vibration detected = Yes: EV-lot-17_005.avi" in text
    assert "Validity of concentration measurement = Unreliable: EV-lot-17_003.avi" in text
    assert np.sum(m.size.density) == pytest.approx(1.0, abs=1e-9)
    assert m.size.bin_edges_nm[0] == 0.0 and m.size.bin_edges_nm[-1] == 1000.0


def test_quantiles_follow_the_upper_bin_edge_definition(tmp_path):
    """D-values from the bins match NanoSight's definition, not the bin-centre one."""
    export = nanosight_summary(Truth(median_nm=85.0, gsd=1.3))
    m = read_measurement(_write(tmp_path, export))
    recomputed = m.instrument_summary["from_distribution"]
    for key in ("d10", "d50", "d90"):
        # bins are written with 6 significant digits: agreement to 1e-4 nm
        assert recomputed[f"{key}_nm"] == pytest.approx(export.distribution_stats[key], abs=1e-4)
    at_centres = quantiles_from_bins(export.centres, export.average_bins)
    # the bin-centre definition sits ~0.5 nm lower: the two are distinguishable
    d50 = export.distribution_stats["d50"]
    assert abs(at_centres[1] - d50) == pytest.approx(0.5, abs=0.05)
    assert not any("disagrees" in w for w in m.warnings)


def test_dilution_not_recorded(tmp_path):
    export = nanosight_summary(opts=NanoSightOptions(dilution_recorded=False))
    m = read_measurement(_write(tmp_path, export))
    assert m.dilution_factor is None
    assert m.concentration.particles_per_ml == pytest.approx(export.stated_conc, rel=1e-5)
    assert m.concentration.measured_per_ml == m.concentration.particles_per_ml
    assert any("dilution not recorded" in w for w in m.warnings)


def test_autosampler_export_without_average_columns(tmp_path):
    export = nanosight_summary(opts=NanoSightOptions(autosampler=True, n_videos=3, seed=7))
    m = read_measurement(_write(tmp_path, export))
    expected = export.average_bins / export.average_bins.sum()
    assert np.allclose(m.size.density, expected, atol=1e-9)
    assert m.size.d50_nm == pytest.approx(export.stated["d50"], rel=1e-5)


@pytest.mark.parametrize(
    ("encoding", "newline", "prefix"),
    [
        ("latin-1", "\n", b""),
        ("utf-8", "\r\n", b""),
        ("utf-8", "\n", b"\xef\xbb\xbf"),
        ("latin-1", "\r\n", b""),
    ],
)
def test_encodings_line_endings_and_bom(tmp_path, encoding, newline, prefix):
    export = nanosight_summary(opts=NanoSightOptions(encoding=encoding, newline=newline, nbins=300))
    if encoding == "latin-1":
        assert b"\xb2" in export.csv  # nm² as a single byte
    path = tmp_path / "x-ExperimentSummary.csv"
    path.write_bytes(prefix + export.csv)
    m = read_measurement(path)
    assert m.instrument_summary["Operator Name"] == "Jürgen Ölçer"
    assert m.size.d50_nm == pytest.approx(export.stated["d50"], rel=1e-5)


def test_nul_bytes_and_lower_case_keys(tmp_path):
    export = nanosight_summary(opts=NanoSightOptions(header_case="particles / ml", nbins=300))
    path = tmp_path / "x-ExperimentSummary.csv"
    path.write_bytes(export.csv.replace(b"\n", b"\x00\n", 50))
    m = read_measurement(path)
    assert m.concentration.particles_per_ml == pytest.approx(export.stated_conc, rel=1e-5)


def test_missing_optional_rows_and_required_concentration(tmp_path):
    export = nanosight_summary(
        opts=NanoSightOptions(
            drop_rows=("Particles per frame", "Completed tracks", "Time Captured"), nbins=200
        )
    )
    m = read_measurement(_write(tmp_path, export))
    assert m.particles_per_frame is None and m.date is None
    assert m.per_video[0].particles_per_frame is None
    export = nanosight_summary(
        opts=NanoSightOptions(drop_rows=("Concentration (Particles",), nbins=200)
    )
    path = _write(tmp_path, export, "bad-ExperimentSummary.csv")
    with pytest.raises(FormatError, match=r"bad-ExperimentSummary\.csv.*Concentration"):
        read_measurement(path)


def test_companion_nano_file(tmp_path):
    export = nanosight_summary(opts=NanoSightOptions(drop_rows=("Temperature/C",), nbins=200))
    path = _write(tmp_path, export)
    (tmp_path / "EV-lot-17.nano").write_bytes(nano_companion(export, dilution=250))
    m = read_measurement(path)
    assert m.source.files == ["EV-lot-17-ExperimentSummary.csv", "EV-lot-17.nano"]
    assert set(m.provenance.inputs) == set(m.source.files)
    assert m.temperature_c == pytest.approx(25.02)  # from the .nano
    assert m.settings["nano"]["framespersecond"][0] == "24.9825"
    assert any(".nano dilution 250 differs" in w for w in m.warnings)


@pytest.mark.parametrize("titles_on_section_line", [True, False])
@pytest.mark.parametrize("pad_rows", [False, True])
def test_section_lines_with_extra_cells(tmp_path, titles_on_section_line, pad_rows):
    """``[Results],,,,,,Average,Standard Error,``: the column titles sit on the section line."""
    opts = NanoSightOptions(
        titles_on_section_line=titles_on_section_line, pad_rows=pad_rows, nbins=300, newline="\r\n"
    )
    export = nanosight_summary(opts=opts)
    if titles_on_section_line:
        assert b"[Results],,,,,,Average,Standard Error," in export.csv
    if pad_rows:
        assert b"[Conditions],,,,," in export.csv and b", Concentration (particles" in export.csv
    m = read_measurement(_write(tmp_path, export))
    assert m.concentration.particles_per_ml == pytest.approx(export.stated_conc, rel=1e-5)
    assert [v.name for v in m.per_video] == export.video_names
    assert m.per_video[1].concentration_per_ml == pytest.approx(export.video_conc[1], rel=1e-5)
    assert m.temperature_c == pytest.approx(25.02, abs=0.006)
    assert m.size.d50_nm == pytest.approx(export.stated["d50"], rel=1e-5)
    assert len(m.size.density) == 300


def test_video_without_valid_tracks_and_vibration_words(tmp_path):
    """A video with a concentration but no valid tracks states its sizes as 0: not sizes."""
    export = nanosight_summary(
        opts=NanoSightOptions(
            n_videos=4, unsized=(1,), vibration=(0, 3), vibration_word="Moderate vibration",
            nbins=300,
        )
    )  # fmt: skip
    m = read_measurement(_write(tmp_path, export))
    video = m.per_video[1]
    assert not video.valid and video.d50_nm is None and "no valid tracks" in video.note
    assert video.concentration_per_ml == pytest.approx(export.video_conc[1], rel=1e-5)
    # the stated size averages include that video's zeros and are kept as stated
    assert m.size.mean_nm == pytest.approx(export.stated["mean"], rel=1e-5)
    sized = [v.mean_nm for v in m.per_video if v.valid]
    valid = m.instrument_summary["average of valid videos"]
    assert valid["mean_nm"] == pytest.approx(np.mean(sized)) and valid["videos"] == 3
    text = " | ".join(m.warnings)
    assert "no valid tracks (size statistics stated as 0" in text
    assert "Vibration detected = Moderate vibration: 2 of 4 videos" in text
    assert "Vibration correction applied" not in text


def test_empty_measurement_is_imported_with_a_clear_note(tmp_path):
    """Every video failed: concentration 0 as stated, no invented sizes, one clear note."""
    export = nanosight_summary(opts=NanoSightOptions(n_videos=3, failed=(0, 1, 2), nbins=200))
    m = read_measurement(_write(tmp_path, export))
    assert m.concentration.particles_per_ml == 0.0
    assert m.size.d50_nm is None and m.size.mean_nm is None and m.size.density == []
    assert m.instrument_summary["Size (number)"]["d50_nm"] == 0.0  # as stated, kept aside
    assert not any(v.valid for v in m.per_video)
    assert any(w.startswith("empty measurement: no video has sized particles") for w in m.warnings)
    assert any("failed videos (concentration 0): 3 of 3 videos" in w for w in m.warnings)


def test_renamed_summary_pairs_with_its_nano_by_the_capture_time(tmp_path):
    """``EMT1 d200 pre1 <time>-ExperimentSummary.csv`` beside ``EMT1 d200 <time>.nano``."""
    export = nanosight_summary(opts=NanoSightOptions(drop_rows=("Temperature/C",), nbins=200))
    path = _write(tmp_path, export, "EMT1 d200 pre1 2021-04-01 15-42-48-ExperimentSummary.csv")
    (tmp_path / "EMT1 d200 2021-04-01 15-42-48.nano").write_bytes(nano_companion(export))
    (tmp_path / "EMT1 d200 2021-04-01 15-42-49.nano").write_bytes(nano_companion(export))
    m = read_measurement(path)
    assert m.source.files == [path.name, "EMT1 d200 2021-04-01 15-42-48.nano"]
    assert m.temperature_c == pytest.approx(25.02)  # from the .nano


def test_two_nano_files_of_the_same_time_pair_with_neither(tmp_path):
    export = nanosight_summary(opts=NanoSightOptions(nbins=200))
    path = _write(tmp_path, export, "EMT1 pre1 2021-04-01 15-42-48-ExperimentSummary.csv")
    (tmp_path / "EMT1 a 2021-04-01 15-42-48.nano").write_bytes(nano_companion(export))
    (tmp_path / "EMT1 b 2021-04-01 15-42-48.nano").write_bytes(nano_companion(export))
    assert read_measurement(path).source.files == [path.name]
