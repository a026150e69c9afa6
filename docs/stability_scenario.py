"""The EV storage scenario of docs/stability.md: simulate, run exocheck, write data and figure.

Run from the repository root:  python docs/stability_scenario.py

It writes docs/data/ev_storage_study.csv, docs/img/stability_ev.png and prints the numbers that
docs/stability.md quotes. The study is SIMULATED (fixed seed); its loss rates are assumptions
chosen to match published observations (see docs/stability.md):

* 4 °C, plain polypropylene tubes: half the particles lost in 48 h (k = ln 2 / 2 per day);
* 4 °C, low-binding tubes: 10 % lost in 48 h;
* -80 °C, plain polypropylene tubes: 10 % lost in 90 days.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from exocheck.qc.expiry import particles_at_expiry
from exocheck.qc.stability import estimate_shelf_life
from exocheck.qc.stability_plot import plot_shelf_life, save_figure
from exocheck.qc.study import read_study_csv
from exocheck.records import atomic_write_text

HERE = Path(__file__).parent
CLAIM_PER_ML = 1.0e11  # label claim: 1e11 particles/mL, i.e. 1e10 per 100 µL vial
LIMIT_PER_ML = 0.7 * CLAIM_PER_ML  # acceptance: at least 70 % of the claim until expiry
VIAL_ML = 0.1
CV = 0.06  # NTA repeatability between duplicate measurements (about 5-10 % in practice)
LOT_START = {"EV-01": 1.10e11, "EV-02": 1.05e11, "EV-03": 1.15e11}
CONDITIONS = [
    # temperature, container, loss rate per day, time points (days), ICH storage class
    (4.0, "polypropylene", math.log(2) / 2.0, [0, 0.25, 0.5, 1, 2, 3], "refrigerated"),
    (4.0, "low-binding", -math.log(0.9) / 2.0, [0, 1, 2, 4, 7, 14], "refrigerated"),
    (-80.0, "polypropylene", -math.log(0.9) / 90.0, [0, 7, 14, 28, 56, 90], "frozen"),
]


def simulate(seed: int = 20240611) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for temperature, container, k, days, _ in CONDITIONS:
        for lot, start in LOT_START.items():
            for day in days:
                for _ in range(2):  # duplicate measurements
                    count = start * math.exp(-k * day + rng.normal(0.0, CV))
                    rows.append(
                        {
                            "lot": lot,
                            "day": day,
                            "temperature_c": temperature,
                            "container": container,
                            "buffer": "PBS",
                            "concentration_per_ml": float(f"{count:.4g}"),
                        }
                    )
    return pd.DataFrame(rows)


def main() -> None:
    csv = HERE / "data" / "ev_storage_study.csv"
    atomic_write_text(csv, simulate().to_csv(index=False, float_format="%.6g"))
    study = read_study_csv(
        csv, response_col="concentration_per_ml", time_col="day", time_unit="day",
        unit="particles/mL", name="EV storage (simulated)",
    )  # fmt: skip
    fig = Figure(figsize=(13.0, 4.2), dpi=110)
    axes = fig.subplots(1, 3)
    print("| condition | model | shelf life (days) | worst lot | supported (days) | "
          "particles/vial at supported expiry | lower 95 % bound |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for (temperature, container, _, _, storage), ax in zip(CONDITIONS, axes, strict=True):
        index = next(
            i
            for i, c in enumerate(study.conditions)
            if c.temperature_c == temperature and c.container == container
        )
        data = study.frame(index)
        kw = dict(time_col="time", response_col="value", batch_col="lot")
        result = estimate_shelf_life(
            data, lower_limit=LIMIT_PER_ML, transform="log", storage=storage,
            time_unit="day", **kw,
        )  # fmt: skip
        expiry = particles_at_expiry(result, label_claim_per_unit=CLAIM_PER_ML * VIAL_ML)
        label = study.conditions[index].label
        plot_shelf_life(result, data, ax=ax, title=label, **kw)
        ax.set_ylabel("particles / mL")
        sl = "not reached" if result.shelf_life is None else f"{result.shelf_life:.3f}"
        print(
            f"| {label} | {result.model} | {sl} | {result.worst_batch or '(pooled)'} | "
            f"{result.supported_shelf_life:.3f} | {expiry.predicted_per_unit:.3e} | "
            f"{expiry.lower_bound_per_unit:.3e} |"
        )
        for warning in result.warnings:
            print(f"  warning: {warning}")
    fig.tight_layout()
    save_figure(fig, HERE / "img" / "stability_ev.png")


if __name__ == "__main__":
    main()
