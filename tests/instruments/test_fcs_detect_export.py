"""Nano-flow FCS files, format detection, and export back to NanoSight CSV / JSON."""

from __future__ import annotations

import numpy as np
import pytest

from exocheck.errors import FormatError
from exocheck.instruments import detect_format, read_measurement, to_json, to_nanosight_csv
from exocheck.records import Measurement

from .builders import NanoSightOptions, fcs_file, nanosight_summary, zetaview_size


def test_fcs_size_channel_and_volume(tmp_path):
    sizes = fcs_file(tmp_path / "ev.fcs", n_events=3000, vol_nl=1500.0, dilution=50.0)
    m = read_measurement(tmp_path / "ev.fcs")
    assert detect_format(tmp_path / "ev.fcs") == "fcs"
    assert m.source.instrument == "CytoFLEX nano" and m.sample == "EV lot 17"
    assert m.concentration.measured_per_ml == pytest.approx(3000 / 1.5e-3)  # 1500 nL
    assert m.concentration.particles_per_ml == pytest.approx(3000 / 1.5e-3 * 50)
    # float32 storage: 1e-4 relative
    assert m.size.d50_nm == pytest.approx(np.quantile(sizes, 0.5), rel=1e-4)
    assert m.size.mean_nm == pytest.approx(sizes.mean(), rel=1e-4)
    assert np.sum(m.size.density) == pytest.approx(1.0)


def test_fcs_flow_rate_without_size_channel(tmp_path):
    fcs_file(tmp_path / "f.fcs", n_events=1000, vol_nl=None, flow_rate="20", size_channel=False)
    m = read_measurement(tmp_path / "f.fcs")
    seconds = m.instrument_summary["volume_ml"] / (20e-6 / 60)
    assert 59.0 < seconds <= 60.0  # events spread over 60 s of the time channel
    assert m.size.density == [] and any("no size channel" in w for w in m.warnings)


def test_fcs_counts_only_empty_and_damaged(tmp_path):
    fcs_file(tmp_path / "n.fcs", vol_nl=None, dilution=None)
    m = read_measurement(tmp_path / "n.fcs")
    assert m.concentration.particles_per_ml is None and m.tracks.count == 2000
    assert any("event counts only" in w for w in m.warnings)
    fcs_file(tmp_path / "e.fcs", n_events=0)
    m = read_measurement(tmp_path / "e.fcs")
    assert m.tracks.count == 0 and any("empty run" in w for w in m.warnings)
    data = (tmp_path / "n.fcs").read_bytes()
    (tmp_path / "cut.fcs").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"cut\.fcs"):
        read_measurement(tmp_path / "cut.fcs")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"hello,world\n1,2\n", "not a supported instrument export"),
     (b"[Filenames]\nA=1.avi\n[CaptureSettings]\nTemperature=25\n", "ExperimentSummary.csv")],
)  # fmt: skip
def test_unsupported_files(tmp_path, content, message):
    path = tmp_path / "thing.txt"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=rf"thing\.txt.*{message}"):
        read_measurement(path)
    with pytest.raises(FormatError, match="no such file"):
        read_measurement(tmp_path / "missing.csv")


def test_detection_ignores_misleading_names(tmp_path):
    export = zetaview_size()
    path = tmp_path / "looks-like-ExperimentSummary.csv"
    path.write_bytes(export.txt)
    assert detect_format(path) == "zetaview"


def test_nanosight_csv_round_trip(tmp_path):
    export = nanosight_summary(opts=NanoSightOptions(failed=(1,), n_videos=3, nbins=1000))
    original = read_measurement(_write(tmp_path / "a-ExperimentSummary.csv", export.csv))
    to_nanosight_csv(original, tmp_path / "b-ExperimentSummary.csv")
    back = read_measurement(tmp_path / "b-ExperimentSummary.csv")
    assert back.sample == original.sample and back.date == original.date
    assert back.temperature_c == pytest.approx(original.temperature_c)
    assert back.dilution_factor == original.dilution_factor
    for key in ("particles_per_ml", "measured_per_ml"):
        assert getattr(back.concentration, key) == pytest.approx(
            getattr(original.concentration, key), rel=1e-8
        )
    for key in ("mean_nm", "mode_nm", "sd_nm", "d10_nm", "d50_nm", "d90_nm"):
        assert getattr(back.size, key) == pytest.approx(getattr(original.size, key), rel=1e-8)
    assert np.allclose(back.size.density, original.size.density, atol=1e-9)
    assert [v.concentration_per_ml for v in back.per_video] == [
        pytest.approx(v.concentration_per_ml, rel=1e-8) for v in original.per_video
    ]
    assert [v.valid for v in back.per_video] == [True, False, True]


def test_other_instrument_to_nanosight_csv_and_json(tmp_path):
    m = read_measurement(_write(tmp_path / "z_size_488.txt", zetaview_size().txt))
    to_nanosight_csv(m, tmp_path / "z-ExperimentSummary.csv")
    back = read_measurement(tmp_path / "z-ExperimentSummary.csv")
    assert back.concentration.particles_per_ml == pytest.approx(
        m.concentration.particles_per_ml, rel=1e-8
    )
    assert back.size.d50_nm == pytest.approx(m.size.d50_nm)
    # ZetaView reads the cumulative at 5-nm bin centres, NanoSight at upper edges: <= 2.5 nm apart
    assert back.instrument_summary["from_distribution"]["d50_nm"] == pytest.approx(
        m.size.d50_nm, abs=3.0
    )
    to_json(m, tmp_path / "z.json")
    again = Measurement.load(tmp_path / "z.json")
    assert again == m


def _write(path, data):
    path.write_bytes(data)
    return path
