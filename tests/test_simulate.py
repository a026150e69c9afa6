"""The simulator checks physics, not just shapes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from exocheck.errors import ParameterError
from exocheck.physics import diffusion_um2_s, scattering_cross_section_nm2
from exocheck.simulate import (
    Population,
    Simulation,
    SimulationParams,
    make_params,
    params_from_scenario,
)


def _run(params) -> tuple[np.ndarray, Simulation]:
    sim = Simulation(params)
    frames = np.concatenate(list(sim.chunks()))
    return frames, sim


def _steps(tracks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = tracks.sort_values(["particle", "frame"])
    ok = (np.diff(t["particle"].to_numpy()) == 0) & (np.diff(t["frame"].to_numpy()) == 1)
    return (
        np.diff(t["x"].to_numpy())[ok],
        np.diff(t["y"].to_numpy())[ok],
        t["particle"].to_numpy()[1:][ok],
    )


@pytest.mark.parametrize("exposure_ms", [1.0, 20.0])
def test_truth_msd_matches_stokes_einstein(exposure_ms: float) -> None:
    """Mean squared displacement per axis = 2 D (Δt − τ_eff/3) within 3 % over many particles.

    The truth position is the exposure average of ``blur_substeps`` = K instants, for which the
    blur term is τ(K²−1)/(3K²) (→ τ/3 for continuous exposure). With ~20 000 steps per axis the
    standard error of the mean is ~1 %, so a 3 % bound fails only on a real error.
    """
    p = make_params(
        frames=100,
        seed=11,
        exposure_ms=exposure_ms,
        sheet_fwhm_um=20.0,
        defocus_um=100.0,
        width_px=200,
        height_px=200,
        populations=[Population(diameter_nm=100.0, concentration_per_ml=4e9)],
    )
    _, sim = _run(p)
    dx, dy, _ = _steps(sim.truth_tracks())
    assert dx.size > 15_000
    d = diffusion_um2_s(100.0, p.temperature_c)
    k = p.blur_substeps
    tau = exposure_ms / 1000.0
    expected_px2 = 2 * d * (1 / p.fps - tau * (k * k - 1) / (3 * k * k)) / p.pixel_size_um**2
    assert np.mean(dx**2) == pytest.approx(expected_px2, rel=0.03)
    assert np.mean(dy**2) == pytest.approx(expected_px2, rel=0.03)
    assert abs(np.mean(dx)) < 4 * np.sqrt(expected_px2 / dx.size)  # no drift was asked for


def test_temperature_changes_diffusion() -> None:
    p25 = make_params(
        frames=60,
        seed=3,
        exposure_ms=1.0,
        sheet_fwhm_um=20.0,
        temperature_c=25.0,
        defocus_um=100.0,
        width_px=200,
        height_px=200,
        populations=[Population(diameter_nm=100.0, concentration_per_ml=5e9)],
    )
    p37 = p25.model_copy(update={"temperature_c": 37.0})
    _, s25 = _run(p25)
    _, s37 = _run(p37)
    m25 = np.mean(np.concatenate(_steps(s25.truth_tracks())[:2]) ** 2)
    m37 = np.mean(np.concatenate(_steps(s37.truth_tracks())[:2]) ** 2)
    expected = diffusion_um2_s(100.0, 37.0) / diffusion_um2_s(100.0, 25.0)  # ≈ 1.33
    assert m37 / m25 == pytest.approx(expected, rel=0.06)


def test_drift_moves_everything() -> None:
    p = make_params(
        frames=90,
        seed=5,
        exposure_ms=1.0,
        drift_um_s=(4.0, -2.0),
        populations=[Population(diameter_nm=200.0, concentration_per_ml=1e9)],
    )
    _, sim = _run(p)
    dx, dy, _ = _steps(sim.truth_tracks())
    per_frame_px = np.array([4.0, -2.0]) / p.fps / p.pixel_size_um
    sem = np.sqrt(2 * diffusion_um2_s(200.0) / p.fps) / p.pixel_size_um / np.sqrt(dx.size)
    assert np.mean(dx) == pytest.approx(per_frame_px[0], abs=5 * sem)
    assert np.mean(dy) == pytest.approx(per_frame_px[1], abs=5 * sem)


def test_particles_per_frame_match_concentration_times_volume() -> None:
    """Particles in the field per frame = realised concentration × field area × box depth."""
    p = make_params(
        frames=40,
        seed=2,
        width_px=320,
        height_px=240,
        defocus_um=100.0,
        populations=[Population(concentration_per_ml=1.2e10)],
    )
    _, sim = _run(p)
    truth = sim.truth()
    lo, hi = np.array(truth["box_um"]["lo"]), np.array(truth["box_um"]["hi"])
    # the field spans pixel centres 0 … W−1 (as in the truth's in-field test)
    area_um2 = (p.width_px - 1) * (p.height_px - 1) * p.pixel_size_um**2
    expected = truth["concentration_per_ml"] * area_um2 * (hi[2] - lo[2]) * 1e-12
    # ~1000 particles in the box: binomial spread of the in-field share is ~2 %; bound at 3σ
    assert truth["mean_particles_in_fov_per_frame"] == pytest.approx(expected, rel=0.06)
    assert truth["concentration_per_ml"] == pytest.approx(1.2e10, rel=0.1)


def test_detected_brightness_ratio_follows_mie() -> None:
    """Integrated brightness of in-focus 100 and 150 nm beads ∝ their Mie cross-sections."""
    from scipy.spatial import cKDTree

    from exocheck.nta.locate import LocateSettings, locate_video, static_background

    p = make_params(
        frames=150,
        seed=8,
        gain=0.08,
        read_noise_counts=1.0,
        exposure_ms=1.0,
        populations=[
            Population(name="small", diameter_nm=100.0, concentration_per_ml=3e8),
            Population(name="large", diameter_nm=150.0, concentration_per_ml=3e8),
        ],
    )
    frames, sim = _run(p)
    assert frames.max() < 255  # no saturation, or the ratio would be clipped
    located = locate_video([(0, frames)], static_background(frames), LocateSettings(), len(frames))
    truth_tracks = sim.truth_tracks()
    pop = sim.particles.population
    masses: dict[int, list[float]] = {0: [], 1: []}
    for f, feats in located.features.groupby("frame"):
        t = truth_tracks[(truth_tracks["frame"] == f) & (truth_tracks["z_um"].abs() < 1.0)]
        if t.empty:
            continue
        dist, idx = cKDTree(feats[["x", "y"]].to_numpy()).query(t[["x", "y"]].to_numpy())
        for j, (dd, i) in enumerate(zip(dist, idx, strict=True)):
            if dd < 1.0:
                masses[int(pop[t["particle"].iloc[j]])].append(feats["mass"].iloc[i])
    assert len(masses[0]) > 30 and len(masses[1]) > 30
    ratio = np.median(masses[1]) / np.median(masses[0])
    mie = scattering_cross_section_nm2(150.0, 1.59) / scattering_cross_section_nm2(100.0, 1.59)
    assert ratio == pytest.approx(mie, rel=0.12)


def test_deterministic_for_a_seed_and_saturates() -> None:
    p = make_params(frames=20, seed=4, populations=[Population(diameter_nm=300.0)])
    a, _ = _run(p)
    b, _ = _run(p)
    c, _ = _run(p.model_copy(update={"seed": 5}))
    assert a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.max() == 255  # 300 nm polystyrene at the default gain saturates 8 bits


def test_lognormal_mixture_truth() -> None:
    p = make_params(
        frames=30,
        seed=1,
        populations=[
            Population(
                name="ev",
                distribution="lognormal",
                diameter_nm=110,
                gsd=1.35,
                refractive_index=1.39,
                concentration_per_ml=2e9,
            ),
            Population(
                name="beads", diameter_nm=200, refractive_index=1.59, concentration_per_ml=2e8
            ),
        ],
    )
    _, sim = _run(p)
    truth = sim.truth()
    names = {q["name"] for q in truth["populations"]}
    assert names == {"ev", "beads"}
    ev = sim.particles.diameter_nm[sim.particles.population == 0]
    assert np.exp(np.median(np.log(ev))) == pytest.approx(110, rel=0.05)
    assert np.exp(np.std(np.log(ev))) == pytest.approx(1.35, rel=0.05)
    assert all(q["frames_visible"] > 0 for q in truth["particles"])


def test_bad_settings_raise_one_line_errors(tmp_path) -> None:
    with pytest.raises(ParameterError, match="fps"):
        make_params(fps=-3)
    with pytest.raises(ParameterError, match="exposure"):
        make_params(fps=100, exposure_ms=50)
    bad = tmp_path / "s.yaml"
    bad.write_text("frames: [1, 2\n")
    with pytest.raises(ParameterError, match="line"):
        params_from_scenario(bad)
    bad.write_text("populations:\n  - diameter_nm: -4\n")
    with pytest.raises(ParameterError, match="diameter_nm"):
        params_from_scenario(bad)


def _one_spot(**settings) -> np.ndarray:
    """A single 1 µm-class bead, 8 µm defocus of the sheet centre irrelevant: the expected
    photons of one frame, for camera and optics settings."""
    from exocheck.simulate import _render, _ring_spots

    spots = (np.array([0]), np.array([32.0]), np.array([32.0]), np.array([3.0]), np.array([1e4]))
    if settings.get("ring_px"):
        spots = _ring_spots(*spots, np.array([settings["ring_px"]]), 1.5)
    return _render((1, 64, 64), *spots)[0]


def test_ring_spot_keeps_its_light_and_puts_it_on_a_circle() -> None:
    ring = _one_spot(ring_px=10.0)
    gauss = _one_spot()
    assert ring.sum() == pytest.approx(gauss.sum(), rel=0.01)  # light conserved
    yy, xx = np.mgrid[0:64, 0:64]
    r = np.hypot(yy - 32, xx - 32)
    on_ring = ring[(r > 8) & (r < 12)].sum() / ring.sum()
    assert on_ring > 0.6  # 90 % of the light is on the ring, blurred by its 1.5 px width
    assert ring[32, 32] < ring[r.astype(int) == 10].max()  # a dark-ish centre: a ring, not a blob


@pytest.mark.parametrize("ring_px", [0.0, 1.0, 2.5, 6.0, 10.0])
def test_truth_judges_visibility_on_the_drawn_spot_peak(ring_px: float) -> None:
    """The ground truth's peak (visibility) is the drawn spot's highest value: for a ring, far
    below a Gaussian of the same light, which the truth used before."""
    from exocheck.simulate import _peak_per_photon

    drawn = _one_spot(ring_px=ring_px)
    predicted = 1e4 * float(_peak_per_photon(np.array(3.0), np.array(ring_px), 1.5))
    # the drawn image is pixel-integrated; a Gaussian of 1.5 px width loses ~4 % at its peak
    assert drawn.max() == pytest.approx(predicted, rel=0.08)
    if ring_px >= 6.0:
        assert predicted < 0.5 * 1e4 / (2 * np.pi * 3.0**2)


def test_flat_top_sheet_has_the_same_fwhm_and_a_flat_middle() -> None:
    from exocheck.simulate import _sheet_light

    for profile in ("gaussian", "flat-top"):
        params = SimulationParams(sheet_fwhm_um=8.0, sheet_profile=profile)
        assert _sheet_light(params, np.array([4.0]))[0] == pytest.approx(0.5)
    flat = SimulationParams(sheet_fwhm_um=8.0, sheet_profile="flat-top")
    assert _sheet_light(flat, np.array([2.0]))[0] > 0.99  # flat within half the FWHM
    assert _sheet_light(flat, np.array([6.0]))[0] < 0.01  # steep edges


def test_emccd_doubles_the_shot_noise_variance() -> None:
    """The excess noise factor of an EM register is √2: the variance of the counts of a lit
    background is twice the sCMOS one (read noise set to zero), to within 3 % on 10⁶ pixels."""
    base = {"frames": 4, "width_px": 512, "height_px": 512, "read_noise_counts": 0.0}
    base |= {"background_gradient": 0.0, "background_photons": 20.0, "seed": 2}
    base |= {"populations": [Population(concentration_per_ml=1.0)]}
    variances = {}
    for camera in ("scmos", "emccd"):
        frames, _ = _run(make_params(camera=camera, **base))
        variances[camera] = float(frames.astype(float).var())
    assert variances["emccd"] / variances["scmos"] == pytest.approx(2.0, rel=0.03)


def test_jpeg_frames_differ_from_the_raw_ones_but_keep_the_spots() -> None:
    base = {"frames": 2, "seed": 4, "populations": [Population(concentration_per_ml=1e9)]}
    raw, _ = _run(make_params(**base))
    jpeg, _ = _run(make_params(jpeg_quality=50, **base))
    diff = np.abs(raw.astype(float) - jpeg.astype(float))
    assert diff.mean() > 0.3  # block artefacts and smoothed noise
    bright = raw > np.percentile(raw, 99.9)
    # the spots survive: their bright pixels keep their level to within the 8x8 blocks' coarse
    # quantisation of fine detail (a 1.5 px spot loses some of its peak), not lost in the noise
    assert jpeg[bright].mean() == pytest.approx(raw[bright].mean(), rel=0.2)
    assert np.corrcoef(raw.ravel(), jpeg.ravel())[0, 1] > 0.8
