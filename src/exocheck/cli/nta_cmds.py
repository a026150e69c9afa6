"""``exocheck analyze`` and ``exocheck calibrate``: the NTA engine on videos."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from exocheck.cli._common import console, progress_bar
from exocheck.errors import ParameterError

MULTI_VALUE_OPTIONS = {
    "labelled-fraction": (
        "--scatter",
        "--fluorescence",
        "--control-unstained",
        "--control-label-only",
        "--control-detergent",
    )
}
"""Options that take several files after one flag (``--scatter a.tif b.tif``)."""


def spread_multi_values(argv: list[str]) -> list[str]:
    """``--scatter a b --fluorescence c`` as ``--scatter a --scatter b --fluorescence c``.

    Click gives an option one value per flag; ``labelled-fraction`` is documented, like the
    instruments' own tools, with several files after one flag. Only the named command's options
    are spread, and a value starting with ``-`` ends the list.
    """
    if not argv or argv[0] not in MULTI_VALUE_OPTIONS:
        return argv
    multi = MULTI_VALUE_OPTIONS[argv[0]]
    out, current = [argv[0]], None
    for token in argv[1:]:
        if token.startswith("-"):
            current = token if token in multi else None
            out.append(token)
        elif current is not None and out[-1] != current:
            out += [current, token]
        else:
            out.append(token)
    return out


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_cmd)
    app.command("labelled-fraction")(labelled_fraction_cmd)


FpsOpt = Annotated[
    float | None,
    typer.Option(
        "--fps", help="Frame rate (default: the file's; against the file's, with --override)."
    ),
]
PixelOpt = Annotated[
    float | None,
    typer.Option(
        "--pixel-size-um",
        help="Pixel size, µm (default: the file's; against the file's, with --override).",
    ),
]
TempOpt = Annotated[
    float | None,
    typer.Option("--temperature-c", help="Sample temperature, °C (default 25, or the method's)."),
]
ExposureOpt = Annotated[
    float | None,
    typer.Option("--exposure-ms", help="Exposure per frame, ms (motion-blur correction)."),
]
ViscOpt = Annotated[
    float | None,
    typer.Option("--viscosity-mpa-s", help="Medium viscosity, mPa·s (default: water at T)."),
]
InvertOpt = Annotated[
    bool, typer.Option("--invert", help="Dark particles on a bright background (bright field).")
]
GainOpt = Annotated[
    float | None,
    typer.Option("--camera-gain", help="Camera gain setting (compared with the calibration's)."),
]
WavelengthOpt = Annotated[
    float | None,
    typer.Option("--wavelength-nm", help="Laser wavelength, nm (compared with the calibration's)."),
]
PolarityOpt = Annotated[
    bool,
    typer.Option(
        "--skip-polarity-check",
        help="Do not check from the frames that the particles' polarity matches --invert.",
    ),
]
ThresholdOpt = Annotated[
    float | None,
    typer.Option("--threshold-sigma", help="Detection threshold in noise SDs (default 5)."),
]


MethodOpt = Annotated[
    str | None,
    typer.Option(
        "--method",
        metavar="NAME[@VERSION]",
        help="An approved analytical method: its settings are used and the record names it "
        "('exocheck method list --approved').",
    ),
]
InstrumentOpt = Annotated[
    str | None,
    typer.Option(
        "--instrument",
        metavar="SERIAL",
        help="The instrument of the register the videos were recorded on (with --method).",
    ),
]
OverrideOpt = Annotated[
    str | None,
    typer.Option(
        "--override",
        metavar="REASON",
        help="Use a frame rate, pixel size, exposure or temperature given against the file's "
        "own metadata or the method; the reason is recorded.",
    ),
]
StoreDbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database with the methods, instruments and stored calibrations (default: "
        "$EXOCHECK_DATABASE_URL, then the per-user store).",
        show_default=False,
    ),
]


def _given(**values: float | None) -> dict[str, float | None]:
    """Acquisition values given on the command line, checked for unit sense first."""
    from exocheck.methods.units import check_values

    check_values(values)
    return values


def _file_or_stored_calibration(value: str | None, db: str | None):
    """``--calibration``: a calibration JSON file, or the id of a stored calibration."""
    from exocheck.nta.concentration import Calibration

    if value is None:
        return None
    if not Path(value).exists() and value.strip().lstrip("#").isdigit():
        from exocheck.cli.store_cmds import open_store
        from exocheck.methods.calibrations import load_calibration

        with open_store(db) as store:
            return load_calibration(store, value)
    return Calibration.load(value)


def _locate_settings(invert: bool, threshold_sigma: float | None):
    from exocheck.nta.locate import LocateSettings

    return LocateSettings(
        invert=invert,
        **({"threshold_sigma": threshold_sigma} if threshold_sigma is not None else {}),
    )


ModeOpt = Annotated[
    str | None,
    typer.Option(
        "--mode",
        help="'scatter', or 'fluorescence' for a capture through the emission filter (tracks "
        "that end by photobleaching are corrected for).",
    ),
]


def _settings(
    invert: bool,
    threshold_sigma: float | None,
    bootstrap: int,
    polarity: bool = True,
    mode: str = "scatter",
):
    from exocheck.nta.analyze import AnalysisSettings
    from exocheck.nta.sizing import SizingSettings

    if bootstrap < 0:
        raise ParameterError("--bootstrap must be >= 0")
    if mode not in ("scatter", "fluorescence"):
        raise ParameterError(f"--mode must be 'scatter' or 'fluorescence', got {mode!r}")
    return AnalysisSettings(
        locate=_locate_settings(invert, threshold_sigma),
        sizing=SizingSettings(n_bootstrap=bootstrap),
        check_polarity=polarity,
        mode=mode,
    )


class _EarlyDetection:
    """Detection of one video in a background thread, started before the analysis is set up.

    Its progress is counted until a progress bar is attached. The thread is a daemon: should the
    command stop on a user error in the meantime, the program exits without waiting for it.
    """

    def __init__(self, path: Path, settings, check_polarity: bool = True) -> None:
        from concurrent.futures import Future

        self.future: Future = Future()
        self._lock = threading.Lock()
        self._pending = 0
        self._sink = None
        threading.Thread(
            target=self._run,
            args=(path, settings, check_polarity),
            name="exocheck-detection",
            daemon=True,
        ).start()

    def _run(self, path: Path, settings, check_polarity: bool) -> None:
        try:
            from exocheck.nta.locate import detect_video  # numpy and the kernels only

            if check_polarity:  # a video of the other polarity is refused before detecting it
                from exocheck.nta.checks import check_polarity as check

                check(path, settings.invert)

            result = detect_video(path, settings, progress=self._progress)
        except BaseException as exc:  # handed over: analyze() raises it where it reads the result
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)

    def _progress(self, n: int) -> None:
        with self._lock:
            sink = self._sink
            if sink is None:
                self._pending += n
                return
        sink(n)

    def attach(self, sink) -> None:
        """Send the progress so far, and from now on, to ``sink``."""
        with self._lock:
            self._sink = sink
            pending, self._pending = self._pending, 0
        if pending:
            sink(pending)


def _writable_folder(folder: Path) -> None:
    """Refuse, before any work, an output folder that cannot be created or written into."""
    base = folder.absolute()
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise ParameterError(f"--out {folder}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ParameterError(f"--out {folder}: no permission to write in {base}")


def _total_frames(paths: list[Path], conditions) -> int | None:
    from exocheck.io.video import open_video

    total = 0
    for p in paths:
        with open_video(p, fps=conditions.fps, pixel_size_um=conditions.pixel_size_um) as v:
            total += v.meta.n_frames
    return total


def analyze_cmd(
    videos: Annotated[list[Path], typer.Argument(help="Video files (replicates of one sample).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    fps: FpsOpt = None,
    pixel_size_um: PixelOpt = None,
    temperature_c: TempOpt = 25.0,
    exposure_ms: ExposureOpt = None,
    viscosity_mpa_s: ViscOpt = None,
    calibration: Annotated[
        str | None,
        typer.Option(
            "--calibration",
            help="Calibration JSON from 'calibrate', or the id of a stored calibration.",
        ),
    ] = None,
    refractive_index: Annotated[
        float | None,
        typer.Option(help="Particle refractive index, for the detection limit (EV ≈ 1.39)."),
    ] = None,
    invert: InvertOpt = False,
    threshold_sigma: ThresholdOpt = None,
    bootstrap: Annotated[
        int | None,
        typer.Option(help="Bootstrap resamples for intervals (default 40, or the method's)."),
    ] = None,
    sample: Annotated[str | None, typer.Option(help="Sample name for the record.")] = None,
    dilution_factor: Annotated[
        float | None, typer.Option(help="Dilution before measurement (reported per undiluted mL).")
    ] = None,
    camera_gain: GainOpt = None,
    wavelength_nm: WavelengthOpt = None,
    calibration_override: Annotated[
        str | None,
        typer.Option(
            "--calibration-override",
            metavar="REASON",
            help="Use a calibration made on other optics; the reason is recorded and the "
            "concentration is not used for release.",
        ),
    ] = None,
    allow_reuse: Annotated[
        str | None,
        typer.Option(
            "--allow-reuse",
            metavar="REASON",
            help="Accept the same video twice (same SHA-256); the reason is recorded.",
        ),
    ] = None,
    skip_polarity_check: PolarityOpt = False,
    mode: ModeOpt = None,
    method: MethodOpt = None,
    instrument: InstrumentOpt = None,
    override: OverrideOpt = None,
    db: StoreDbOpt = None,
) -> None:
    """Size distribution and concentration of a sample from its NTA videos.

    With ``--method`` the approved method's settings are used (a value given here that
    contradicts it is refused unless ``--override`` gives the reason), on the ``--instrument``
    named, with its newest stored calibration unless ``--calibration`` names one; the record
    names the method, its version, the instrument and the calibration. Without, the record is
    "no method". A frame rate, pixel size or exposure that contradicts the file is refused
    unless ``--override`` gives the reason.
    """
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
        refractive_index=refractive_index,
    )
    if instrument is not None and method is None:
        raise ParameterError("--instrument names the instrument of an analysis under --method")
    _start_warm_up(plots=True)
    _writable_folder(out)
    # Detection of the first video needs none of what follows: it starts now, on the second core,
    # while the analysis modules load (about a third of a typical run). Under a method the
    # detection settings are the method's, known once it is read.
    early = (
        _EarlyDetection(
            videos[0], _locate_settings(invert, threshold_sigma), not skip_polarity_check
        )
        if videos and method is None
        else None
    )
    from exocheck.nta.analyze import Conditions, analyze
    from exocheck.nta.outputs import write_outputs

    applied = None
    if method is not None:
        from exocheck.cli.store_cmds import open_store
        from exocheck.methods.apply import prepare

        stored = calibration
        if calibration is not None and Path(calibration).exists():
            stored = _file_or_stored_calibration(calibration, db)
        with open_store(db) as store:
            applied = prepare(
                store,
                method,
                instrument=instrument,
                given=given,
                detection={
                    "threshold_sigma": threshold_sigma,
                    "invert": True if invert else None,
                    "bootstrap": bootstrap,
                    "mode": mode,
                },
                calibration=stored,
                override=override,
            )
        conditions, cal = applied.conditions, applied.calibration
        settings = replace(applied.settings, check_polarity=not skip_polarity_check)
    else:
        conditions = Conditions(**{**given, "temperature_c": temperature_c or 25.0})
        settings = _settings(
            invert,
            threshold_sigma,
            40 if bootstrap is None else bootstrap,
            not skip_polarity_check,
            mode or "scatter",
        )
        cal = _file_or_stored_calibration(calibration, db)
    total = _total_frames(videos, conditions)
    _note_compilation()
    with progress_bar("Analysing frames", total) as bar:
        advance = lambda n: bar.advance(bar.task_ids[0], n)  # noqa: E731
        if early is not None:
            early.attach(advance)
        measurement, analyses, _ = analyze(
            videos,
            conditions,
            settings,
            cal,
            sample,
            progress=advance,
            dilution_factor=dilution_factor,
            detections=[early.future] if early is not None else None,
            calibration_override=calibration_override,
            allow_reuse=allow_reuse,
            override=override,
        )
    from exocheck.io._frames import lossy_frames

    for note in filter(None, map(lossy_frames, videos)):  # folders of JPEG frames
        measurement.warnings.append(note)
    if applied is not None:
        from exocheck.methods.stamps import stamp

        stamp(measurement, applied)
    write_outputs(out, measurement, analyses)  # rendered first, then written all or nothing
    _print_summary(measurement, out)


_KERNELS_READY = threading.Event()  # the warm-up is over (kernels loaded, or it failed)
_COMPILING = threading.Event()  # numba started compiling: its cache did not hold the kernels


def _start_warm_up(plots: bool) -> None:
    """Load the detection kernels and the later stages' libraries in a background thread.

    Start-up is a large part of a typical run (about 1 s of 3). Compiled-code initialisation runs
    mostly outside the GIL, so it overlaps with the imports the main thread does meanwhile; an
    import that fails here fails again, with its proper error, where it is used.
    """

    _KERNELS_READY.clear()
    _COMPILING.clear()

    def work() -> None:
        with contextlib.suppress(Exception):
            try:
                from exocheck.nta import _kernels

                _kernels.warm_up(on_compile=_COMPILING.set)
            finally:
                _KERNELS_READY.set()
            import miepython  # noqa: F401  (concentration and detection limit)

            if plots:
                import matplotlib.backends.backend_agg
                import matplotlib.figure  # noqa: F401

    threading.Thread(target=work, name="exocheck-warm-up", daemon=True).start()


def _note_compilation() -> None:
    """Say so when the kernels are being compiled (first run after installation), not loaded.

    Detection has to wait for the kernels anyway; without a word the progress bar would sit at
    zero for the ~10 s the compilation takes. numba reports when it starts compiling, so the
    notice appears then and only then (loading the cached kernels takes well under a second).
    """
    while not (_KERNELS_READY.wait(0.02) or _COMPILING.is_set()):
        pass
    if _COMPILING.is_set():
        console.print("compiling exocheck's detection kernels: about 10 s, once after installation")


def _print_summary(measurement, out: Path) -> None:
    size, conc = measurement.size, measurement.concentration
    table = Table(title=f"{measurement.sample}", show_header=True)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("95 % interval", justify="right")
    labels = {"d10_nm": "D10 (nm)", "d50_nm": "D50 (nm)", "d90_nm": "D90 (nm)",
              "mode_nm": "mode (nm)", "mean_nm": "mean (nm)"}  # fmt: skip
    for key, label in labels.items():
        value = getattr(size, key)
        ci = size.ci.get(key)
        table.add_row(
            label,
            "—" if value is None else f"{value:.1f}",  # nothing sized: a clean control
            f"{ci.low:.1f}–{ci.high:.1f}" if ci else "",
        )
    tag = "" if conc.calibrated else " (uncalibrated)"
    table.add_row(
        f"particles/mL{tag}",
        f"{conc.particles_per_ml:.3g}",
        f"{conc.ci.low:.3g}–{conc.ci.high:.3g}" if conc.ci else "",
    )
    for i, peak in enumerate(sorted(size.peaks, key=lambda p: p.diameter_nm)):
        support = "" if peak.support is None else f"in {peak.support:.0%} of resamples"
        table.add_row(
            "peaks (nm, share)" if i == 0 else "",
            f"{peak.diameter_nm:.0f} ({peak.fraction:.0%})",
            support,
        )
    table.add_row("tracks", str(measurement.tracks.count), "")
    table.add_row("particles per frame", f"{measurement.particles_per_frame:.1f}", "")
    console.print(table)
    for w in measurement.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    console.print(_method_line(measurement), highlight=False, markup=False)
    console.print(f"wrote {out / 'result.json'}, tracks.parquet, size_distribution.png")


def _method_line(measurement) -> str:
    """``method nta-ev@1 on instrument NS-1, calibration 3`` or ``no method: ...``."""
    from exocheck.methods.stamps import method_of

    method = method_of(measurement)
    if method is None:
        return "no method: settings from the command line (not an approved method)"
    calibration = method.get("calibration_id")
    return (
        f"method {method['name']}@{method['version']} on instrument "
        f"{method.get('instrument_serial')}"
        + (f", calibration {calibration}" if calibration is not None else ", no calibration")
    )


def labelled_fraction_cmd(
    scatter: Annotated[
        list[Path], typer.Option("--scatter", help="Scatter-mode video(s) of the stained sample.")
    ],
    fluorescence: Annotated[
        list[Path],
        typer.Option("--fluorescence", help="Fluorescence-mode video(s) of the stained sample."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    control_unstained: Annotated[
        list[Path] | None,
        typer.Option(
            "--control-unstained",
            help="Fluorescence-mode video(s) of the unstained sample (scatter leaking through "
            "the filter).",
        ),
    ] = None,
    control_label_only: Annotated[
        list[Path] | None,
        typer.Option(
            "--control-label-only",
            help="Fluorescence-mode video(s) of the label in buffer (free label, aggregates).",
        ),
    ] = None,
    control_detergent: Annotated[
        list[Path] | None,
        typer.Option(
            "--control-detergent",
            help="Fluorescence-mode video(s) of the stained sample lysed with detergent "
            "(what is not a membrane vesicle); subtracted instead of the label-only control.",
        ),
    ] = None,
    marker: Annotated[
        str | None, typer.Option("--marker", help="What the label marks, e.g. CD63.")
    ] = None,
    size_range_nm: Annotated[
        tuple[float, float] | None,
        typer.Option(
            "--size-range-nm",
            help="Size range of the overall fraction (default: where the scatter channel sees "
            "particles).",
        ),
    ] = None,
    calibration_scatter: Annotated[
        Path | None,
        typer.Option(
            "--calibration-scatter", help="Bead calibration of the scatter channel ('calibrate')."
        ),
    ] = None,
    calibration_fluorescence: Annotated[
        Path | None,
        typer.Option(
            "--calibration-fluorescence",
            help="Bead calibration of the fluorescence channel (fluorescent beads).",
        ),
    ] = None,
    bleach_half_life_s: Annotated[
        float | None,
        typer.Option(
            "--bleach-half-life-s",
            help="Fluorophore half-life at the sheet's centre, s (default: measured on the tracks).",
        ),
    ] = None,
    sheet_fwhm_um: Annotated[
        float, typer.Option(help="Light-sheet thickness (FWHM), µm, for the depth model.")
    ] = 8.0,
    depth_of_field_um: Annotated[
        float, typer.Option(help="Defocus length of the objective, µm, for the depth model.")
    ] = 3.0,
    optics_tolerance: Annotated[
        float,
        typer.Option(
            help="Relative error of the stated sheet width and defocus length that the intervals "
            "cover (0: taken as exact).",
        ),
    ] = 0.3,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            help="'measured': the axial detection profile measured on the scatter tracks (the "
            "stated sheet width and defocus length only where it cannot be); 'stated': the "
            "stated optics, the interval covering ±--optics-tolerance of them.",
        ),
    ] = "measured",
    fps: FpsOpt = None,
    pixel_size_um: PixelOpt = None,
    temperature_c: TempOpt = 25.0,
    exposure_ms: ExposureOpt = None,
    viscosity_mpa_s: ViscOpt = None,
    refractive_index: Annotated[
        float | None,
        typer.Option(
            help="Particle refractive index, for the scatter detection limit (EV ≈ 1.39)."
        ),
    ] = None,
    threshold_sigma: ThresholdOpt = None,
    sample: Annotated[str | None, typer.Option(help="Sample name for the record.")] = None,
    dilution_factor: Annotated[
        float | None, typer.Option(help="Dilution before measurement (reported per undiluted mL).")
    ] = None,
) -> None:
    """Labelled concentration and labelled fraction, overall and per size class, after controls.

    The stained sample is recorded in scatter and in fluorescence mode on one instrument; each
    channel is counted in its own detection volume, and controls recorded like the fluorescence
    capture are subtracted class by class.
    """
    if profile not in ("measured", "stated"):
        raise ParameterError(f"--profile must be 'measured' or 'stated', got {profile!r}")
    _writable_folder(out)
    from exocheck.nta.analyze import Conditions
    from exocheck.nta.concentration import Calibration
    from exocheck.nta.fluorescence import DepthModel
    from exocheck.nta.labelled import labelled_fraction
    from exocheck.nta.plots import labelled_fraction_png
    from exocheck.records import atomic_write_files

    conditions = Conditions(
        fps=fps,
        pixel_size_um=pixel_size_um,
        temperature_c=temperature_c,
        exposure_ms=exposure_ms,
        viscosity_mpa_s=viscosity_mpa_s,
        refractive_index=refractive_index,
    )
    recordings = {
        "scatter": scatter,
        "fluorescence": fluorescence,
        "unstained": control_unstained or [],
        "label_only": control_label_only or [],
        "detergent": control_detergent or [],
    }
    everything = [p for paths in recordings.values() for p in paths]
    for path in everything:
        if not path.exists():
            raise ParameterError(f"{path}: no such file")
    seen: dict[Path, str] = {}
    for role, paths in recordings.items():
        for path in paths:
            key = path.resolve()
            if key in seen and seen[key] != role:
                raise ParameterError(f"{path}: given both as {seen[key]} and as {role}")
            seen[key] = role
    kinds = {path: _input_kind(path) for path in everything}
    if len(set(kinds.values())) > 1:
        raise ParameterError(
            "give either videos or measurement records (instrument exports, exocheck results) "
            "for every role, not both"
        )
    if "record" in kinds.values():
        _labelled_from_records(recordings, out, marker, size_range_nm, sample)
        return
    calibrations = {}
    if calibration_scatter is not None:
        calibrations["scatter"] = Calibration.load(calibration_scatter)
    if calibration_fluorescence is not None:
        calibrations["fluorescence"] = Calibration.load(calibration_fluorescence)
    settings = _settings(False, threshold_sigma, 40)
    model = DepthModel(sheet_fwhm_um=sheet_fwhm_um, depth_of_field_um=depth_of_field_um)
    total = _total_frames(everything, conditions)
    with progress_bar("Analysing frames", total) as bar:
        measurement, _ = labelled_fraction(
            {k: v for k, v in recordings.items() if v},
            conditions,
            settings,
            model,
            calibrations,
            marker=marker,
            size_range_nm=size_range_nm,
            dilution_factor=dilution_factor,
            bleach_half_life_s=bleach_half_life_s,
            sample=sample,
            progress=lambda n: bar.advance(bar.task_ids[0], n),
            optics_tolerance=optics_tolerance,
            measure_profile=profile == "measured",
        )
    atomic_write_files(
        out,
        {
            "result.json": measurement.to_json().encode(),
            "labelled_fraction.png": labelled_fraction_png(measurement),
        },
    )
    _print_labelled(measurement, out)


def _print_labelled(measurement, out: Path) -> None:
    lab = measurement.labelled
    title = f"{measurement.sample}" + (f" — {lab.marker}" if lab.marker else "")
    table = Table(title=title, show_header=True)
    table.add_column("size (nm)")
    table.add_column("labelled %", justify="right")
    table.add_column("95 % interval", justify="right")
    table.add_column("labelled /mL", justify="right")
    table.add_column("fluorescent tracks", justify="right")
    for c in lab.classes:
        table.add_row(
            f"{c.low_nm:g}-{c.high_nm:g}",
            "-" if c.fraction is None else f"{100 * c.fraction:.2f}",
            "-" if c.ci is None else f"{100 * c.ci.low:.2f}-{100 * c.ci.high:.2f}",
            f"{c.labelled_per_ml:.3g}",
            f"{c.fluorescent_tracks:.0f}",
        )
    table.add_row(
        f"all {lab.low_nm:g}-{lab.high_nm:g}",
        f"{100 * lab.fraction:.2f}",
        f"{100 * lab.ci.low:.2f}-{100 * lab.ci.high:.2f}",
        f"{lab.labelled_per_ml:.3g}",
        f"{sum(c.fluorescent_tracks for c in lab.classes):.0f}",
        style="bold",
    )
    console.print(table)
    for role, value in lab.subtracted_per_ml.items():
        console.print(f"subtracted ({role.replace('_', '-')} control): {value:.3g} /mL")
    for warning in measurement.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(f"wrote {out / 'result.json'}, labelled_fraction.png")


def _input_kind(path: Path) -> str:
    """'record' for an instrument export or an exocheck result, else 'video'."""
    from exocheck.errors import FormatError
    from exocheck.instruments.detect import detect_format

    if path.suffix.lower() == ".json":
        return "record"
    if path.suffix.lower() in (".tif", ".tiff", ".avi", ".mp4", ".mov", ".mkv", ".m4v"):
        return "video"
    try:
        detect_format(path)
    except FormatError:
        return "video"
    return "record"


def _labelled_from_records(recordings, out: Path, marker, size_range_nm, sample) -> None:
    """labelled-fraction on measurement records: the vendor's numbers, compared channel by
    channel only where both were recorded alike."""
    from exocheck.instruments.detect import read_measurement
    from exocheck.nta.labelled import labelled_fraction_from_records
    from exocheck.nta.plots import labelled_fraction_png
    from exocheck.records import Measurement, atomic_write_files

    def load(path: Path) -> Measurement:
        return Measurement.load(path) if path.suffix.lower() == ".json" else read_measurement(path)

    records = {role: [load(p) for p in paths] for role, paths in recordings.items() if paths}
    measurement = labelled_fraction_from_records(records, marker, size_range_nm, sample)
    atomic_write_files(
        out,
        {
            "result.json": measurement.to_json().encode(),
            "labelled_fraction.png": labelled_fraction_png(measurement),
        },
    )
    _print_labelled(measurement, out)
