"""Start-up of the store commands: ``exocheck lot list`` and ``exocheck history LOT``.

Part of ``make bench`` (``benchmarks/run.py`` calls :func:`run` and the report includes
:func:`section`); ``python benchmarks/store.py`` runs this part alone and replaces only its section
of ``docs/benchmarks.md``.

A SQLite store is filled through the library with a product, the release specification and
``LOTS`` lots carrying an NTA record, protein, markers and safety results (the audit trail holds
about 6 events per lot). Each command is then timed as its own process, interpreter start-up and
imports included, ``REPEATS`` times; the median is reported with the peak memory. The target is
0.8 s on this machine: store commands must not pay for the numerical libraries of the analysis
(scipy, pandas, statsmodels, matplotlib), which they do not use.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-output"
LOTS = 20
REPEATS = 5
TARGET_S = 0.8
SECTION_TITLE = "## Store commands: start-up"


def _fill(db: Path) -> str:
    """A store of ``LOTS`` complete lots; returns the lot whose history is timed."""
    from importlib import resources

    import numpy as np

    from exocheck.records import Concentration, Interval, Measurement, SizeDistribution, Source
    from exocheck.store import Store

    db.unlink(missing_ok=True)
    spec = resources.files("exocheck.qc").joinpath("specs/msc-ev-release-v1.yaml").read_text()
    edges = np.linspace(20.0, 500.0, 241)
    centres = 0.5 * (edges[:-1] + edges[1:])
    density = np.exp(-0.5 * (np.log(centres / 120.0) / math.log(1.4)) ** 2)
    density /= density.sum()
    with Store.open(db) as store:
        store.add_product("EXO-B", particles_per_unit=1e11, fill_volume_ml=1.0, by="op")
        store.add_specification("spec.yaml", text=spec, product="EXO-B", by="qa")
        for i in range(LOTS):
            lot = f"B-{i:03d}"
            conc = 1e11 * (0.9 + 0.01 * i)
            record = Measurement(
                source=Source(instrument="exocheck"),
                size=SizeDistribution(
                    bin_edges_nm=edges.tolist(),
                    density=density.tolist(),
                    d50_nm=125.0,
                    mode_nm=118.0,
                    d10_nm=90.0,
                    d90_nm=170.0,
                ),
                concentration=Concentration(
                    particles_per_ml=conc,
                    calibrated=True,
                    ci=Interval(low=0.95 * conc, high=1.05 * conc),
                ),
            )
            store.add_lot(lot, "EXO-B", manufactured="2026-01-01", by="op")
            store.add_measurement(lot, record, by="op")
            store.add_protein(lot, 20.0, by="op")
            store.add_markers(
                lot,
                {
                    "CD9": "present",
                    "CD63": "present",
                    "CD81": "present",
                    "TSG101": "present",
                    "calnexin": "absent",
                    "GM130": "absent",
                    "ApoA1": "absent",
                },
                by="op",
            )
            store.add_safety(
                lot,
                {"endotoxin_eu_per_ml": 0.05, "sterility": "negative", "mycoplasma": "negative"},
                by="op",
            )
    return f"B-{LOTS // 2:03d}"


def run(measure) -> dict:
    """Time the two commands; ``measure`` is ``run.measure`` (one process, wall, CPU, memory)."""
    from dataclasses import asdict

    exocheck = str(Path(sys.executable).with_name("exocheck"))
    db = OUT / "store-bench.db"
    lot = _fill(db)
    logs = OUT / "logs"
    out = {"lots": LOTS, "repeats": REPEATS, "target_s": TARGET_S, "commands": {}}
    for name, args in (("lot list", ["lot", "list"]), (f"history {lot}", ["history", lot])):
        runs = [
            measure(f"exocheck {name}", [exocheck, *args, "--db", str(db)], logs / "store.log")
            for _ in range(REPEATS)
        ]
        walls = [r.wall_s for r in runs]
        out["commands"][name] = {
            "median_s": statistics.median(walls),
            "min_s": min(walls),
            "max_s": max(walls),
            "peak_rss_mb": max(r.peak_rss_mb for r in runs),
            "runs": [asdict(r) for r in runs],
        }
    return out


def section(store: dict) -> list[str]:
    """The Markdown section of ``docs/benchmarks.md``."""
    lines = [
        SECTION_TITLE,
        "",
        f"Command: `make bench` (or `python benchmarks/store.py` for this section alone). "
        f"A SQLite store of {store['lots']} complete lots; each command run "
        f"{store['repeats']} times as its own process (start-up and imports included).",
        "",
        "| command | median (s) | min–max (s) | peak RSS (MB) | target |",
        "|---|---:|---:|---:|---|",
    ]
    for name, c in store["commands"].items():
        verdict = "met" if c["median_s"] < store["target_s"] else "**not met**"
        lines.append(
            f"| `exocheck {name}` | {c['median_s']:.2f} | {c['min_s']:.2f}–{c['max_s']:.2f} | "
            f"{c['peak_rss_mb']:.0f} | < {store['target_s']} s: {verdict} |"
        )
    lines += [
        "",
        "The store loads SQLAlchemy, Alembic, pydantic and numpy; scipy, pandas, statsmodels and "
        "matplotlib are imported only by the commands that compute with them (a test checks that "
        "`exocheck history` leaves them unloaded).",
        "",
    ]
    return lines


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as bench
    from bench_report import splice_section

    OUT.mkdir(exist_ok=True)
    store = run(bench.measure)
    (OUT / "store.json").write_text(json.dumps(store, indent=1))
    splice_section(ROOT / "docs" / "benchmarks.md", SECTION_TITLE, section(store))
    for name, c in store["commands"].items():
        print(f"[bench] exocheck {name}: median {c['median_s']:.2f} s")


if __name__ == "__main__":
    main()
