"""Re-sizing vendor per-track data (``exocheck import --resize``): time and result by track count.

Usage::

    python benchmarks/resize.py [--tracks 600 2000 5000] [--seed N]

Tracks of 100 nm particles (lognormal, GSD 1.05) with geometric lengths (at least 3 frames,
mean 12); each track's vendor diameter is its own n-step MSD estimate, as in a per-particle
export (the simulation of ``tests/instruments/builders.py``). Prints, per track count, the
wall time of :func:`exocheck.instruments.resize.resize` and the D50 / SD of the truth, of the
vendor's per-track sizes and of exocheck's re-sized distribution.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from exocheck.instruments.particles import TrackTable
from exocheck.instruments.resize import resize
from exocheck.records import Measurement, Source

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from instruments.builders import simulated_tracks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, nargs="+", default=[600, 2000, 5000])
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    print("tracks | time s | true D50 / SD | per-track D50 / SD | re-sized D50 / SD | D50 95 % CI")
    for n in args.tracks:
        tracks = simulated_tracks(n=n, seed=args.seed)
        record = Measurement(source=Source(instrument="simulated"), temperature_c=25.0)
        start = time.perf_counter()
        out = resize(record, TrackTable(tracks.vendor_nm, tracks.length_frames, 0, "simulated"))
        seconds = time.perf_counter() - start
        r = out.diagnostics["resized"]
        v = r["vendor_per_track"]
        lo, hi = r["ci"]["d50_nm"]
        print(
            f"{n} | {seconds:.1f} | {np.median(tracks.true_nm):.1f} / {np.std(tracks.true_nm):.1f}"
            f" | {v['d50_nm']:.1f} / {v['sd_nm']:.1f} | {r['d50_nm']:.1f} / {r['sd_nm']:.1f}"
            f" | {lo:.1f}–{hi:.1f}"
        )


if __name__ == "__main__":
    main()
