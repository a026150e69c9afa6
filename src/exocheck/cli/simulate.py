"""``exocheck simulate``: ground-truth NTA videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exocheck.cli._common import console, progress_bar
from exocheck.errors import ParameterError


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_cmd)


def simulate_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Folder for video.tif and truth.json.")],
    diameter_nm: Annotated[
        float, typer.Option(help="Mean (or, with --gsd, median) diameter, nm.")
    ] = 100.0,
    refractive_index: Annotated[
        float, typer.Option(help="Particle refractive index (1.59 polystyrene, 1.39 EV).")
    ] = 1.59,
    concentration_per_ml: Annotated[float, typer.Option(help="Particles per mL.")] = 3e8,
    cv: Annotated[float, typer.Option(help="Size coefficient of variation (monodisperse).")] = 0.0,
    gsd: Annotated[
        float | None, typer.Option(help="Geometric SD: makes the population lognormal.")
    ] = None,
    frames: Annotated[int, typer.Option(help="Number of frames.")] = 300,
    fps: Annotated[float, typer.Option(help="Frames per second.")] = 30.0,
    exposure_ms: Annotated[float, typer.Option(help="Exposure per frame, ms.")] = 15.0,
    pixel_size_um: Annotated[float, typer.Option(help="Pixel size, µm.")] = 0.166,
    temperature_c: Annotated[float, typer.Option(help="Temperature, °C.")] = 25.0,
    drift_x_um_s: Annotated[float, typer.Option(help="Drift along x, µm/s.")] = 0.0,
    drift_y_um_s: Annotated[float, typer.Option(help="Drift along y, µm/s.")] = 0.0,
    gain: Annotated[float, typer.Option(help="Camera counts per photon.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    scenario: Annotated[
        Path | None,
        typer.Option(help="YAML scenario (mixtures, any setting); flags given here override it."),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="'scatter', or 'fluorescence': the same sample through the emission filter "
            "(the scenario's labelled populations and fluorescence settings)."
        ),
    ] = "scatter",
) -> None:
    """Simulate an NTA video with known particle sizes and concentration."""
    from exocheck.simulate import make_params, make_population, params_from_scenario, simulate

    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out}: exists and is not a folder")
    common = {
        "frames": frames,
        "fps": fps,
        "exposure_ms": exposure_ms,
        "pixel_size_um": pixel_size_um,
        "temperature_c": temperature_c,
        "drift_um_s": (drift_x_um_s, drift_y_um_s),
        "gain": gain,
        "seed": seed,
    }
    if scenario is not None:
        params = params_from_scenario(scenario, **_explicit_only(ctx, common))
    else:
        population = make_population(
            name="sample",
            distribution="lognormal" if gsd is not None else "monodisperse",
            diameter_nm=diameter_nm,
            cv=cv,
            gsd=gsd if gsd is not None else 1.35,
            refractive_index=refractive_index,
            concentration_per_ml=concentration_per_ml,
        )
        params = make_params(populations=[population], **common)
    if mode not in ("scatter", "fluorescence"):
        raise ParameterError(f"--mode must be 'scatter' or 'fluorescence', got {mode!r}")
    params = params.for_mode(mode)  # type: ignore[arg-type]
    with progress_bar("Simulating", params.frames) as bar:
        truth = simulate(params, out, progress=lambda n: bar.advance(bar.task_ids[0], n))
    console.print(
        f"wrote {out / 'video.tif'} ({params.frames} frames, {params.width_px}×{params.height_px}) "
        f"and truth.json: {len(truth['particles'])} particles visible, "
        f"{truth['concentration_per_ml']:.3g} particles/mL, "
        f"{truth['mean_particles_in_fov_per_frame']:.1f} in the field per frame"
    )


def _explicit_only(ctx: typer.Context, common: dict) -> dict:
    """Only the options the user actually typed override a scenario file."""
    explicit = {}
    for key, value in common.items():
        if key == "drift_um_s":
            names = ("drift_x_um_s", "drift_y_um_s")
        else:
            names = (key,)
        # compared by name: typer vendors its own click, whose enum is not click's
        sources = (getattr(ctx.get_parameter_source(n), "name", None) for n in names)
        if any(source not in (None, "DEFAULT") for source in sources):
            explicit[key] = value
    return explicit
