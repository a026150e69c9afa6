"""The peer pipeline: particle sizing with trackpy, the way a lab does it today.

Read frames lazily (tifffile for TIFF, PyAV for container video, as pims would), locate features
in every frame with ``tp.batch``, link them with ``tp.link``, drop short tracks with
``tp.filter_stubs``, remove collective drift (``tp.compute_drift`` / ``tp.subtract_drift``), compute
each track's mean squared displacement with ``tp.imsd`` and fit a diffusion coefficient to its first
lags, then convert to a diameter with Stokes–Einstein. Nothing from exocheck is imported: this is an
independent peer.

Parameter choices (made to let trackpy do well on the benchmark videos; all can be overridden):

* ``--diameter`` (odd, px): a little larger than the spot including motion blur. For the simulated
  100 nm video the PSF σ is 0.25 µm / 0.166 µm per px ≈ 1.5 px (FWHM 3.5 px) and the motion blur over a
  15 ms exposure adds ≈ 2 px, so 9 px; for bulk-water.mov the trackpy walkthrough uses 11.
* ``--minmass``: the dip between the noise peak and the particle peak of the mass histogram of the
  first frames, as the trackpy walkthrough teaches. On the simulated video noise maxima have
  masses 20–75 and beads 150–5000 (diameter 9), so 100.
* ``--search-range`` (px): the distance a 100 nm bead exceeds in one frame with probability 1e-3
  (Rayleigh quantile 3.7 σ, σ = √(2D/fps) = 3.2 px per axis at 25 °C and 30 fps), so 12; the
  particles are sparse (≈ 35 per 640×480 frame), so a generous range costs no mislinks.
* ``--memory`` 3 frames bridges brief dropouts; ``--min-frames`` 10 drops short stubs (the same
  shortest track exocheck keeps).
* MSD fit: ordinary least squares of MSD(τ) = 4Dτ + b over lags 1…``--fit-lags`` (4) per track.
  The intercept b absorbs the localisation noise (+4σ²) and the motion-blur deficit (−4Dt_E/3), so
  D is not biased by them the way a fit through the origin would be; few lags keep the correlated,
  noisy long-lag MSD points out (Michalet, Phys. Rev. E 82, 041914, 2010). Tracks with D ≤ 0 from
  the fit are dropped.
* Water viscosity from the Vogel equation η = 2.414e-5 Pa·s · 10^(247.8 K / (T − 140 K)) (within
  0.1 % of IAPWS between 20 and 40 °C).

Writes a JSON summary (diameters' D10/D50/D90, track counts, timings of the stages) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import trackpy as tp

BOLTZMANN_J_K = 1.380649e-23


class TiffFrames:
    """A lazy, indexable sequence of TIFF pages (what ``pims.open`` gives for a TIFF)."""

    def __init__(self, path: Path) -> None:
        import tifffile

        self.path = path
        self._tiff = tifffile.TiffFile(path)
        self._pages = self._tiff.pages
        self._pages.useframes = True
        self._len = len(self._pages)
        self._last: tuple[int, np.ndarray] | None = None
        # tp.batch with processes > 1 iterates the frames in the pool's feeder thread while the
        # main thread indexes them: one file handle, so reads are serialised
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> np.ndarray:
        with self._lock:
            if self._last is not None and self._last[0] == i:
                return self._last[1]
            frame = self._pages[i].asarray()
            if frame.ndim == 3:  # RGB: luminance, as pims.as_grey does
                frame = frame[..., :3] @ np.array([0.2125, 0.7154, 0.0721])
            self._last = (i, frame)
            return frame

    def __iter__(self):
        return (self[i] for i in range(self._len))


def container_frames(path: Path) -> list[np.ndarray]:
    """All frames of a container video (MOV/AVI/MP4) as grey images, decoded with PyAV."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray") for f in container.decode(video=0)]


def open_frames(path: Path):
    if path.suffix.lower() in (".tif", ".tiff"):
        return TiffFrames(path)
    return container_frames(path)


def water_viscosity_pa_s(temperature_c: float) -> float:
    """Vogel equation for water."""
    return 2.414e-5 * 10.0 ** (247.8 / (temperature_c + 273.15 - 140.0))


def diameter_nm(d_um2_s: np.ndarray, temperature_c: float) -> np.ndarray:
    """Stokes–Einstein: d = kT / (3πηD)."""
    t_k = temperature_c + 273.15
    d_m2_s = np.asarray(d_um2_s) * 1e-12
    return (
        BOLTZMANN_J_K * t_k / (3.0 * math.pi * water_viscosity_pa_s(temperature_c) * d_m2_s) * 1e9
    )


def fit_diffusion(msd: pd.DataFrame, lags: int) -> pd.Series:
    """Per-track least-squares fit of MSD = 4Dτ + b over the first ``lags`` lags (µm²/s)."""
    m = msd.iloc[:lags]
    tau = m.index.to_numpy(dtype=float)
    out = {}
    for pid in m.columns:
        y = m[pid].to_numpy()
        ok = np.isfinite(y)
        if ok.sum() < 2:
            continue
        slope, _ = np.polyfit(tau[ok], y[ok], 1)
        out[pid] = slope / 4.0
    return pd.Series(out, dtype=float)


def run(args: argparse.Namespace) -> dict:
    timings = {}
    t0 = time.perf_counter()
    frames = open_frames(args.video)
    features = tp.batch(
        frames,
        args.diameter,
        minmass=args.minmass,
        invert=args.invert,
        processes=args.processes,
    )
    timings["locate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tracks = tp.link(features, args.search_range, memory=args.memory)
    tracks = tp.filter_stubs(tracks, args.min_frames)
    if args.max_size is not None or args.max_ecc is not None or args.min_track_mass is not None:
        # the walkthrough's appearance filter: drop dim, large or eccentric features
        keep = np.ones(len(tracks), dtype=bool)
        if args.min_track_mass is not None:
            keep &= (tracks["mass"] > args.min_track_mass).to_numpy()
        if args.max_size is not None:
            keep &= (tracks["size"] < args.max_size).to_numpy()
        if args.max_ecc is not None:
            keep &= (tracks["ecc"] < args.max_ecc).to_numpy()
        tracks = tracks[keep]
    timings["link_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    drift = tp.compute_drift(tracks)
    tracks = tp.subtract_drift(tracks.copy(), drift)
    msd = tp.imsd(tracks, args.mpp, args.fps, max_lagtime=args.fit_lags)
    d_um2_s = fit_diffusion(msd, args.fit_lags)
    n_fitted = int(d_um2_s.size)
    d_um2_s = d_um2_s[d_um2_s > 0]
    sizes = diameter_nm(d_um2_s.to_numpy(), args.temperature_c)
    # the walkthrough's ensemble estimate: a power law fitted to the ensemble MSD (trackpy's
    # default 100 lags), A = 4D
    em = tp.emsd(tracks, args.mpp, args.fps)
    ensemble = tp.utils.fit_powerlaw(em, plot=False)
    ensemble_d = float(ensemble["A"].iloc[0]) / 4.0
    timings["msd_s"] = time.perf_counter() - t0
    d10, d50, d90 = (float(v) for v in np.percentile(sizes, [10, 50, 90]))
    return {
        "tool": f"trackpy {tp.__version__}",
        "video": str(args.video),
        "frames": len(frames),
        "features": len(features),
        "tracks": int(tracks["particle"].nunique()),
        "tracks_fitted": n_fitted,
        "tracks_sized": int(sizes.size),
        "d10_nm": d10,
        "d50_nm": d50,
        "d90_nm": d90,
        "ensemble_d_um2_s": ensemble_d,
        "ensemble_exponent": float(ensemble["n"].iloc[0]),
        "ensemble_diameter_nm": float(diameter_nm(np.array([ensemble_d]), args.temperature_c)[0]),
        "timings": timings,
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"
        },
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("video", type=Path)
    p.add_argument("--out", type=Path, required=True, help="JSON summary to write")
    p.add_argument("--diameter", type=int, default=9)
    p.add_argument("--minmass", type=float, default=100.0)
    p.add_argument("--invert", action="store_true")
    p.add_argument("--search-range", type=float, default=12.0)
    p.add_argument("--memory", type=int, default=3)
    p.add_argument("--min-frames", type=int, default=10)
    p.add_argument("--min-track-mass", type=float, default=None, help="appearance filter")
    p.add_argument("--max-size", type=float, default=None, help="appearance filter, px")
    p.add_argument("--max-ecc", type=float, default=None, help="appearance filter")
    p.add_argument("--fit-lags", type=int, default=4)
    p.add_argument("--mpp", type=float, default=0.166, help="µm per pixel")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--temperature-c", type=float, default=25.0)
    p.add_argument("--processes", type=int, default=1, help="tp.batch processes")
    args = p.parse_args(argv)
    tp.quiet()
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(
        f"trackpy: {result['tracks_sized']} tracks, D10/D50/D90 = "
        f"{result['d10_nm']:.0f}/{result['d50_nm']:.0f}/{result['d90_nm']:.0f} nm"
    )


if __name__ == "__main__":
    main()
