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


#: Size classes of :func:`labelled_measurement`: (low_nm, high_nm, total_per_ml, labelled_per_ml,
#: 95 % interval of the fraction). The fraction rises with size, as in fluorescence NTA of EVs.
LABELLED_CLASSES = (
    (50.0, 100.0, 6e9, 6e7, (0.006, 0.015)),
    (100.0, 200.0, 3e9, 3e8, (0.08, 0.125)),
    (200.0, 400.0, 8e8, 2e8, (0.20, 0.31)),
    (400.0, 1000.0, 2e8, 8e7, (0.30, 0.52)),
)


def labelled_measurement(
    marker: str | None = "CD63",
    fraction: float = 0.064,
    ci: tuple[float, float] = (0.056, 0.073),
    classes=LABELLED_CLASSES,
    subtracted_per_ml: dict[str, float] | None = None,
    mode: str | None = "fluorescence",
    sample: str = "lot",
) -> Measurement:
    """A labelled-fraction record as ``exocheck labelled-fraction`` writes it: size and
    concentration of the labelled particles; overall fraction 50-1000 nm (by default the
    classes' own: 6.4e8 labelled of 1e10 particles) with per-class fractions."""
    from exocheck.records import Channel, LabelledClass, LabelledFraction, Provenance

    total = sum(c[2] for c in classes) if classes else 1e10
    labelled = LabelledFraction(
        marker=marker,
        low_nm=50.0,
        high_nm=1000.0,
        fraction=fraction,
        ci=Interval(low=ci[0], high=ci[1]),
        labelled_per_ml=fraction * total,
        labelled_ci=Interval(low=ci[0] * total, high=ci[1] * total),
        total_per_ml=total,
        classes=[
            LabelledClass(
                low_nm=lo,
                high_nm=hi,
                total_per_ml=t,
                labelled_per_ml=lab,
                fraction=lab / t,
                ci=Interval(low=c[0], high=c[1]),
                fluorescent_tracks=400 * lab / 6e7,
            )
            for lo, hi, t, lab, c in classes
        ],
        subtracted_per_ml=(
            {"label_only": 1.2e8, "unstained": 3e7}
            if subtracted_per_ml is None
            else subtracted_per_ml
        ),
        inputs={
            "scatter": ["scatter-1.avi"],
            "fluorescence": ["fluor-1.avi"],
            "label_only": ["label-only.avi"],
            "unstained": ["unstained.avi"],
        },
    )
    record = lognormal_measurement(
        median_nm=160.0, particles_per_ml=fraction * total, sample=sample
    )
    return record.model_copy(
        update={
            "labelled": labelled,
            "channel": Channel(mode=mode) if mode else None,
            "provenance": Provenance(
                inputs={
                    name: f"{i + 1:x}" * 64
                    for i, name in enumerate(
                        ("scatter-1.avi", "fluor-1.avi", "label-only.avi", "unstained.avi")
                    )
                }
            ),
        }
    )
