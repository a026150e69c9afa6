"""Real NanoSight exports (tidyNano, MIT) read as they state themselves.

``tests/data/instruments/expected.json`` holds the values each file states (read off the files);
every stated value must come back exactly, failed videos flagged, and the stated averages kept
even where they include failed videos' zeros.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from exocheck.instruments import detect_format, read_measurement

DATA = Path(__file__).parents[1] / "data" / "instruments"
EXPECTED = json.loads((DATA / "expected.json").read_text())
STATS = ("mean_nm", "mode_nm", "sd_nm", "d10_nm", "d50_nm", "d90_nm")


@pytest.fixture(scope="module", params=EXPECTED, ids=[Path(e["path"]).name for e in EXPECTED])
def case(request):
    entry = request.param
    path = DATA / entry["path"]
    return entry, path, read_measurement(path)


def test_stated_summary_values(case):
    entry, path, m = case
    assert detect_format(path) == "nanosight"
    assert m.source.instrument == "NanoSight NTA"
    # the version as the file states it (line 2 where the Software Version row says Unknown)
    build = re.search(r"NTA [\d.]+ (Dev )?Build [\d.]+", entry["software"]).group(0)
    assert m.source.software_version == build
    assert m.concentration.particles_per_ml == entry["conc_per_ml"]  # exactly as printed
    measured = entry["measured_per_ml"] or entry.get("derived", {}).get("measured_per_ml")
    assert m.concentration.measured_per_ml == pytest.approx(measured, rel=1e-12)
    dilution = entry["dilution_factor"]
    assert m.dilution_factor == (dilution if isinstance(dilution, float) else None)
    for key in STATS:
        assert getattr(m.size, key) == entry[key], key
    stated_se = m.instrument_summary["Concentration (Particles / ml)"]["Standard Error"]
    assert stated_se == entry["stated_standard_error"]["conc_per_ml"]
    size_se = m.instrument_summary["Size (number) Standard Error"]
    assert size_se == {
        k: v for k, v in entry["stated_standard_error"].items() if k != "conc_per_ml"
    }
    if entry["temperature_c"] is not None:
        assert m.temperature_c == entry["temperature_c"]
    assert len(m.per_video) == entry["videos"]
    # the distribution: 1000 bins of 1 nm, summing to one
    assert len(m.size.density) == 1000 and m.size.bin_edges_nm[-1] == 1000.0
    assert np.sum(m.size.density) == pytest.approx(1.0, abs=1e-9)


def test_per_video_values(case):
    entry, _, m = case
    by_name = {v.name: v for v in m.per_video}
    for stated in entry["per_video"]:
        video = by_name[stated["video"]]
        assert video.concentration_per_ml == stated["conc_per_ml"]
        if stated["valid_tracks"] and stated["conc_per_ml"]:
            assert video.valid
            for key in STATS:
                assert getattr(video, key) == stated[key], (stated["video"], key)
            assert video.tracks == stated["valid_tracks"]
        else:  # failed (concentration 0) or no valid tracks: flagged, no sizes invented
            assert not video.valid and video.note
            assert video.d50_nm is None


def test_failed_videos_flagged_and_valid_average_beside(case):
    entry, _, m = case
    failed = [v["video"] for v in entry["per_video"] if v["conc_per_ml"] == 0]
    text = " | ".join(m.warnings)
    if not failed:
        assert "failed videos" not in text
        assert m.instrument_summary["average of valid videos"] is None
        return
    # the stated average includes the zeros; the average of the others is reported beside it
    conc = [v["conc_per_ml"] for v in entry["per_video"]]
    assert m.concentration.particles_per_ml == pytest.approx(np.mean(conc), rel=0.01)
    others = [c for c in conc if c > 0]
    beside = m.instrument_summary["average of valid videos"]["concentration_per_ml"]
    assert beside == pytest.approx(np.mean(others), rel=1e-12)
    assert f"failed videos (concentration 0): {len(failed)} of {len(conc)} videos" in text
    assert f"the average of the {len(others)} others is {np.mean(others):.3g}/mL" in text


def test_flags_become_warnings(case):
    entry, _, m = case
    text = " | ".join(m.warnings)
    assert "= OK" not in text  # 'OK' is not a warning
    if Path(entry["path"]).name == "beads2.csv":
        assert "Vibration detected = Moderate vibration: 2 of 5 videos" in text
        assert "Vibration correction applied" not in text  # a setting, not a problem
    if Path(entry["path"]).name == "nanotest.csv":
        assert "Video length = Short video: 3 of 36 videos" in text
        assert "Noise level = High noise: 5 of 36 videos" in text
        assert "no valid tracks (size statistics stated as 0" in text  # 200_yes_125_02
        # one line per (flag, value), not one per video: 36 videos stay readable
        assert len(m.warnings) < 25
