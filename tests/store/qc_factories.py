"""Realistic test records for the QC tests (shared by tests/store, tests/qc and tests/report)."""

from __future__ import annotations

import math

import numpy as np

from exocheck.records import Concentration, Interval, Measurement, SizeDistribution, Source


def lognormal_measurement(
    median_nm: float = 115.0,
    gsd: float = 1.45,
    particles_per_ml: float = 2e10,
    rel_ci: float = 0.08,
    sample: str = "lot",
) -> Measurement:
    """A realistic NTA record: log-normal number distribution on 2-nm bins, D50 = median."""
    edges = np.arange(20.0, 1002.0, 2.0)
    sigma = np.log(gsd)
    cdf = 0.5 * (
        1 + np.vectorize(math.erf)((np.log(edges) - np.log(median_nm)) / (sigma * np.sqrt(2)))
    )
    density = np.diff(cdf)
    density /= density.sum()
    centres = 0.5 * (edges[:-1] + edges[1:])
    mode = float(np.exp(np.log(median_nm) - sigma**2))
    size = SizeDistribution(
        bin_edges_nm=edges.tolist(),
        density=density.tolist(),
        d50_nm=median_nm,
        d10_nm=float(median_nm * np.exp(-1.2816 * sigma)),
        d90_nm=float(median_nm * np.exp(1.2816 * sigma)),
        mode_nm=mode,
        mean_nm=float(np.sum(centres * density)),
        ci={
            "d50_nm": Interval(low=median_nm * 0.97, high=median_nm * 1.03),
            "mode_nm": Interval(low=mode * 0.95, high=mode * 1.05),
        },
    )
    conc = Concentration(
        particles_per_ml=particles_per_ml,
        calibrated=True,
        ci=Interval(low=particles_per_ml * (1 - rel_ci), high=particles_per_ml * (1 + rel_ci)),
    )
    return Measurement(
        source=Source(instrument="exocheck"),
        sample=sample,
        size=size,
        concentration=conc,
        temperature_c=22.0,
    )


SPEC_YAML = """\
schema: exocheck.spec/1
name: test-release
version: 1
criteria:
  - {name: Size mode, kind: range, quantity: size.mode_nm, min: 50, max: 200}
  - {name: Particles 50-400 nm, kind: size_fraction, window_nm: [50, 400], min_fraction: 0.9}
  - {name: Particles per vial, kind: label_claim, tolerance_percent: 20}
  - {name: Endotoxin, kind: limit, quantity: safety.endotoxin_eu_per_ml, less_than: 0.25}
  - {name: EV markers, kind: presence, analytes: [CD9, CD63, CD81, TSG101], expected: present}
  - {name: Non-EV markers, kind: presence, analytes: [calnexin], expected: absent}
  - {name: Sterility, kind: presence, analytes: [sterility], expected: negative}
  - {name: Purity, kind: purity, min_particles_per_ug: 2.0e+9}
"""


def fill_lot(
    store, lot: str, *, particles_per_ml: float = 2e10, by: str = "ana", product: str = "EXO-1"
) -> None:
    """A lot with every result the test specification asks for."""
    store.add_lot(lot, product, by=by)
    store.add_measurement(lot, lognormal_measurement(particles_per_ml=particles_per_ml), by=by)
    store.add_protein(lot, 5.0, by=by)
    store.add_markers(
        lot,
        {
            "CD9": "present",
            "CD63": "present",
            "CD81": "present",
            "TSG101": "present",
            "calnexin": "absent",
        },
        by=by,
    )
    store.add_safety(lot, {"endotoxin_eu_per_ml": 0.05, "sterility": "negative"}, by=by)
