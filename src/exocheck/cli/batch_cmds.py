"""``exocheck batch``: many samples on every core, or on a Dask cluster (a shell over
:func:`exocheck.batch.run_batch`)."""

from __future__ import annotations

import os
from dataclasses import replace as _replace
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from exocheck.cli._common import console, err_console
from exocheck.cli.nta_cmds import (
    ExposureOpt,
    FpsOpt,
    GainOpt,
    InstrumentOpt,
    InvertOpt,
    MethodOpt,
    OverrideOpt,
    PixelOpt,
    PolarityOpt,
    ThresholdOpt,
    ViscOpt,
    WavelengthOpt,
    _file_or_stored_calibration,
    _given,
    _settings,
)
from exocheck.cli.store_cmds import CreateOption, PasswordStdin, UserOption
from exocheck.errors import ParameterError


def register(app: typer.Typer) -> None:
    app.command("batch")(batch_cmd)


class _Throughput(ProgressColumn):
    """Videos per minute since the start."""

    def render(self, task) -> Text:
        elapsed = task.elapsed or 0.0
        if elapsed < 1.0 or not task.completed:
            return Text("-- videos/min", style="progress.data.speed")
        return Text(f"{task.completed / elapsed * 60:.1f} videos/min", style="progress.data.speed")


class _Bar:
    """The batch's progress on stderr: videos done, throughput, elapsed time and ETA."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.1f}/{task.total:.0f} videos"),
            _Throughput(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        )
        self.task = None

    def start(self, total_videos: int) -> None:
        self.task = self.progress.add_task("Analysing", total=total_videos)

    def advance(self, videos: float) -> None:
        if self.task is not None:
            self.progress.advance(self.task, videos)

    def message(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, soft_wrap=True)


def batch_cmd(
    videos: Annotated[
        list[Path] | None,
        typer.Argument(help="Videos or folders of videos: one sample per video (file stem)."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Output folder: one sub-folder per sample.")
    ] = ...,  # type: ignore[assignment]
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="CSV of samples, videos and settings (docs/batch.md)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Local worker processes (default: one per core)."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Dask scheduler of a cluster: tcp://HOST:PORT."),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="Calibration JSON from 'calibrate' (under --method: or a stored calibration's id).",
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database URL or SQLite file holding the job table "
            "(default: $EXOCHECK_DATABASE_URL, then the per-user database).",
        ),
    ] = None,
    create: CreateOption = False,
    lot: Annotated[
        str | None, typer.Option("--lot", help="Enter every result in this lot of the store.")
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Who enters the results (with --lot), in a store without users (default: "
            "$EXOCHECK_USER, then the login name). A store with users takes --user or "
            "'exocheck login'.",
        ),
    ] = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
    fps: FpsOpt = None,
    pixel_size_um: PixelOpt = None,
    temperature_c: Annotated[
        float | None, typer.Option("--temperature-c", help="Sample temperature, °C (default 25).")
    ] = None,
    exposure_ms: ExposureOpt = None,
    viscosity_mpa_s: ViscOpt = None,
    refractive_index: Annotated[
        float | None,
        typer.Option(help="Particle refractive index, for the detection limit (EV ≈ 1.39)."),
    ] = None,
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
            help="Accept the same video twice in a sample (same SHA-256); the reason is recorded.",
        ),
    ] = None,
    skip_polarity_check: PolarityOpt = False,
    invert: InvertOpt = False,
    threshold_sigma: ThresholdOpt = None,
    bootstrap: Annotated[
        int | None,
        typer.Option(help="Bootstrap resamples for intervals (default 40, or the method's)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Do only what is not done (the default: every run resumes)."),
    ] = True,
    rerun: Annotated[
        bool, typer.Option("--rerun", help="Analyse again samples an earlier batch has done.")
    ] = False,
    method: MethodOpt = None,
    instrument: InstrumentOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Analyse many samples in parallel on Dask; results as 'analyze --out' writes them.

    With --method every sample is analysed under the approved method on --instrument, as
    'analyze --method' does; a manifest cell that contradicts the method is refused unless
    --override gives the reason."""
    from exocheck.batch import expand_inputs, read_manifest, run_batch, samples_from_videos
    from exocheck.cli.store_cmds import acting, open_store
    from exocheck.nta.analyze import Conditions
    from exocheck.store import ENV_VAR

    if manifest is not None and videos:
        raise ParameterError("give videos or --manifest, not both")
    if workers is not None and scheduler:
        raise ParameterError("--workers is for a local cluster; a --scheduler has its own workers")
    if workers is not None and workers < 1:
        raise ParameterError(f"--workers must be >= 1, got {workers}")
    if rerun and not resume:
        resume = True  # --rerun decides; --resume is the default behaviour
    given = _given(
        fps=fps,
        pixel_size_um=pixel_size_um,
        temperature_c=temperature_c,
        exposure_ms=exposure_ms,
        viscosity_mpa_s=viscosity_mpa_s,
        refractive_index=refractive_index,
        camera_gain=camera_gain,
        wavelength_nm=wavelength_nm,
    )
    if instrument is not None and method is None:
        raise ParameterError("--instrument names the instrument of an analysis under --method")
    by_name = None
    if lot is not None:  # who enters the results, established before any work starts
        with open_store(db, create=create) as store:
            by_name = acting(
                store, "measurement.add", by=by, user=user, password_stdin=password_stdin
            )
    applied = None
    if method is not None:
        from exocheck.methods.apply import prepare

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
                },
                calibration=(
                    _file_or_stored_calibration(str(calibration), db)
                    if calibration is not None and calibration.exists()
                    else (str(calibration) if calibration is not None else None)
                ),
                override=override,
            )
        conditions, settings = applied.conditions, applied.settings
        settings = _replace(settings, check_polarity=not skip_polarity_check)
        sample_defaults = {"dilution_factor": dilution_factor, "calibration": None}
    else:
        conditions = Conditions(**{**given, "temperature_c": temperature_c or 25.0})
        settings = _settings(
            invert, threshold_sigma, 40 if bootstrap is None else bootstrap, not skip_polarity_check
        )
        sample_defaults = {"dilution_factor": dilution_factor, "calibration": calibration}
    if manifest is not None:
        samples = read_manifest(manifest, conditions, **sample_defaults)
    else:
        samples = samples_from_videos(
            expand_inputs(list(videos or [])), conditions, **sample_defaults
        )
    if applied is not None:
        from exocheck.methods.apply import for_samples

        samples = for_samples(applied, samples, override)
    elif override is not None:
        samples = [_replace(s, override=override) for s in samples]
    bar = _Bar()
    with bar.progress:
        result = run_batch(
            samples,
            out,
            settings=settings,
            workers=workers,
            scheduler=scheduler,
            db=db,
            create_db=create or not (db or os.environ.get(ENV_VAR)),
            lot=lot,
            by=by_name,
            rerun=rerun,
            calibration_override=calibration_override,
            allow_reuse=allow_reuse,
            progress=bar,
        )
    _print_table(result, out)
    for failed in result.failed:
        err_console.print(
            f"[bold red]error:[/] sample {failed.sample}: {failed.error}", highlight=False,
            soft_wrap=True,
        )  # fmt: skip
    if result.failed:
        raise typer.Exit(2)


def _print_table(result, out: Path) -> None:
    table = Table(title="exocheck batch", show_header=True)
    table.add_column("sample")
    table.add_column("videos", justify="right")
    table.add_column("D50 (nm)", justify="right")
    table.add_column("particles/mL", justify="right")
    table.add_column("status")
    for o in result.outcomes:
        status = o.status if not o.reused else "done (earlier batch)"
        table.add_row(
            o.sample,
            str(o.videos),
            f"{o.d50_nm:.1f}" if o.d50_nm is not None else "",
            f"{o.particles_per_ml:.3g}" if o.particles_per_ml is not None else "",
            status if o.status == "done" else f"[red]{status}[/]",
        )
    console.print(table)
    done = [o for o in result.outcomes if o.status == "done"]
    reused = sum(o.reused for o in done)
    rate = result.analysed_videos / result.wall_s * 60 if result.wall_s > 0 else 0.0
    console.print(
        f"{len(result.outcomes)} samples: {len(done) - reused} analysed, {reused} done earlier, "
        f"{len(result.failed)} failed; {result.analysed_videos} videos in {result.wall_s:.1f} s "
        f"({rate:.1f} videos/min) on {result.workers} worker(s); results in {out}/<sample>/; "
        f"jobs in {result.database}",
        highlight=False,
        soft_wrap=True,
    )
