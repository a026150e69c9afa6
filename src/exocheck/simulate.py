"""Ground-truth NTA video synthesis: exocheck's test bench.

The simulator makes videos of the kind a NanoSight-class instrument records, from particles whose
sizes, positions and concentration are known, so that every accuracy claim of the analysis can be
checked against the truth.

Physics modelled
----------------
* **Brownian motion in 3-D** with the Stokes–Einstein coefficient at the sample temperature
  (:func:`exocheck.physics.diffusion_um2_s`), in a box larger than the field of view with
  reflecting walls, so particles drift in and out of the field and of the light sheet; the number of
  particles in the box is Poisson-distributed around concentration × box volume.
* **Light sheet** of finite thickness along z: the illumination intensity is Gaussian in z with full
  width at half maximum ``sheet_fwhm_um``.
* **Brightness** proportional to the Mie scattering cross-section of each particle
  (:func:`exocheck.physics.scattering_cross_section_nm2`) at the laser wavelength, for its own
  refractive index in the medium.
* **Point-spread function**: a Gaussian of in-focus width ``psf_sigma_um`` that widens out of focus as
  σ(z) = σ₀ √(1 + (z / z_R)²) with ``defocus_um`` = z_R, conserving the photons collected (so an
  out-of-focus particle is wider and dimmer). Pixel values integrate the PSF over the pixel area.
* **Motion blur**: each frame integrates the particle's light over the exposure time, sampled at
  ``blur_substeps`` instants inside the exposure.
* **Camera**: static background with a slow illumination gradient, shot noise (Poisson), read noise
  (Gaussian), gain, offset, and 8-bit quantisation that saturates at 255.
* **Drift**: an optional uniform flow (vx, vy) in µm/s shared by all particles.
* **Fluorescence** (``mode: fluorescence``): each population has a labelled fraction (optionally
  depending on size); a labelled particle carries fluorophores, in proportion to its membrane area
  for a membrane dye or a few Poisson-distributed antibody copies. The camera sees behind a
  long-pass filter: the fluorophores' photons, and a small share (``filter_leakage``) of the
  scattered light. Each fluorophore bleaches at a rate proportional to the light it is in
  (``bleach_half_life_s`` at the sheet's centre); particles that touch the box's walls are
  exchanged with the unlit reservoir, so fresh particles keep arriving. Free label is a
  population whose refractive index equals the medium's (it scatters nothing) with every particle
  labelled. The same seed gives the same particles (sizes, labels) in a scatter and a fluorescence
  capture, at independent positions: two sequential recordings of one sample.

Populations are monodisperse (with an optional coefficient of variation) or lognormal, each with its
own refractive index and number concentration; a scenario can mix any number of them. The output is
deterministic for a given seed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy.special import erf

from exocheck import __version__
from exocheck.errors import ParameterError
from exocheck.physics import diffusion_um2_s, scattering_cross_section_nm2

_CHUNK_FRAMES = 16  # frames rendered at once; fixed so results do not depend on memory settings
_PSF_RADII = np.array([3, 5, 8, 12, 18, 26])  # render window half-sizes, px


class Population(BaseModel):
    """One population of particles in a sample.

    Attributes
    ----------
    name : str
        Label carried into the ground truth.
    distribution : {"monodisperse", "lognormal"}
        ``monodisperse``: Gaussian sizes around ``diameter_nm`` with coefficient of variation ``cv``
        (0 = identical spheres; bead standards are typically 0.02–0.05). ``lognormal``: median
        ``diameter_nm`` and geometric standard deviation ``gsd`` (EV preparations typically
        1.3–1.6).
    diameter_nm : float
        Mean (monodisperse) or median (lognormal) diameter, nm. Typical: 100 (beads), 110 (EVs).
    cv : float
        Coefficient of variation for monodisperse populations. Typical 0.03.
    gsd : float
        Geometric standard deviation for lognormal populations. Typical 1.35.
    refractive_index : float
        Particle refractive index at the laser wavelength: 1.59 polystyrene, 1.46 silica,
        1.37–1.40 extracellular vesicles.
    concentration_per_ml : float
        Number concentration in the measured suspension. NTA works best at 1e7–1e9 per mL
        (about 20–100 particles per frame).
    min_diameter_nm : float
        Sizes below this are redrawn (no physical particle is smaller). Default 20.
    labelled_fraction : float
        Share of the particles that carry the label (0-1), at ``diameter_nm`` when
        ``labelled_fraction_exponent`` is not 0. Default 0.
    labelled_fraction_exponent : float
        Size dependence of labelling: a particle of diameter d is labelled with probability
        ``min(1, labelled_fraction · (d / diameter_nm) ** exponent)``. 0: independent of size;
        2: proportional to membrane area.
    label : {"dye", "antibody"}
        ``dye``: a membrane dye, Poisson-distributed fluorophores with mean
        ``fluorophores_per_um2`` × membrane area (π d²). ``antibody``: a zero-truncated Poisson
        number of copies with mean ``antibodies_mean``, each carrying
        ``fluorophores_per_antibody`` fluorophores.
    fluorophores_per_um2 : float
        Dye density on the membrane, fluorophores per µm². Default 2000 (≈ 63 on a 100 nm vesicle).
    antibodies_mean : float
        Mean antibody copies per labelled particle before truncation at 1. Default 3.
    fluorophores_per_antibody : float
        Fluorophores per antibody (degree of labelling). Default 4.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = "sample"
    distribution: Literal["monodisperse", "lognormal"] = "monodisperse"
    diameter_nm: float = Field(100.0, gt=1.0, le=20000.0)
    cv: float = Field(0.0, ge=0.0, lt=1.0)
    gsd: float = Field(1.35, ge=1.0, le=5.0)
    refractive_index: float = Field(1.59, gt=1.0, le=4.0)
    concentration_per_ml: float = Field(3e8, gt=0.0, le=1e12)
    min_diameter_nm: float = Field(20.0, gt=0.0)
    labelled_fraction: float = Field(0.0, ge=0.0, le=1.0)
    labelled_fraction_exponent: float = Field(0.0, ge=-6.0, le=6.0)
    label: Literal["dye", "antibody"] = "dye"
    fluorophores_per_um2: float = Field(2000.0, gt=0.0)
    antibodies_mean: float = Field(3.0, gt=0.0, le=1000.0)
    fluorophores_per_antibody: float = Field(4.0, gt=0.0, le=100.0)

    def labelled_probability(self, diameter_nm: np.ndarray) -> np.ndarray:
        """Probability that a particle of each diameter carries the label."""
        ratio = np.asarray(diameter_nm, float) / self.diameter_nm
        return np.clip(self.labelled_fraction * ratio**self.labelled_fraction_exponent, 0.0, 1.0)

    def sample_fluorophores(self, rng: np.random.Generator, diameter_nm: np.ndarray) -> np.ndarray:
        """Fluorophores on each of the labelled particles of diameters ``diameter_nm``."""
        if self.label == "dye":
            area_um2 = np.pi * (np.asarray(diameter_nm, float) / 1000.0) ** 2
            return np.maximum(rng.poisson(self.fluorophores_per_um2 * area_um2), 1)
        copies = np.zeros(diameter_nm.size, dtype=np.int64)
        todo = np.arange(diameter_nm.size)
        while todo.size:  # zero-truncated: a labelled particle carries at least one antibody
            draw = rng.poisson(self.antibodies_mean, todo.size)
            copies[todo] = draw
            todo = todo[draw == 0]
        return rng.poisson(self.fluorophores_per_antibody * copies).clip(1, None)

    def sample_diameters_nm(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` diameters from this population."""
        out = np.empty(n)
        todo = np.arange(n)
        while todo.size:
            if self.distribution == "lognormal":
                draw = self.diameter_nm * np.exp(
                    math.log(self.gsd) * rng.standard_normal(todo.size)
                )
            else:
                draw = self.diameter_nm * (1.0 + self.cv * rng.standard_normal(todo.size))
            out[todo] = draw
            todo = todo[draw < self.min_diameter_nm]
        return out


def fluorescent_beads(
    concentration_per_ml: float,
    diameter_nm: float = 100.0,
    fluorophores_per_um2: float = 2000.0,
    refractive_index: float = 1.59,
    cv: float = 0.03,
) -> Population:
    """A fluorescent bead standard of known concentration, to calibrate a fluorescence channel.

    Every bead carries dye over its surface (Poisson fluorophores, ``fluorophores_per_um2`` × π d²)
    and scatters as its material does (polystyrene 1.59): through the emission filter it is seen
    by its fluorescence, as a lab's fluorescent standard is.
    """
    return Population(
        name="fluorescent beads",
        distribution="monodisperse",
        diameter_nm=diameter_nm,
        cv=cv,
        refractive_index=refractive_index,
        concentration_per_ml=concentration_per_ml,
        labelled_fraction=1.0,
        label="dye",
        fluorophores_per_um2=fluorophores_per_um2,
    )


class SimulationParams(BaseModel):
    """Every setting of a simulated NTA recording, with typical NanoSight-class defaults.

    Attributes
    ----------
    populations : list of Population
        What is in the sample. Default: 100 nm polystyrene beads at 3e8 per mL.
    frames : int
        Number of frames. A standard NanoSight capture is 60 s at 25–30 fps (1500–1800 frames).
    fps : float
        Frame rate, frames per second. Typical 25–30.
    exposure_ms : float
        Camera exposure (shutter) time per frame, ms; at most 1000/fps. Typical 10–30.
    width_px, height_px : int
        Image size, pixels. Typical 640 × 480 (NanoSight sCMOS binned / ZetaView).
    pixel_size_um : float
        Object-side pixel size, µm. NanoSight LM10/NS300 with 20× objective: ≈ 0.166.
    temperature_c : float
        Sample temperature, °C. Typical 22–25 (room) or 37.
    viscosity_mpa_s : float or None
        Medium viscosity, mPa·s; water at the temperature when None.
    wavelength_nm : float
        Laser vacuum wavelength, nm. Typical 405, 488, 532 or 642.
    medium_index : float
        Refractive index of the medium. Water/PBS: 1.333.
    sheet_fwhm_um : float
        Full width at half maximum of the illumination profile along z, µm. Typical 5–20.
    sheet_profile : {"gaussian", "flat-top"}
        Shape of the illumination along z, with full width at half maximum ``sheet_fwhm_um``:
        ``gaussian``, or ``flat-top`` (a super-Gaussian of order 8, ``exp(-ln 2 (2z/FWHM)^8)``,
        as a sheet shaped by a slit or a top-hat beam shaper gives).
    psf_sigma_um : float
        Standard deviation of the in-focus Gaussian PSF, µm (≈ 0.21 λ/NA, plus camera blur).
        Typical 0.2–0.4 for a 20×/0.4 objective.
    defocus_um : float
        Defocus length z_R: the PSF width grows by √2 at |z| = z_R, µm. Typical 2–5.
    photons_per_nm2 : float
        Photons collected per frame per nm² of scattering cross-section from a particle at the
        centre of the sheet, for the whole exposure. Sets the laser power × collection efficiency. At the
        default, a 100 nm polystyrene bead gives ≈ 2900 photons per frame.
    gain : float
        Camera counts per photon (the camera level / gain setting). Typical 0.5–4.
    background_photons : float
        Mean background (stray light, out-of-focus scatter) per pixel per frame, photons.
    background_gradient : float
        Relative amplitude of a smooth illumination gradient across the background (0 = flat).
    read_noise_counts : float
        Camera read noise, counts (standard deviation). Typical 1–3.
    offset_counts : float
        Camera black level, counts.
    drift_um_s : tuple of float
        Uniform flow (vx, vy) of the whole sample, µm/s. 0 for a still cell; a few µm/s is common.
    blur_substeps : int
        Instants sampled within the exposure to model motion blur. 8 is ample.
    visibility_snr : float
        A particle counts as visible in a frame (ground truth) when it is in the field of view and
        its noise-free peak above background is at least this many noise standard deviations.
    seed : int
        Random seed; the same seed gives the same video and truth.
    mode : {"scatter", "fluorescence"}
        What the camera records: scattered light, or fluorescence behind a long-pass filter.
    photons_per_fluorophore : float
        Photons collected per frame from one fluorophore at the sheet's centre, in focus.
        Default 30.
    bleach_half_life_s : float or None
        Half-life of a fluorophore under the light at the sheet's centre, s (None: no bleaching).
        Typical 1-20 s.
    filter_leakage : float
        Share of the scattered photons the emission filter lets through (0-1). Typical 1e-4-1e-3.
    filter_wavelength_nm : float
        Edge of the long-pass emission filter, nm (recorded in the truth and the video's notes).
    fluorescence : dict
        Settings that differ in the fluorescence capture (e.g. ``gain``, ``background_photons``,
        ``fps``, ``frames``), applied by :meth:`for_mode`; the sample stays the same.
    camera : {"scmos", "emccd"}
        ``scmos``: shot noise plus read noise. ``emccd``: the electron-multiplying register
        adds the excess noise factor √2 (each photo-electron's gain is exponentially distributed;
        the counts are ``gain`` × a gamma draw of the electrons).
    ring_um_per_um : float
        Out-of-focus rings: 0 (default) draws a Gaussian spot that widens with defocus. Above 0, a
        particle at height z is drawn as a ring of radius ``ring_um_per_um`` × |z| (twelve spots of
        the in-focus width on a circle, plus a tenth of the light at the centre), the look of a
        defocused large bead on a wide-field microscope.
    jpeg_quality : int or None
        Each frame is JPEG-compressed at this quality (1–95) and decoded again (block artefacts,
        smeared dim spots); None (default) leaves frames as recorded.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    populations: list[Population] = Field(default_factory=lambda: [Population()], min_length=1)
    frames: int = Field(300, ge=2, le=1_000_000)
    fps: float = Field(30.0, gt=0.0, le=10_000.0)
    exposure_ms: float = Field(15.0, gt=0.0)
    width_px: int = Field(640, ge=16, le=8192)
    height_px: int = Field(480, ge=16, le=8192)
    pixel_size_um: float = Field(0.166, gt=0.0, le=100.0)
    temperature_c: float = Field(25.0, ge=-10.0, le=100.0)
    viscosity_mpa_s: float | None = Field(None, gt=0.0)
    wavelength_nm: float = Field(488.0, ge=200.0, le=2000.0)
    medium_index: float = Field(1.333, gt=1.0, le=3.0)
    sheet_fwhm_um: float = Field(8.0, gt=0.0)
    sheet_profile: Literal["gaussian", "flat-top"] = "gaussian"
    psf_sigma_um: float = Field(0.25, gt=0.0)
    defocus_um: float = Field(3.0, gt=0.0)
    photons_per_nm2: float = Field(20.0, gt=0.0)
    gain: float = Field(1.0, gt=0.0)
    background_photons: float = Field(12.0, ge=0.0)
    background_gradient: float = Field(0.2, ge=0.0, le=1.0)
    read_noise_counts: float = Field(2.0, ge=0.0)
    offset_counts: float = Field(8.0, ge=0.0, le=255.0)
    drift_um_s: tuple[float, float] = (0.0, 0.0)
    blur_substeps: int = Field(8, ge=1, le=64)
    visibility_snr: float = Field(2.0, gt=0.0)
    seed: int = 0
    mode: Literal["scatter", "fluorescence"] = "scatter"
    photons_per_fluorophore: float = Field(30.0, gt=0.0)
    bleach_half_life_s: float | None = Field(None, gt=0.0)
    filter_leakage: float = Field(0.0, ge=0.0, le=1.0)
    filter_wavelength_nm: float = Field(500.0, ge=200.0, le=2000.0)
    fluorescence: dict[str, Any] = Field(default_factory=dict)
    camera: Literal["scmos", "emccd"] = "scmos"
    ring_um_per_um: float = Field(0.0, ge=0.0, le=5.0)
    jpeg_quality: int | None = Field(None, ge=1, le=95)

    def for_mode(self, mode: Literal["scatter", "fluorescence"]) -> SimulationParams:
        """The same sample recorded in ``mode``, with the ``fluorescence`` settings applied."""
        data = self.model_dump()
        if mode == "fluorescence":
            unknown = sorted(set(self.fluorescence) - set(type(self).model_fields))
            if unknown or "populations" in self.fluorescence or "seed" in self.fluorescence:
                bad = ", ".join(unknown) or "populations/seed"
                raise ParameterError(f"fluorescence: cannot set {bad} for the fluorescence capture")
            data.update(self.fluorescence)
        data["mode"] = mode
        return make_params(source="fluorescence settings", **data)

    @model_validator(mode="after")
    def _exposure_fits_frame(self) -> SimulationParams:
        if self.exposure_ms > 1000.0 / self.fps + 1e-9:
            raise ValueError(
                f"exposure_ms={self.exposure_ms} is longer than a frame (1000/fps = "
                f"{1000.0 / self.fps:.3g} ms)"
            )
        return self

    @property
    def noise_sd_counts(self) -> float:
        """Standard deviation of a background pixel, counts."""
        return math.sqrt(self.gain**2 * self.background_photons + self.read_noise_counts**2)


def params_from_scenario(path: str | Path, **overrides: Any) -> SimulationParams:
    """Read a scenario YAML file (keys of :class:`SimulationParams`), then apply ``overrides``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read scenario ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ParameterError(f"{path}: invalid YAML{where}") from None
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: a scenario must be a mapping of settings")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return make_params(source=str(path), **data)


def make_params(source: str = "arguments", **settings: Any) -> SimulationParams:
    """Validate settings into :class:`SimulationParams`, with a one-line error on bad values."""
    try:
        return SimulationParams(**settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        if source == "arguments" and err["loc"]:  # named as the option the user typed
            raise ParameterError(f"--{loc.replace('_', '-')}: {err['msg']}") from None
        raise ParameterError(f"{source}: {loc}: {err['msg']}") from None


def make_population(**settings: Any) -> Population:
    """Validate one population, with a one-line error naming the offending option."""
    try:
        return Population(**settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).replace("_", "-") if err["loc"] else "population"
        raise ParameterError(f"--{name}: {err['msg']}") from None


class _Particles:
    """Positions and properties of all particles in the simulation box (µm, box coordinates)."""

    def __init__(
        self,
        params: SimulationParams,
        rng: np.random.Generator,
        label_rng: np.random.Generator,
        position_rng: np.random.Generator,
    ) -> None:
        p = params
        sigma_max_um = p.psf_sigma_um * math.sqrt(1 + (3 * p.sheet_fwhm_um / p.defocus_um) ** 2)
        self.margin_um = max(4 * sigma_max_um, 3.0)
        self.lo = np.array([-self.margin_um, -self.margin_um, -1.5 * p.sheet_fwhm_um])
        self.hi = np.array(
            [
                p.width_px * p.pixel_size_um + self.margin_um,
                p.height_px * p.pixel_size_um + self.margin_um,
                1.5 * p.sheet_fwhm_um,
            ]
        )
        self.box_volume_ml = float(np.prod(self.hi - self.lo)) * 1e-12
        diam, ri, pop = [], [], []
        self.realised_per_ml: list[float] = []
        for k, population in enumerate(p.populations):
            n = int(rng.poisson(population.concentration_per_ml * self.box_volume_ml))
            diam.append(population.sample_diameters_nm(rng, n))
            ri.append(np.full(n, population.refractive_index))
            pop.append(np.full(n, k))
            self.realised_per_ml.append(n / self.box_volume_ml)
        self.diameter_nm = np.concatenate(diam)
        self.refractive_index = np.concatenate(ri)
        self.population = np.concatenate(pop)
        self.n = self.diameter_nm.size
        # Positions from their own stream: a fluorescence capture of the same sample has the same
        # particles (sizes, labels) at independent positions, as a later recording would.
        self.pos = self.lo + (self.hi - self.lo) * position_rng.random((self.n, 3))
        self.labelled = np.zeros(self.n, dtype=bool)
        self.fluorophores = np.zeros(self.n, dtype=np.int64)
        for k, population in enumerate(p.populations):
            sel = np.nonzero(self.population == k)[0]
            chance = population.labelled_probability(self.diameter_nm[sel])
            hit = sel[label_rng.random(sel.size) < chance]
            self.labelled[hit] = True
            self.fluorophores[hit] = population.sample_fluorophores(
                label_rng, self.diameter_nm[hit]
            )
        self.lit_fluorophores = self.fluorophores.copy()  # not yet bleached
        self.d_um2_s = (
            np.asarray(diffusion_um2_s(self.diameter_nm, p.temperature_c, p.viscosity_mpa_s))
            if self.n
            else np.zeros(0)
        )
        # photons collected per frame at the sheet centre, in focus
        csca = np.zeros(self.n)
        for k, population in enumerate(p.populations):
            sel = self.population == k
            if sel.any():
                csca[sel] = scattering_cross_section_nm2(
                    self.diameter_nm[sel],
                    population.refractive_index,
                    p.medium_index,
                    p.wavelength_nm,
                )
        self.photons = csca * p.photons_per_nm2

    def step(self, dt_s: float, rng: np.random.Generator) -> np.ndarray | None:
        """Advance by one Brownian step of ``dt_s`` seconds with reflecting walls.

        Returns which particles touched a wall (None when nothing moved).
        """
        if self.n == 0 or dt_s <= 0:
            return None
        scale = np.sqrt(2.0 * self.d_um2_s * dt_s)[:, None]
        self.pos += scale * rng.standard_normal((self.n, 3))
        span = self.hi - self.lo
        touched = ((self.pos < self.lo) | (self.pos > self.hi)).any(axis=1)
        rel = np.mod(self.pos - self.lo, 2 * span)  # reflect: fold into [0, 2 span)
        self.pos = self.lo + np.where(rel > span, 2 * span - rel, rel)
        return touched

    def bleach(
        self,
        dt_s: float,
        rate_per_s: float,
        illumination: np.ndarray,
        touched: np.ndarray | None,
        rng: np.random.Generator,
    ) -> None:
        """Bleach fluorophores for ``dt_s`` in the light; exchange wall-touching particles.

        A particle that reaches the box's wall leaves the lit region for the reservoir, which is
        far larger: the one that comes back in its place is unbleached.
        """
        if touched is not None:
            self.lit_fluorophores[touched] = self.fluorophores[touched]
        if rate_per_s > 0 and dt_s > 0:
            lit = np.nonzero(self.lit_fluorophores)[0]
            survive = np.exp(-rate_per_s * illumination[lit] * dt_s)
            self.lit_fluorophores[lit] = rng.binomial(self.lit_fluorophores[lit], survive)


def _render(
    shape: tuple[int, int, int],
    frame_idx: np.ndarray,
    x_px: np.ndarray,
    y_px: np.ndarray,
    sigma_px: np.ndarray,
    photons: np.ndarray,
) -> np.ndarray:
    """Expected photons per pixel for Gaussian spots integrated over pixel areas."""
    n_frames, height, width = shape
    # Drop spots whose peak is negligible against any camera noise, and cut each window where the
    # Gaussian tail falls below 0.01 photon per pixel.
    peak = photons / (2.0 * np.pi * sigma_px**2)
    keep = peak > 0.01
    frame_idx, x_px, y_px, sigma_px, photons, peak = (
        a[keep] for a in (frame_idx, x_px, y_px, sigma_px, photons, peak)
    )
    flat_parts, weight_parts = [], []
    reach = sigma_px * np.sqrt(2.0 * np.log(peak / 0.01)) + 1.0
    radius = _PSF_RADII[np.minimum(np.searchsorted(_PSF_RADII, reach), _PSF_RADII.size - 1)]
    for r in np.unique(radius):
        sel = radius == r
        offsets = np.arange(-r, r + 1)
        cx = np.rint(x_px[sel])[:, None] + offsets
        cy = np.rint(y_px[sel])[:, None] + offsets
        s = (math.sqrt(2.0) * sigma_px[sel])[:, None]
        ex = 0.5 * (erf((cx + 0.5 - x_px[sel, None]) / s) - erf((cx - 0.5 - x_px[sel, None]) / s))
        ey = 0.5 * (erf((cy + 0.5 - y_px[sel, None]) / s) - erf((cy - 0.5 - y_px[sel, None]) / s))
        values = photons[sel, None, None] * ey[:, :, None] * ex[:, None, :]
        inside = ((cy >= 0) & (cy < height))[:, :, None] & ((cx >= 0) & (cx < width))[:, None, :]
        flat = (frame_idx[sel, None, None] * height + cy[:, :, None]) * width + cx[:, None, :]
        flat_parts.append(flat[inside].astype(np.int64))
        weight_parts.append(values[inside])
    if not flat_parts:
        return np.zeros(shape, dtype=np.float32)
    image = np.bincount(
        np.concatenate(flat_parts),
        np.concatenate(weight_parts),
        minlength=n_frames * height * width,
    )
    return image.astype(np.float32).reshape(shape)


_RING_POINTS = 12


def _ring_spots(
    frame_idx: np.ndarray,
    x_px: np.ndarray,
    y_px: np.ndarray,
    sigma_px: np.ndarray,
    photons: np.ndarray,
    radius_px: np.ndarray,
    sigma0_px: float,
) -> tuple[np.ndarray, ...]:
    """Spots drawn as rings: where the ring radius exceeds the in-focus width, each spot becomes
    :data:`_RING_POINTS` spots of the in-focus width on a circle plus a tenth of its light at
    the centre (with its widened width); closer to focus it stays one spot."""
    ring = radius_px > sigma0_px
    angles = 2 * np.pi * np.arange(_RING_POINTS) / _RING_POINTS
    r = radius_px[ring, None]
    parts = [
        (frame_idx[~ring], x_px[~ring], y_px[~ring], sigma_px[~ring], photons[~ring]),
        (frame_idx[ring], x_px[ring], y_px[ring], sigma_px[ring], 0.1 * photons[ring]),
        (
            np.repeat(frame_idx[ring], _RING_POINTS),
            (x_px[ring, None] + r * np.cos(angles)).ravel(),
            (y_px[ring, None] + r * np.sin(angles)).ravel(),
            np.full(int(ring.sum()) * _RING_POINTS, sigma0_px),
            np.repeat(0.9 * photons[ring] / _RING_POINTS, _RING_POINTS),
        ),
    ]
    return tuple(np.concatenate([part[k] for part in parts]) for k in range(5))


def _peak_per_photon(sigma_px: np.ndarray, radius_px: np.ndarray, sigma0_px: float) -> np.ndarray:
    """Highest value of a drawn spot per photon, as :func:`_ring_spots` draws it.

    A Gaussian spot of width ``sigma_px`` peaks at 1/(2πσ²). A ring (radius over the in-focus
    width) is :data:`_RING_POINTS` spots of the in-focus width plus a tenth of the light at the
    centre: its highest value is at a point of the ring or at the centre, whichever is higher,
    each with the light of its neighbours added. Visibility in the ground truth is judged on it,
    not on a Gaussian's peak, which a ring of the same light does not reach.
    """
    sigma = np.asarray(sigma_px, float)
    radius = np.asarray(radius_px, float)
    gauss = 1.0 / (2.0 * np.pi * sigma**2)
    ring = radius > sigma0_px
    if not ring.any():  # no rings (the default optics): nothing more to compute
        return gauss
    point = 0.9 / _RING_POINTS / (2.0 * np.pi * sigma0_px**2)
    # distances from one point of the ring to every point, and from the centre to each
    chord = 2.0 * radius[..., None] * np.sin(np.pi * np.arange(_RING_POINTS) / _RING_POINTS)
    on_ring = point * np.exp(-(chord**2) / (2.0 * sigma0_px**2)).sum(
        axis=-1
    ) + 0.1 * gauss * np.exp(-(radius**2) / (2.0 * sigma**2))
    at_centre = 0.1 * gauss + _RING_POINTS * point * np.exp(-(radius**2) / (2.0 * sigma0_px**2))
    return np.where(ring, np.maximum(on_ring, at_centre), gauss)


def _jpeg(frames: np.ndarray, quality: int) -> np.ndarray:
    """Each 8-bit frame JPEG-compressed at ``quality`` and decoded again."""
    import io

    from PIL import Image

    out = np.empty_like(frames)
    for k, frame in enumerate(frames):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        out[k] = np.asarray(Image.open(buffer).convert("L"))
    return out


def _background(params: SimulationParams) -> np.ndarray:
    """Smooth static background, photons per pixel (a broad stray-light lobe across the field)."""
    p = params
    yy, xx = np.mgrid[0 : p.height_px, 0 : p.width_px]
    lobe = np.exp(
        -(((xx - 0.35 * p.width_px) / (0.6 * p.width_px)) ** 2)
        - (((yy - 0.6 * p.height_px) / (0.8 * p.height_px)) ** 2)
    )
    bg = p.background_photons * (1.0 + p.background_gradient * (lobe - lobe.mean()))
    return bg.astype(np.float32)


def _sheet_light(params: SimulationParams, z_um: np.ndarray) -> np.ndarray:
    """Relative illumination of the light sheet at ``z_um`` (1 at its centre)."""
    order = 1 if params.sheet_profile == "gaussian" else 4  # exponent (2z/FWHM)^(2·order)
    return np.exp(-math.log(2.0) * (2.0 * z_um / params.sheet_fwhm_um) ** (2 * order))


class Simulation:
    """A simulated recording: iterate :meth:`chunks` for frames; truth accumulates as it goes.

    Use :func:`simulate` to write a video and its truth to a folder.
    """

    def __init__(self, params: SimulationParams) -> None:
        self.params = params
        # independent streams: the particles' motion does not depend on how noise is drawn; labels
        # and bleaching have their own streams, so a scatter capture is the same with or without
        # them; a fluorescence capture moves the same particles along other paths
        motion, noise, label, other_motion, bleach = np.random.SeedSequence(params.seed).spawn(5)
        self._rng = np.random.default_rng(motion)
        self._noise_rng = np.random.default_rng(noise)
        self._bleach_rng = np.random.default_rng(bleach)
        fluorescence = params.mode == "fluorescence"
        positions = np.random.default_rng(other_motion) if fluorescence else self._rng
        self.particles = _Particles(params, self._rng, np.random.default_rng(label), positions)
        self._rng = positions
        n = self.particles.n
        self.frames_visible = np.zeros(n, dtype=np.int64)
        self.first_frame = np.full(n, -1, dtype=np.int64)
        self.last_frame = np.full(n, -1, dtype=np.int64)
        self.max_snr = np.zeros(n)
        self.in_fov_frames = np.zeros(n, dtype=np.int64)
        self.track_rows: list[pd.DataFrame] = []

    def chunks(self) -> Iterator[np.ndarray]:
        """Yield uint8 frame chunks [n, height, width] and record the ground truth."""
        p = self.params
        part = self.particles
        rng = self._rng
        frame_s = 1.0 / p.fps
        exposure_s = p.exposure_ms / 1000.0
        k_sub = p.blur_substeps
        sub_s = exposure_s / k_sub
        gap_s = frame_s - (k_sub - 1) * sub_s
        background = _background(p)
        sigma0_px = p.psf_sigma_um / p.pixel_size_um
        noise_sd = p.noise_sd_counts
        drift = np.array(p.drift_um_s, dtype=float)
        fluorescence = p.mode == "fluorescence"
        bleach_rate = math.log(2.0) / p.bleach_half_life_s if p.bleach_half_life_s else 0.0

        def advance(dt_s: float) -> None:
            touched = part.step(dt_s, rng)
            if fluorescence:
                z = part.pos[:, 2]
                light = _sheet_light(p, z)
                part.bleach(dt_s, bleach_rate, light, touched, self._bleach_rng)

        # first substep of frame 0 sits half a substep into the exposure
        advance(0.5 * sub_s)
        for start in range(0, p.frames, _CHUNK_FRAMES):
            n_f = min(_CHUNK_FRAMES, p.frames - start)
            subs = np.empty((n_f, k_sub, part.n, 3))
            lit = np.empty((n_f, k_sub, part.n)) if fluorescence else None
            for f in range(n_f):
                for k in range(k_sub):
                    if f or k or start:
                        advance(gap_s if k == 0 else sub_s)
                    subs[f, k] = part.pos
                    if lit is not None:
                        lit[f, k] = part.lit_fluorophores
            times = (start + np.arange(n_f))[:, None] * frame_s + (np.arange(k_sub) + 0.5) * sub_s
            x_um = subs[..., 0] + drift[0] * times[:, :, None]
            y_um = subs[..., 1] + drift[1] * times[:, :, None]
            z_um = subs[..., 2]
            illumination = _sheet_light(p, z_um)
            sigma_px = sigma0_px * np.sqrt(1.0 + (z_um / p.defocus_um) ** 2)
            if lit is None:
                photons = part.photons[None, None, :] * illumination / k_sub
            else:  # behind the long-pass filter: fluorescence plus the scatter that leaks through
                emitted = lit * p.photons_per_fluorophore + p.filter_leakage * part.photons
                photons = emitted * illumination / k_sub
            fidx = np.broadcast_to(np.arange(n_f)[:, None, None], photons.shape)
            spots = (
                fidx.ravel(),
                (x_um / p.pixel_size_um).ravel(),
                (y_um / p.pixel_size_um).ravel(),
                sigma_px.ravel(),
                photons.ravel(),
            )
            if p.ring_um_per_um > 0:
                spots = _ring_spots(
                    *spots, np.abs(z_um).ravel() * p.ring_um_per_um / p.pixel_size_um, sigma0_px
                )
            expected = _render((n_f, p.height_px, p.width_px), *spots)
            self._record_truth(start, x_um, y_um, z_um, photons, sigma_px, noise_sd)
            signal = expected
            counts = self._camera(signal, background, self._noise_rng)
            if p.jpeg_quality is not None:
                counts = _jpeg(counts, p.jpeg_quality)
            yield counts

    def _camera(
        self, signal: np.ndarray, background: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        p = self.params
        lam = signal + background[None]
        # Shot noise and read noise in one Gaussian draw of variance gain²·λ + read² (the normal
        # limit of Poisson statistics, accurate for the >= ~10 photons per pixel of a lit NTA
        # background); exact Poisson where particles add light.
        excess = 2.0 if p.camera == "emccd" else 1.0  # EM register: excess noise factor² = 2
        counts = np.sqrt(excess * p.gain**2 * lam + p.read_noise_counts**2)
        counts *= rng.standard_normal(lam.shape, dtype=np.float32)
        counts += p.gain * lam
        lit = signal > 0.5
        n_lit = int(lit.sum())
        electrons = rng.poisson(lam[lit]).astype(float)
        if p.camera == "emccd":  # each electron's gain exponential: the sum is a gamma draw
            electrons = np.where(electrons > 0, rng.gamma(np.maximum(electrons, 1.0)), 0.0)
        counts[lit] = p.gain * electrons + p.read_noise_counts * rng.standard_normal(n_lit)
        counts += p.offset_counts
        np.rint(counts, out=counts)
        np.clip(counts, 0, 255, out=counts)
        return counts.astype(np.uint8)

    def _record_truth(
        self,
        start: int,
        x_um: np.ndarray,
        y_um: np.ndarray,
        z_um: np.ndarray,
        photons: np.ndarray,
        sigma_px: np.ndarray,
        noise_sd: float,
    ) -> None:
        p = self.params
        k_sub = p.blur_substeps
        # exposure-averaged position (what an ideal localiser sees) and noise-free peak height
        x_px = x_um.mean(axis=1) / p.pixel_size_um
        y_px = y_um.mean(axis=1) / p.pixel_size_um
        z_mean = z_um.mean(axis=1)
        sigma0_px = p.psf_sigma_um / p.pixel_size_um
        radius_px = np.abs(z_um) * p.ring_um_per_um / p.pixel_size_um
        per_photon = _peak_per_photon(sigma_px, radius_px, sigma0_px)
        peak = (p.gain * photons * k_sub * per_photon).mean(axis=1)
        snr = peak / noise_sd if noise_sd > 0 else np.full_like(peak, np.inf)
        in_fov = (x_px >= 0) & (x_px <= p.width_px - 1) & (y_px >= 0) & (y_px <= p.height_px - 1)
        visible = in_fov & (snr >= p.visibility_snr)
        frames = start + np.arange(x_px.shape[0])
        self.in_fov_frames += in_fov.sum(axis=0)
        self.frames_visible += visible.sum(axis=0)
        self.max_snr = np.maximum(self.max_snr, np.where(in_fov, snr, 0.0).max(axis=0))
        any_vis = visible.any(axis=0)
        first = np.where(visible, frames[:, None], np.iinfo(np.int64).max).min(axis=0)
        last = np.where(visible, frames[:, None], -1).max(axis=0)
        new = any_vis & (self.first_frame < 0)
        self.first_frame[new] = first[new]
        self.last_frame[any_vis] = last[any_vis]
        f_idx, p_idx = np.nonzero(visible)
        if f_idx.size:
            self.track_rows.append(
                pd.DataFrame(
                    {
                        "frame": frames[f_idx].astype(np.int32),
                        "particle": p_idx.astype(np.int32),
                        "x": x_px[f_idx, p_idx],
                        "y": y_px[f_idx, p_idx],
                        "z_um": z_mean[f_idx, p_idx],
                        "snr": snr[f_idx, p_idx],
                    }
                )
            )

    def truth(self) -> dict[str, Any]:
        """The ground truth: parameters, realised concentrations and every visible particle."""
        p = self.params
        part = self.particles
        visible = np.nonzero(self.frames_visible > 0)[0]
        particles = [
            {
                "id": int(i),
                "population": p.populations[int(part.population[i])].name,
                "diameter_nm": float(part.diameter_nm[i]),
                "refractive_index": float(part.refractive_index[i]),
                "d_um2_s": float(part.d_um2_s[i]),
                "first_frame": int(self.first_frame[i]),
                "last_frame": int(self.last_frame[i]),
                "frames_visible": int(self.frames_visible[i]),
                "max_snr": float(self.max_snr[i]),
                "labelled": bool(part.labelled[i]),
                "fluorophores": int(part.fluorophores[i]),
            }
            for i in visible
        ]
        scattering = [pop.refractive_index != p.medium_index for pop in p.populations]
        all_d = part.diameter_nm
        return {
            "schema": "exocheck.simulation-truth/1",
            "exocheck_version": __version__,
            "params": json.loads(p.model_dump_json()),
            "concentration_per_ml": float(sum(part.realised_per_ml)),
            "nominal_concentration_per_ml": float(
                sum(x.concentration_per_ml for x in p.populations)
            ),
            "populations": [
                {
                    "name": pop.name,
                    "concentration_per_ml": float(part.realised_per_ml[k]),
                    "n_in_box": int(np.sum(part.population == k)),
                    "labelled_fraction": (
                        float(part.labelled[part.population == k].mean())
                        if np.any(part.population == k)
                        else None
                    ),
                    "scatters": scattering[k],
                }
                for k, pop in enumerate(p.populations)
            ],
            "mode": p.mode,
            # every particle in the box, visible or not: the sample the captures draw from
            "box_particles": {
                "diameter_nm": np.round(part.diameter_nm, 3).tolist(),
                "population": part.population.astype(int).tolist(),
                "labelled": part.labelled.astype(int).tolist(),
                "fluorophores": part.fluorophores.astype(int).tolist(),
            },
            "box_volume_ml": part.box_volume_ml,
            "box_um": {"lo": part.lo.tolist(), "hi": part.hi.tolist()},
            "all_particles_d50_nm": float(np.median(all_d)) if all_d.size else None,
            "visible_particles_d50_nm": (
                float(np.median(all_d[visible])) if visible.size else None
            ),
            "mean_particles_in_fov_per_frame": float(self.in_fov_frames.sum() / p.frames),
            "particles": particles,
        }

    def truth_tracks(self) -> pd.DataFrame:
        """Noise-free, exposure-averaged positions of visible particles (trackpy column names)."""
        if not self.track_rows:
            return pd.DataFrame(
                {
                    c: pd.Series(dtype=t)
                    for c, t in [
                        ("frame", "int32"),
                        ("particle", "int32"),
                        ("x", float),
                        ("y", float),
                        ("z_um", float),
                        ("snr", float),
                    ]
                }
            )
        return pd.concat(self.track_rows, ignore_index=True)


def simulate(params: SimulationParams, out_dir: str | Path, progress: Any = None) -> dict[str, Any]:
    """Simulate a recording and write ``video.tif``, ``truth.json`` and ``truth_tracks.parquet``.

    Files are written to temporary names and renamed into place, so a failure leaves no partial
    output. ``progress`` is an optional callable receiving the number of frames just rendered.
    Returns the truth dictionary.
    """
    from exocheck.io.video import write_tiff  # local: io is a sibling layer, imported on use
    from exocheck.records import atomic_write_bytes, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sim = Simulation(params)

    def frames() -> Iterator[np.ndarray]:
        for chunk in sim.chunks():
            yield chunk
            if progress is not None:
                progress(chunk.shape[0])

    write_tiff(
        out / "video.tif",
        frames(),
        n_frames=params.frames,
        fps=params.fps,
        pixel_size_um=params.pixel_size_um,
        exposure_ms=params.exposure_ms,
    )
    truth = sim.truth()
    tracks = sim.truth_tracks()
    import io

    buffer = io.BytesIO()
    tracks.to_parquet(buffer, index=False)
    atomic_write_bytes(out / "truth_tracks.parquet", buffer.getvalue())
    atomic_write_text(out / "truth.json", json.dumps(truth, indent=1))
    return truth
