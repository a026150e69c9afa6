"""Per-track vendor data re-sized by exocheck's maximum-likelihood sizing.

The tracks are simulated with known diameters (narrow, 100 nm); each track's vendor diameter is
its own n-step MSD estimate, so the histogram of vendor diameters is broadened by finite track
length. Re-sizing must give back the true distribution: D50 within 3 % (600 tracks: the
bootstrap interval of the D50 is about ±1.5 %), and a spread far below the per-track one.
"""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from exocheck.cli.main import app
from exocheck.instruments import detect_format, read_measurement
from exocheck.instruments.particles import read_track_table

from .builders import (
    NanoSightOptions,
    nanosight_particles,
    nanosight_summary,
    simulated_tracks,
    zetaview_track_fcs,
)

N_TRACKS = 600


@pytest.fixture(scope="module")
def tracks():
    return simulated_tracks(n=N_TRACKS)


def _check_resized(m, tracks, vendor_sizes):
    resized = m.diagnostics["resized"]
    assert resized["tracks"] == vendor_sizes.size
    true_d50 = float(np.median(tracks.true_nm))
    assert resized["d50_nm"] == pytest.approx(true_d50, rel=0.03)
    lo, hi = resized["ci"]["d50_nm"]
    assert lo < resized["d50_nm"] < hi and hi - lo < 0.1 * resized["d50_nm"]  # ~5 % wide
    per_track = resized["vendor_per_track"]
    assert per_track["d50_nm"] == pytest.approx(np.median(vendor_sizes), abs=1e-9)
    # finite-track broadening removed: the re-sized spread is a fraction of the per-track one
    # (here ~60 nm) and of the order of the true one (5 nm). A true width of 5 % under a
    # per-track scatter of ~30 % (tracks of ~11 steps) is only loosely determined by 600 tracks:
    # the bound is 2.5x the true SD, still a tenth of the per-track SD.
    assert resized["sd_nm"] < 0.2 * per_track["sd_nm"]
    assert resized["sd_nm"] < 2.5 * np.std(tracks.true_nm)
    assert np.sum(resized["density"]) == pytest.approx(1.0)
    assert len(resized["bin_edges_nm"]) == len(resized["density"]) + 1


def test_nanosight_summary_with_particle_data(tmp_path, tracks):
    export = nanosight_summary(opts=NanoSightOptions(n_videos=2, nbins=300))
    summary = tmp_path / "EV-lot-17-ExperimentSummary.csv"
    summary.write_bytes(export.csv)
    (tmp_path / "EV-lot-17_001-ParticleData.csv").write_bytes(
        nanosight_particles(tracks, excluded=5)
    )
    plain = read_measurement(summary)
    assert "resized" not in plain.diagnostics
    m = read_measurement(summary, resize=True)
    assert m.size == plain.size  # the vendor's distribution and stated values stay as they are
    assert m.diagnostics["resized"]["tracks_excluded_by_vendor"] == 5
    vendor = np.round(tracks.vendor_nm[5:], 1)  # written with one decimal; 5 excluded
    _check_resized(m, tracks, vendor)


def test_all_tracks_table_on_its_own(tmp_path, tracks):
    """One row per track point and no length column: a track's length is its number of rows."""
    path = tmp_path / "EV-lot-17_001-AllTracks.csv"
    path.write_bytes(nanosight_particles(tracks, per_point=True))
    assert detect_format(path) == "nanosight-particles"
    table = read_track_table(path)
    np.testing.assert_array_equal(table.length_frames, tracks.length_frames)
    m = read_measurement(path, resize=True)
    assert m.tracks.count == N_TRACKS
    assert m.concentration.particles_per_ml is None
    assert "per-track table: no concentration in this file" in m.warnings
    assert m.size.d50_nm == pytest.approx(np.median(np.round(tracks.vendor_nm, 1)))
    _check_resized(m, tracks, np.round(tracks.vendor_nm, 1))


def test_zetaview_per_track_fcs(tmp_path, tracks):
    path = tmp_path / "20210401_0003_EV_lot_17_tracks.fcs"
    zetaview_track_fcs(path, tracks)
    m = read_measurement(path, resize=True)
    assert m.source.instrument == "ZetaView"
    assert m.instrument_summary["per_track"]["length_channel"] == "TraceLength"
    assert m.tracks.mean_length_frames == pytest.approx(tracks.length_frames.mean(), rel=1e-6)
    _check_resized(m, tracks, tracks.vendor_nm.astype(np.float32).astype(float))


def test_no_per_track_data_is_said(tmp_path):
    export = nanosight_summary(opts=NanoSightOptions(n_videos=2, nbins=200))
    path = tmp_path / "A-ExperimentSummary.csv"
    path.write_bytes(export.csv)
    m = read_measurement(path, resize=True)
    assert "resized" not in m.diagnostics
    assert any("no per-track data" in w for w in m.warnings)


@pytest.mark.slow  # re-sizes thousands of tracks
def test_import_resize_shows_both_distributions(tmp_path, tracks):
    path = tmp_path / "run-AllTracks.csv"
    path.write_bytes(nanosight_particles(tracks, per_point=True))
    out = tmp_path / "records"
    result = CliRunner().invoke(app, ["import", str(path), "--resize", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "vendor sizing vs exocheck re-sizing of 600 tracks" in " ".join(result.stdout.split())
    assert "re-sized" in result.stdout and "interval" in result.stdout
    png = out / "run-AllTracks-resized.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot: {png}" in result.stderr.replace("\n", "")
