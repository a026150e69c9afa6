"""``exocheck demo``: the whole job on embedded defaults.

Simulates a 100 nm polystyrene bead standard and two lots of an EV product, calibrates the
detection volume on the beads, analyses both lots, stores them with protein, marker and safety
results against a release specification, signs the decisions (four-eyes) and issues signed
certificates of analysis (demo keys in the output folder) that ``exocheck verify`` accepts.
Every number comes from the same library calls a user would make.
"""

from __future__ import annotations

import json
import math
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from exocheck.cli._common import console, progress_bar

PRODUCT = "EXO-DEMO"
CLAIM_PER_VIAL = 1.0e11
FILL_ML = 1.0
DILUTION = 100.0
# Particles per mL in the measurement cell for each lot (after the 1:100 dilution). Lot 002 holds
# about half of what lot 001 does: it falls short of the label claim.
LOTS = {"EXO-DEMO-001": 1.4e9, "EXO-DEMO-002": 0.6e9}
# Laser power × collection efficiency, the same for beads and samples (the simulator's default):
# vesicles below about 100 nm scatter too little to be seen, as on real instruments.
PHOTONS_PER_NM2 = 20.0
# The demo organisation's letterhead (a made-up address and a drawn mark: a vesicle and its
# lipid bilayer), shown on the certificates as an organisation's own would be.
DEMO_ADDRESS = "Quality Control, 1 Example Way; Demo City 00000; Nowhere"
DEMO_LOGO_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 40" width="120" height="40">
<circle cx="20" cy="20" r="17" fill="none" stroke="#1f3b73" stroke-width="3"/>
<circle cx="20" cy="20" r="11" fill="#4c72b0"/>
<circle cx="15" cy="16" r="3" fill="#ffffff"/>
<rect x="44" y="12" width="70" height="5" fill="#1f3b73"/>
<rect x="44" y="23" width="52" height="5" fill="#4c72b0"/>
</svg>
"""


def _fraction_above(limit_nm: float, median_nm: float, gsd: float) -> float:
    """Number fraction of a lognormal population (median, geometric SD) above ``limit_nm``."""
    if limit_nm <= 0:
        return 1.0
    return 0.5 * math.erfc(math.log(limit_nm / median_nm) / (math.log(gsd) * math.sqrt(2.0)))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)


def demo_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for videos, results and CoAs.")] = Path(
        "demo-output"
    ),
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database URL (default: $EXOCHECK_DATABASE_URL, else a SQLite file in --out).",
        ),
    ] = None,
    frames: Annotated[int, typer.Option(help="Frames per simulated video.")] = 450,
) -> None:
    """Run the whole job on simulated data: simulate, analyse, store, release, certify."""
    from exocheck.certify import Keyring
    from exocheck.lots.certificate import certificate, write_certificate
    from exocheck.methods.calibrations import BeadStandard, calibrate_standard
    from exocheck.nta.analyze import AnalysisSettings, Conditions, analyze
    from exocheck.qc.release import fmt
    from exocheck.report.coa import pdf_unavailable
    from exocheck.simulate import Population, make_params, simulate
    from exocheck.store import Store

    out.mkdir(parents=True, exist_ok=True)
    # Signed PDF certificates need pango (a system library WeasyPrint loads); without it the
    # demo still runs to the end, with HTML certificates, and says what to install.
    no_pdf = pdf_unavailable()
    url = db or os.environ.get("EXOCHECK_DATABASE_URL") or str(out / "exocheck-demo.db")
    if url == str(out / "exocheck-demo.db"):
        (out / "exocheck-demo.db").unlink(missing_ok=True)  # a fresh demo every run

    bead = Population(name="PS 100 nm", diameter_nm=100, cv=0.03, concentration_per_ml=3e8)
    ev = dict(
        name="EVs", distribution="lognormal", diameter_nm=110, gsd=1.35, refractive_index=1.39
    )
    runs = {"beads": [bead]} | {
        lot: [Population(concentration_per_ml=c, **ev)] for lot, c in LOTS.items()
    }
    truths = {}
    for i, (name, populations) in enumerate(runs.items()):
        params = make_params(
            populations=populations, frames=frames, seed=100 + i, photons_per_nm2=PHOTONS_PER_NM2
        )
        with progress_bar(f"Simulating {name}", params.frames) as bar:
            truths[name] = simulate(
                params, out / name, progress=lambda n, b=bar: b.advance(b.task_ids[0], n)
            )

    settings = AnalysisSettings()
    with progress_bar("Calibrating on beads", frames) as bar:
        cal = calibrate_standard(
            out / "beads" / "video.tif",
            BeadStandard(truths["beads"]["concentration_per_ml"], 100.0),
            Conditions(),
            settings,
            progress=lambda n: bar.advance(bar.task_ids[0], n),
        )
    cal.save(out / "calibration.json")

    measurements = {}
    for lot in LOTS:
        with progress_bar(f"Analysing {lot}", frames) as bar:
            m, _, _ = analyze(
                [out / lot / "video.tif"],
                Conditions(refractive_index=1.39),
                settings,
                cal,
                sample=lot,
                progress=lambda n, b=bar: b.advance(b.task_ids[0], n),
                dilution_factor=DILUTION,
            )
        m.save(out / lot / "result.json")
        measurements[lot] = m

    spec_text = resources.files("exocheck.qc").joinpath("specs/msc-ev-release-v1.yaml").read_text()
    limit_nm = measurements[next(iter(LOTS))].diagnostics.get("detection_limit_nm") or 0.0
    table = Table(
        title="Two lots of an EV product; label claim 1e11 particles per vial",
        caption=f"truth: the simulated particles per vial, of all sizes and of those above the "
        f"detection limit ({limit_nm:.0f} nm for n = 1.39). Scattering NTA cannot see smaller "
        "vesicles and sees those near the limit only in focus: a measurement lies between "
        "the two.",
        caption_justify="left",
    )
    table.add_column("lot", no_wrap=True, min_width=12)
    for col in ("D50 (nm)", "measured per vial", "truth, all", "truth above limit"):
        table.add_column(col, justify="right")
    table.add_column("decision", no_wrap=True, min_width=16)
    # Demo signing keys live in the output folder (never in the user's own keyring); a fresh
    # keyring every run, its public half exported as a recipient would receive it.
    keyring = Keyring(out / "keys")
    if keyring.exists():
        for stale in keyring.folder.iterdir():
            stale.unlink()
    (out / "logo.svg").write_text(DEMO_LOGO_SVG, encoding="utf-8")
    keyring.init(
        "exocheck demo laboratory",
        public_url="https://verify.example.org",
        address=DEMO_ADDRESS,
        logo=out / "logo.svg",
    )
    public_keys = keyring.export_public(out / "public-keys.json")
    coas: list[Path] = []
    with Store.open(url) as store:
        store.add_product(
            PRODUCT, particles_per_unit=CLAIM_PER_VIAL, fill_volume_ml=FILL_ML, by="operator"
        )
        store.add_specification("msc-ev-release-v1.yaml", text=spec_text, product=PRODUCT, by="qa")
        for lot, m in measurements.items():
            store.add_lot(lot, PRODUCT, manufactured="2026-11-01", by="operator")
            store.add_measurement(lot, m, by="operator", original_file=out / lot / "result.json")
            store.add_protein(lot, 20.0, by="operator")
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
                by="operator",
            )
            store.add_safety(
                lot,
                {"endotoxin_eu_per_ml": 0.05, "sterility": "negative", "mycoplasma": "negative"},
                by="operator",
            )
            result = store.approve(lot, by="qa-lead")
            document, _ = certificate(store, lot, by="qa-lead", suffix=".html", keyring=keyring)
            html = write_certificate(out / f"{lot}-CoA.html", document)
            pdf = out / f"{lot}-CoA.pdf"
            if no_pdf is None:
                signed, _ = certificate(store, lot, by="qa-lead", keyring=keyring)
                write_certificate(pdf, signed)
            else:
                pdf.unlink(missing_ok=True)  # a stale one from an earlier run would mislead
            true_vial = truths[lot]["concentration_per_ml"] * DILUTION * FILL_ML
            above = _fraction_above(limit_nm, ev["diameter_nm"], ev["gsd"])
            table.add_row(
                lot,
                f"{m.size.d50_nm:.0f}",
                fmt(m.concentration.particles_per_ml * FILL_ML),
                fmt(true_vial),
                fmt(true_vial * above),
                result.decision,
            )
            coas.append(pdf if no_pdf is None else html)
    console.print(table)
    console.print(
        f"bead calibration: detection depth {cal.depth_um:.1f} µm; detection limit for EVs "
        f"(n = 1.39) ≈ {limit_nm:.0f} nm — smaller vesicles are invisible to scattering NTA and "
        "are not counted."
    )
    if no_pdf is None:
        console.print("signed certificates of analysis: " + ", ".join(str(p) for p in coas))
        program = sys.argv[0] if Path(sys.argv[0]).name == "exocheck" else "exocheck"
        console.print(
            f"verify one as a recipient would: {program} verify {coas[0]} --public-key "
            f"{public_keys}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print("certificates of analysis (HTML): " + ", ".join(str(p) for p in coas))
        console.print(
            f"[yellow]note:[/] no signed PDF certificates: {no_pdf}, then run the demo again",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"database: {url}\nresults and videos: {out}/")
    (out / "summary.json").write_text(
        json.dumps({lot: m.concentration.particles_per_ml for lot, m in measurements.items()})
    )
