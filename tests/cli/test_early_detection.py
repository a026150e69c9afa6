"""Detection started before the analysis is set up gives the same analysis, and its progress."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from exocheck.cli.nta_cmds import _EarlyDetection
from exocheck.nta.analyze import AnalysisSettings, Conditions, analyze
from exocheck.nta.locate import LocateSettings, detect_video
from exocheck.nta.sizing import SizingSettings

SETTINGS = AnalysisSettings(sizing=SizingSettings(n_bootstrap=0))
CONDITIONS = Conditions(temperature_c=25.0)


def test_analysis_with_a_detection_under_way_is_the_same(beads):
    video = beads / "video.tif"
    plain, analyses, _ = analyze([video], CONDITIONS, SETTINGS)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(detect_video, video, SETTINGS.locate)
        early, early_analyses, _ = analyze([video], CONDITIONS, SETTINGS, detections=[running])
    assert early.size == plain.size
    assert early.tracks.count == plain.tracks.count > 50
    assert early.concentration.particles_per_ml == plain.concentration.particles_per_ml
    assert early_analyses[0].features.equals(analyses[0].features)


def test_early_detection_reports_progress_counted_before_the_bar_existed(beads):
    video = beads / "video.tif"
    job = _EarlyDetection(video, LocateSettings())
    result = job.future.result(timeout=120)  # finished before anything is attached
    seen: list[int] = []
    lock = threading.Lock()

    def sink(n: int) -> None:
        with lock:
            seen.append(n)

    job.attach(sink)
    assert sum(seen) == result.n_frames
    job._progress(3)  # later progress goes straight to the sink
    assert seen[-1] == 3


def test_early_detection_hands_over_its_error(bad):
    job = _EarlyDetection(bad["empty"], LocateSettings())
    error = job.future.exception(timeout=60)
    assert error is not None and str(bad["empty"].name) in str(error)
