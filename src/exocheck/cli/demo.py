"""``exocheck demo``: the whole job on embedded defaults, as a GMP laboratory runs it.

Simulates a 100 nm polystyrene bead standard and two lots of an EV product. The laboratory's
people are users of the store, each with a role and a printed name. QA registers the NTA
instrument (its qualification and calibration current), an analyst writes the analytical
method (settings matching the simulated optics) and QA approves it (four eyes); the analyst
calibrates the detection volume on the bead standard (certified diameter and concentration,
lot, expiry) under the method, the calibration is checked and stored as the instrument's, and
both lots are analysed under the method with it. Protein, marker and safety results are
entered with the procedure each names; a reviewer reviews, QA signs each decision with an
electronic signature, and signed certificates of analysis (demo keys in the output folder)
that ``exocheck verify`` accepts cite the method, instrument and calibration. Every number
comes from the same library calls a user would make.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from exocheck.cli._common import console, progress_bar

if TYPE_CHECKING:
    from exocheck.simulate import SimulationParams

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


# The laboratory's people: user name -> (role, printed name). The passwords are the demo's own
# (written to demo-users.txt in the output folder, to log in to the web service), never a real
# store's.
USERS = {
    "admin": ("admin", "Adam Admin"),
    "operator": ("analyst", "Olivia Operator"),
    "reviewer": ("reviewer", "Rita Reviewer"),
    "qa": ("qa", "Quentin Quality"),
    "qa-lead": ("qa", "Lena Lead"),
}
# The NTA instrument of the register and the bead standard, as their certificates state them.
INSTRUMENT = {
    "serial": "NS-DEMO-0042",
    "model": "NanoSight NS300",
    "camera": "sCMOS, 640 × 480 px",
    "filter_set": "none (scatter)",
}
STANDARD_NAME = "Polystyrene nanospheres"
STANDARD_LOT = "PS100-DEMO-2291"
METHOD_NAME = "nta-ev-scatter"
# Procedures of the results exocheck's methods do not cover, as the laboratory names them.
PROTEIN_METHOD = "BCA (SOP-QC-012)"
MARKER_METHOD = "Western blot (SOP-QC-015)"


def demo_password(user: str) -> str:
    """The demo password of one of :data:`USERS` (for the demo's store only)."""
    return f"{user}-demo-password"


def method_yaml(params: SimulationParams, refractive_index: float) -> str:
    """The demo's analytical method: its acquisition settings are those of the simulated
    recordings (``params``, a :class:`~exocheck.simulate.SimulationParams`), its detection and
    sizing settings exocheck's defaults, ``refractive_index`` that of the product's vesicles."""
    return f"""schema: exocheck.method/1
name: {METHOD_NAME}
version: 1
title: EV size and concentration by scatter NTA
reference: SOP-QC-041 rev 3
instrument_model: {INSTRUMENT["model"]}
acquisition:
  fps: {params.fps:g}
  exposure_ms: {params.exposure_ms:g}
  pixel_size_um: {params.pixel_size_um:g}
  temperature_c: {params.temperature_c:g}
  wavelength_nm: {params.wavelength_nm:g}
detection: {{mode: scatter, threshold_sigma: 5, min_track_frames: 10}}
sizing: {{bootstrap: 40}}
calibration: {{required: true, interval_days: 30, tolerance_percent: 5, max_span: 0.45}}
reportable_range_nm: [50, 1000]
product_refractive_index: {refractive_index:g}
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
    """Run the whole job on simulated data: register, approve, calibrate, analyse, release,
    certify."""
    from exocheck.auth.accounts import Accounts
    from exocheck.auth.identity import check_first_user, identify
    from exocheck.certify import Keyring
    from exocheck.lots.certificate import certificate, write_certificate
    from exocheck.lots.signatures import Signing
    from exocheck.methods.apply import prepare, resolve_settings
    from exocheck.methods.calibrations import BeadStandard, calibrate_standard, store_calibration
    from exocheck.methods.instruments import add_instrument
    from exocheck.methods.methods import add_method, approve_method, document_of, method_row
    from exocheck.methods.stamps import stamp
    from exocheck.nta.analyze import analyze
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
    truths, optics = {}, {}
    for i, (name, populations) in enumerate(runs.items()):
        params = make_params(
            populations=populations, frames=frames, seed=100 + i, photons_per_nm2=PHOTONS_PER_NM2
        )
        optics[name] = params
        with progress_bar(f"Simulating {name}", params.frames) as bar:
            truths[name] = simulate(
                params, out / name, progress=lambda n, b=bar: b.advance(b.task_ids[0], n)
            )

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
    (out / "demo-users.txt").write_text(
        "# The demo's users (demo passwords, for this demo store only)\n"
        + "".join(
            f"{user}\t{role}\t{printed}\t{demo_password(user)}\n"
            for user, (role, printed) in USERS.items()
        ),
        encoding="utf-8",
    )
    today = datetime.now(UTC).date()
    measurements = {}
    coas: list[Path] = []
    rows = []
    with Store.open(url) as store:
        accounts = Accounts(store)

        def act(action: str, user: str) -> str:
            """``user`` authenticated with the password, the role allowed to do ``action``."""
            return identify(
                store, action, user=user, password=demo_password(user), accounts=accounts
            ).name

        # The people: the first user is the administrator, who then adds the others.
        for user, (role, printed) in USERS.items():
            if user == "admin":
                check_first_user(store, role)
                by = identify(store, "user.manage", by=user).name
            else:
                by = act("user.manage", "admin")
            accounts.add_user(
                user, role=role, password=demo_password(user), by=by, printed_name=printed
            )

        # QA: the product, its release specification and the instrument register.
        qa = act("catalog.edit", "qa")
        store.add_product(PRODUCT, particles_per_unit=CLAIM_PER_VIAL, fill_volume_ml=FILL_ML, by=qa)
        spec_text = (
            resources.files("exocheck.qc").joinpath("specs/msc-ev-release-v1.yaml").read_text()
        )
        store.add_specification("msc-ev-release-v1.yaml", text=spec_text, product=PRODUCT, by=qa)
        add_instrument(
            store,
            **INSTRUMENT,
            laser_wavelength_nm=optics["beads"].wavelength_nm,
            pixel_size_um=optics["beads"].pixel_size_um,
            qualification_due=today + timedelta(days=240),
            calibration_due=today + timedelta(days=120),
            by=act("instrument.edit", "qa"),
        )
        # The analyst writes the method; QA, not its author, approves it.
        (out / f"{METHOD_NAME}.yaml").write_text(
            method_yaml(optics["beads"], ev["refractive_index"]), encoding="utf-8"
        )
        method = add_method(store, out / f"{METHOD_NAME}.yaml", by=act("method.add", "operator"))[
            "method"
        ]
        approve_method(store, method, by=act("method.approve", "qa"))

        # The analyst calibrates on the bead standard under the method, as 'exocheck calibrate
        # --instrument --method' does: the method's settings (no bootstrap: the acceptance
        # check sizes the beads once) and acceptance; checked, then stored as the instrument's.
        operator = act("calibration.add", "operator")
        with store.read() as session:
            doc = document_of(method_row(session, method, approved=True))
        conditions, settings, _ = resolve_settings(doc, {})
        settings = replace(settings, sizing=replace(settings.sizing, n_bootstrap=0))
        standard = BeadStandard(
            certified_concentration_per_ml=float(f"{truths['beads']['concentration_per_ml']:.3g}"),
            certified_diameter_nm=bead.diameter_nm,
            lot=STANDARD_LOT,
            expiry=(today + timedelta(days=365)).isoformat(),
            name=STANDARD_NAME,
        )
        with progress_bar("Calibrating on beads", frames) as bar:
            cal = calibrate_standard(
                out / "beads" / "video.tif",
                standard,
                conditions,
                settings,
                tolerance_percent=doc.calibration.tolerance_percent,
                max_span=doc.calibration.max_span,
                instrument_serial=INSTRUMENT["serial"],
                progress=lambda n: bar.advance(bar.task_ids[0], n),
            )
        stored = store_calibration(
            store,
            cal,
            by=operator,
            instrument=INSTRUMENT["serial"],
            method=method,
            standard_name=STANDARD_NAME,
            tolerance_percent=doc.calibration.tolerance_percent,
            max_span=doc.calibration.max_span,
        )
        cal = replace(cal, calibration_id=stored["id"], valid_until=stored["valid_until"])
        cal.save(out / "calibration.json")

        # The analyst analyses each lot under the method (its settings, the instrument's
        # stored calibration) and enters the results with the procedures they name.
        for lot in LOTS:
            operator = act("lot.create", "operator")
            store.add_lot(lot, PRODUCT, manufactured="2026-11-01", by=operator)
            applied = prepare(store, method, instrument=INSTRUMENT["serial"])
            with progress_bar(f"Analysing {lot}", frames) as bar:
                m, _, _ = analyze(
                    [out / lot / "video.tif"],
                    applied.conditions,
                    applied.settings,
                    applied.calibration,
                    sample=lot,
                    progress=lambda n, b=bar: b.advance(b.task_ids[0], n),
                    dilution_factor=DILUTION,
                )
            stamp(m, applied)
            m.save(out / lot / "result.json")
            measurements[lot] = m
            operator = act("measurement.add", "operator")
            store.add_measurement(lot, m, by=operator, original_file=out / lot / "result.json")
            store.add_protein(lot, 20.0, method=PROTEIN_METHOD, by=operator)
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
                method=MARKER_METHOD,
                by=operator,
            )
            store.add_safety(
                lot,
                {"endotoxin_eu_per_ml": 0.05, "sterility": "negative", "mycoplasma": "negative"},
                by=operator,
            )

        # Four eyes: the reviewer reviews, QA signs the decision; the certificates are issued.
        signing = Signing(store, accounts)
        for lot, m in measurements.items():
            result = store.evaluate(lot)
            signing.sign(
                lot,
                user="reviewer",
                password=demo_password("reviewer"),
                meaning="reviewed",
                reason="data, method, instrument and calibration reviewed",
            )
            failed = [c.name for c in result.criteria if c.result != "pass"]
            signing.sign(
                lot,
                user="qa-lead",
                password=demo_password("qa-lead"),
                meaning="approved" if result.decision == "conforms" else "rejected",
                reason=(
                    "conforms to its specification"
                    if result.decision == "conforms"
                    else f"{result.decision}: {', '.join(failed)}"
                ),
            )
            issuer = act("certificate.issue", "qa-lead")
            document, _ = certificate(store, lot, by=issuer, suffix=".html", keyring=keyring)
            html = write_certificate(out / f"{lot}-CoA.html", document)
            pdf = out / f"{lot}-CoA.pdf"
            if no_pdf is None:
                signed, _ = certificate(store, lot, by=issuer, keyring=keyring)
                write_certificate(pdf, signed)
            else:
                pdf.unlink(missing_ok=True)  # a stale one from an earlier run would mislead
            rows.append((lot, m, result.decision))
            coas.append(pdf if no_pdf is None else html)

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
    for lot, m, decision in rows:
        true_vial = truths[lot]["concentration_per_ml"] * DILUTION * FILL_ML
        above = _fraction_above(limit_nm, ev["diameter_nm"], ev["gsd"])
        table.add_row(
            lot,
            f"{m.size.d50_nm:.0f}",
            fmt(m.concentration.particles_per_ml * FILL_ML),
            fmt(true_vial),
            fmt(true_vial * above),
            decision,
        )
    console.print(table)
    console.print(
        f"method {method} (approved by {USERS['qa'][1]}) on {INSTRUMENT['model']} "
        f"s/n {INSTRUMENT['serial']}; "
        f"bead calibration {stored['id']} ({STANDARD_NAME}, lot {STANDARD_LOT}, valid until "
        f"{stored['valid_until'][:10]}): detection depth {cal.depth_um:.1f} µm; detection "
        f"limit for EVs (n = 1.39) ≈ {limit_nm:.0f} nm — smaller vesicles are invisible to "
        "scattering NTA and are not counted.",
        highlight=False,
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
    console.print(
        f"database: {url} (users and demo passwords: {out / 'demo-users.txt'})\n"
        f"results and videos: {out}/",
        highlight=False,
    )
    (out / "summary.json").write_text(
        json.dumps({lot: m.concentration.particles_per_ml for lot, m in measurements.items()})
    )
