"""``exocheck calibrate``: a bead calibration, accepted only on one narrow peak of the certified
size from a standard within its expiry (:mod:`exocheck.methods.calibrations`); written to a
JSON file, stored as an instrument's, or both."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from exocheck.cli._common import console, progress_bar
from exocheck.cli.nta_cmds import (
    ExposureOpt,
    FpsOpt,
    GainOpt,
    InvertOpt,
    ModeOpt,
    OverrideOpt,
    PixelOpt,
    PolarityOpt,
    StoreDbOpt,
    TempOpt,
    ThresholdOpt,
    ViscOpt,
    WavelengthOpt,
    _given,
    _note_compilation,
    _settings,
    _start_warm_up,
    _total_frames,
    _writable_folder,
)
from exocheck.errors import ParameterError


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate_cmd)


def calibrate_cmd(
    video: Annotated[Path, typer.Argument(help="Video of a bead standard.")],
    known_concentration_per_ml: Annotated[
        float,
        typer.Option(
            "--known-concentration-per-ml",
            "--certified-concentration-per-ml",
            help="Certified concentration of the standard as measured (after any dilution), "
            "per mL.",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Calibration JSON to write (optional once it is stored)."),
    ] = None,
    bead_diameter_nm: Annotated[
        float | None,
        typer.Option(
            "--bead-diameter-nm",
            "--certified-diameter-nm",
            help="Certified bead diameter, nm: the measured D50 must agree within the tolerance.",
        ),
    ] = None,
    standard_lot: Annotated[
        str | None, typer.Option("--standard-lot", help="Lot of the bead standard.")
    ] = None,
    standard_expiry: Annotated[
        str | None,
        typer.Option("--standard-expiry", help="Expiry of the bead standard, YYYY-MM-DD."),
    ] = None,
    standard_name: Annotated[
        str | None, typer.Option("--standard-name", help="The standard's product name.")
    ] = None,
    tolerance_percent: Annotated[
        float | None,
        typer.Option(
            "--tolerance-percent",
            help="Largest deviation of the measured D50 from the certified diameter, % "
            "(default 5, or the method's).",
        ),
    ] = None,
    max_span: Annotated[
        float | None,
        typer.Option(
            "--max-span",
            help="Largest span (D90−D10)/D50 of one narrow peak (default 0.45, or the method's).",
        ),
    ] = None,
    valid_days: Annotated[
        float | None,
        typer.Option(
            "--valid-days",
            help="Days the calibration may be used (under --method: the method's interval).",
        ),
    ] = None,
    fps: FpsOpt = None,
    pixel_size_um: PixelOpt = None,
    temperature_c: TempOpt = None,
    exposure_ms: ExposureOpt = None,
    viscosity_mpa_s: ViscOpt = None,
    invert: InvertOpt = False,
    threshold_sigma: ThresholdOpt = None,
    camera_gain: GainOpt = None,
    wavelength_nm: WavelengthOpt = None,
    skip_polarity_check: PolarityOpt = False,
    mode: ModeOpt = None,
    instrument: Annotated[
        str | None,
        typer.Option(
            "--instrument",
            metavar="SERIAL",
            help="Store the calibration as this instrument's (of the register).",
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            metavar="NAME[@VERSION]",
            help="Calibrate under an approved method (its settings, acceptance and interval).",
        ),
    ] = None,
    override: OverrideOpt = None,
    db: StoreDbOpt = None,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Who calibrates, in a store without users.", show_default=False),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Your user name, in a store with users.", show_default=False),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
    ] = False,
) -> None:
    """Calibrate the detection volume with a bead standard of certified size and concentration.

    The calibration is accepted only when the beads' size distribution is one narrow peak
    (span (D90−D10)/D50 at most --max-span) and, with --bead-diameter-nm, its D50 agrees with
    the certified diameter within --tolerance-percent; an expired standard is refused. Refused:
    one line, exit 2, nothing written or stored. With --instrument (and --method) it is stored
    with its standard (--standard-lot, --standard-expiry) and used by analyses under the method
    until it expires. It records the optics it was made on (pixel size, frame rate, exposure,
    and the camera gain and laser wavelength when given); analyses on other optics refuse it.
    With ``--mode fluorescence``, fluorescent beads recorded through the emission filter
    calibrate the fluorescence channel (``labelled-fraction --calibration-fluorescence``).
    """
    from exocheck.methods.calibrations import (
        DEFAULT_MAX_SPAN,
        DEFAULT_TOLERANCE_PERCENT,
        BeadStandard,
        calibrate_standard,
    )
    from exocheck.methods.units import check_value

    if mode is not None and mode not in ("scatter", "fluorescence"):
        raise ParameterError(f"--mode must be 'scatter' or 'fluorescence', got {mode!r}")
    given = _given(
        fps=fps,
        pixel_size_um=pixel_size_um,
        temperature_c=temperature_c,
        exposure_ms=exposure_ms,
        viscosity_mpa_s=viscosity_mpa_s,
        camera_gain=camera_gain,
        wavelength_nm=wavelength_nm,
    )
    check_value("bead_diameter_nm", bead_diameter_nm)
    stored = instrument is not None or method is not None
    if method is not None and instrument is None:
        raise ParameterError("a calibration under --method names its --instrument SERIAL")
    if out is None and not stored:
        raise ParameterError(
            "--out: name the calibration file (cal.json), or store it with --instrument SERIAL"
        )
    if out is not None:
        if out.is_dir():
            raise ParameterError(f"--out {out}: is a folder; name the calibration file (cal.json)")
        _writable_folder(out.parent)
    _start_warm_up(plots=False)
    from exocheck.cli.store_cmds import acting, writing_store
    from exocheck.nta.analyze import Conditions

    with writing_store(db) if stored else contextlib.nullcontext() as store:
        actor = (
            acting(store, "calibration.add", by=by, user=user, password_stdin=password_stdin)
            if stored
            else None
        )
        differences: list[str] = []
        if method is not None:
            from exocheck.methods.apply import resolve_settings
            from exocheck.methods.methods import document_of, method_row

            with store.read() as session:
                doc = document_of(method_row(session, method, approved=True))
            detection = {"threshold_sigma": threshold_sigma, "invert": True if invert else None}
            conditions, settings, differences = resolve_settings(
                doc, given, detection | {"mode": mode}, override
            )
            settings = replace(
                settings,
                check_polarity=not skip_polarity_check,
                sizing=replace(settings.sizing, n_bootstrap=0),
            )
            policy = doc.calibration
            for flag, value, wanted in (
                ("--tolerance-percent", tolerance_percent, policy.tolerance_percent),
                ("--max-span", max_span, policy.max_span),
            ):
                if value is not None and value != wanted:
                    raise ParameterError(f"{flag} is set by method {doc.label} ({wanted:g})")
            tolerance_percent, max_span = policy.tolerance_percent, policy.max_span
        else:
            conditions = Conditions(**{**given, "temperature_c": temperature_c or 25.0})
            settings = _settings(
                invert, threshold_sigma, 0, not skip_polarity_check, mode or "scatter"
            )
        tolerance = DEFAULT_TOLERANCE_PERCENT if tolerance_percent is None else tolerance_percent
        span = DEFAULT_MAX_SPAN if max_span is None else max_span
        standard = BeadStandard(
            certified_concentration_per_ml=known_concentration_per_ml,
            certified_diameter_nm=bead_diameter_nm,
            lot=standard_lot,
            expiry=standard_expiry,
            name=standard_name,
        )
        total = _total_frames([video], conditions)
        _note_compilation()
        with progress_bar("Calibrating", total) as bar:
            cal = calibrate_standard(
                video,
                standard,
                conditions,
                settings,
                tolerance_percent=tolerance,
                max_span=span,
                valid_days=valid_days,
                instrument_serial=instrument,
                override=override,
                progress=lambda n: bar.advance(bar.task_ids[0], n),
            )
        if differences:
            reasons = [
                x for x in (cal.override, f"{override.strip()} ({'; '.join(differences)})") if x
            ]
            cal = replace(cal, override="; ".join(reasons))
        if stored:
            from exocheck.methods.calibrations import store_calibration

            info = store_calibration(
                store,
                cal,
                by=actor,
                instrument=instrument,
                method=method,
                standard_name=standard_name,
                tolerance_percent=tolerance,
                max_span=span,
            )
            cal = replace(cal, calibration_id=info["id"], valid_until=info["valid_until"])
    if out is not None:
        cal.save(out)
    size = f"D50 {cal.measured_d50_nm:.1f} nm" + (
        f" (certified {cal.bead_diameter_nm:g} nm)" if cal.bead_diameter_nm else ""
    )
    where = [f"stored as calibration {cal.calibration_id}"] if cal.calibration_id else []
    where += [f"wrote {out}"] if out is not None else []
    console.print(
        f"effective detection depth {cal.depth_um:.2f} µm for beads at "
        f"{cal.bead_brightness_ratio:.1f}× threshold, {size}; {', '.join(where)}",
        highlight=False,
    )
