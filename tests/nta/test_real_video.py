"""exocheck on a real recording: bulk-water.mov, 1 µm latex beads in water, bright field.

Tolerance 0.8–1.25 µm on D50: nominal 1 µm beads (commercial latex: ±3–5 % mean size, CV a few
%), temperature only known as "room" (22 ± 2 °C moves η by ±5 %), exposure unknown (blur
correction between no blur and a full-frame exposure changes D̂ by up to ~20 % at 24 fps).
The video is H.264 with inter-frame prediction, which suppresses the shortest displacements
(the ensemble MSD increments grow from lag 1 to lag 3 by ~20 %): the engine must notice this and
size from longer displacements, and say so.
"""

from pathlib import Path

from exocheck.nta.analyze import AnalysisSettings, Conditions, analyze
from exocheck.nta.locate import LocateSettings
from exocheck.nta.sizing import SizingSettings

VIDEO = Path(__file__).parents[1] / "data" / "bulk-water.mov"


def test_bulk_water_beads_measure_about_one_micrometre() -> None:
    measurement, _, _ = analyze(
        [VIDEO],
        Conditions(pixel_size_um=100.0 / 285.0, temperature_c=22.0),
        AnalysisSettings(locate=LocateSettings(invert=True), sizing=SizingSettings(n_bootstrap=0)),
    )
    assert 800.0 <= measurement.size.d50_nm <= 1250.0, measurement.size.d50_nm
    assert measurement.diagnostics["step_lag_frames"] > 1
    assert any("suppressed" in w for w in measurement.warnings)


def test_simulated_brownian_video_keeps_single_frame_steps(tmp_path) -> None:
    """A Brownian video (noise and blur included) grows linearly from lag 1: no fallback."""
    from exocheck.simulate import Population, make_params, simulate

    simulate(
        make_params(
            frames=200,
            seed=3,
            width_px=320,
            height_px=240,
            populations=[Population(diameter_nm=150, concentration_per_ml=1e9)],
        ),
        tmp_path,
    )
    measurement, _, _ = analyze(
        [tmp_path / "video.tif"],
        Conditions(),
        AnalysisSettings(sizing=SizingSettings(n_bootstrap=0)),
    )
    assert measurement.diagnostics["step_lag_frames"] == 1
