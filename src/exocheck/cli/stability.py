"""``exocheck shelf-life``, ``exocheck accelerated`` and ``exocheck freeze-thaw``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from exocheck.cli._common import console
from exocheck.errors import StabilityError

if TYPE_CHECKING:
    import pandas as pd


def _read_table(path: Path, where: list[str] | None = None) -> pd.DataFrame:
    import pandas as pd  # imported when used: command start-up stays short

    try:
        data = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StabilityError(f"{path}: not a readable CSV table ({exc})") from exc
    for clause in where or []:
        column, sep, value = clause.partition("=")
        if not sep or column not in data.columns:
            raise StabilityError(f"--where {clause!r}: use COLUMN=VALUE with a column of {path}")
        if pd.api.types.is_numeric_dtype(data[column]):
            try:
                keep = data[column] == float(value)
            except ValueError as exc:
                raise StabilityError(f"--where {clause!r}: {column} is numeric") from exc
        else:
            keep = data[column].astype(str) == value
        data = data[keep]
        if data.empty:
            raise StabilityError(f"{path}: no rows where {clause}")
    return data


def _fmt(value: float | None, unit: str = "") -> str:
    """A time with three significant figures and its unit: ``14.5 months``."""
    if value is None:
        return "not reached"
    text = f"{float(f'{value:.3g}'):g}"
    plural = "s" if unit and text != "1" else ""
    return f"{text}{unit}{plural}"


def shelf_life(
    data_csv: Annotated[Path, typer.Argument(help="Stability data, one row per result (CSV).")],
    time_col: Annotated[str, typer.Option("--time-col", help="Time column.")] = "time",
    response_col: Annotated[str, typer.Option("--response-col", help="Response column.")] = (
        "response"
    ),
    batch_col: Annotated[
        str | None, typer.Option("--batch-col", help="Batch / lot column (omit: one batch).")
    ] = None,
    lower_limit: Annotated[float | None, typer.Option("--lower-limit")] = None,
    upper_limit: Annotated[float | None, typer.Option("--upper-limit")] = None,
    transform: Annotated[
        str, typer.Option("--transform", help="none, or log for first-order loss.")
    ] = "none",
    storage: Annotated[
        str, typer.Option("--storage", help="frozen, refrigerated or room (ICH Q1E rules).")
    ] = "room",
    time_unit: Annotated[
        str, typer.Option("--time-unit", help="Unit of the time column: month, week, day, ...")
    ] = "month",
    accelerated_change: Annotated[
        str | None,
        typer.Option("--accelerated-change", help="none or significant (default: unknown)."),
    ] = None,
    intermediate_change: Annotated[
        str, typer.Option("--intermediate-change", help="none or significant.")
    ] = "none",
    confidence: Annotated[float, typer.Option("--confidence")] = 0.95,
    where: Annotated[
        list[str] | None, typer.Option("--where", help="Keep rows where COLUMN=VALUE.")
    ] = None,
    label_claim: Annotated[
        float | None,
        typer.Option("--label-claim", help="Particles per unit at release: report at expiry."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot here.")] = None,
) -> None:
    """Shelf life by ICH Q1E (ANCOVA poolability, 95 % confidence limit of the mean)."""
    from exocheck.qc.expiry import particles_at_expiry
    from exocheck.qc.stability import estimate_shelf_life

    data = _read_table(data_csv, where)
    result = estimate_shelf_life(
        data,
        time_col=time_col,
        response_col=response_col,
        batch_col=batch_col,
        lower_limit=lower_limit,
        upper_limit=upper_limit,
        transform=transform,
        confidence=confidence,
        storage=storage,
        time_unit=time_unit,
        accelerated_change=accelerated_change,
        intermediate_change=intermediate_change,
    )
    expiry = None
    if label_claim is not None:
        expiry = particles_at_expiry(result, label_claim_per_unit=label_claim)
    if plot is not None:
        from exocheck.qc.stability_plot import plot_shelf_life, save_figure

        fig = plot_shelf_life(
            result, data, time_col=time_col, response_col=response_col, batch_col=batch_col
        )
        save_figure(fig, plot)
    print_shelf_life(result, expiry, f"Shelf life — {data_csv.name}", as_json)


def print_shelf_life(result, expiry, title: str, as_json: bool, header: dict | None = None) -> None:
    """Print a shelf-life result as JSON (``header`` keys first) or as a table with warnings."""
    if as_json:
        out = (header or {}) | result.summary()
        if expiry is not None:
            out["particles_at_expiry"] = expiry.model_dump()
        typer.echo(json.dumps(out, indent=2, allow_nan=False))
        return
    table = Table(title=title, show_header=False)
    unit = f" {result.time_unit}"
    table.add_row("model", result.model)
    table.add_row("shelf life (statistical)", _fmt(result.shelf_life, unit))
    for side, value in result.by_side.items():
        if getattr(result, f"{side}_limit") is not None:
            table.add_row(f"  {side} limit crossed at", _fmt(value, unit))
    table.add_row("worst batch", result.worst_batch or "—")
    table.add_row(
        f"supported shelf life ({result.storage})", _fmt(result.supported_shelf_life, unit)
    )
    if expiry is not None:
        table.add_row(
            "particles per unit at expiry",
            f"{expiry.predicted_per_unit:.3g} (lower 95 % bound {expiry.lower_bound_per_unit:.3g})",
        )
    console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def accelerated(
    data_csv: Annotated[Path, typer.Argument(help="Accelerated study, one row per count (CSV).")],
    time_col: Annotated[str, typer.Option("--time-col")] = "time",
    count_col: Annotated[str, typer.Option("--count-col")] = "concentration_per_ml",
    temperature_col: Annotated[str, typer.Option("--temperature-col")] = "temperature_c",
    batch_col: Annotated[str | None, typer.Option("--batch-col")] = None,
    storage_temperature_c: Annotated[float, typer.Option("--storage-temp")] = 4.0,
    fraction: Annotated[
        float, typer.Option("--fraction", help="Fraction remaining that ends shelf life.")
    ] = 0.8,
    time_unit: Annotated[
        str | None,
        typer.Option(
            "--time-unit",
            help="Unit of the time column (hour, day, week, month...; default: the column's "
            "name when it is one).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """First-order rates per temperature, Arrhenius fit, rate and shelf life at storage."""
    from exocheck.qc.accelerated import arrhenius_fit, first_order_rates

    data = _read_table(data_csv)
    rates = first_order_rates(
        data,
        time_col=time_col,
        count_col=count_col,
        temperature_col=temperature_col,
        batch_col=batch_col,
    )
    fit = arrhenius_fit(rates)
    pred = fit.predict(storage_temperature_c)
    if time_unit is None:
        name = time_col.strip().lower().removesuffix("s")
        time_unit = name if name in ("hour", "day", "week", "month", "year") else "time unit"
    t_est, t_low = pred.time_to_fraction(fraction)
    if as_json:
        out = {
            "arrhenius": fit.model_dump(),
            "prediction": pred.model_dump(),
            "fraction_remaining": fraction,
            "time_to_fraction": t_est,
            "time_to_fraction_lower": t_low,
        }
        typer.echo(json.dumps(out, indent=2, allow_nan=False))
        return
    table = Table(title=f"Accelerated study — {data_csv.name}")
    for col in ("temperature (°C)", f"k (per {time_unit})", f"SE (per {time_unit})"):
        table.add_column(col)
    for r in rates:
        table.add_row(f"{r.temperature_c:g}", f"{r.k:.3g}", f"{r.se_k:.2g}")
    console.print(table)
    console.print(
        f"Ea = {fit.ea_j_per_mol / 1000:.1f} kJ/mol "
        f"(95 % CI {fit.ea_low_j_per_mol / 1000:.1f} to {fit.ea_high_j_per_mol / 1000:.1f})"
    )
    console.print(
        f"k at {storage_temperature_c:g} °C = {pred.k:.3g} per {time_unit} "
        f"(95 % CI {pred.k_low:.3g} to {pred.k_high:.3g}); time to {100 * fraction:g} % "
        f"remaining {_fmt(t_est, ' ' + time_unit)} (lower bound {_fmt(t_low, ' ' + time_unit)})"
    )


def freeze_thaw(
    data_csv: Annotated[Path, typer.Argument(help="Counts after each freeze–thaw cycle (CSV).")],
    cycle_col: Annotated[str, typer.Option("--cycle-col")] = "cycle",
    count_col: Annotated[str, typer.Option("--count-col")] = "concentration_per_ml",
    batch_col: Annotated[str | None, typer.Option("--batch-col")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fraction of particles lost per freeze–thaw cycle (log-linear fit)."""
    from exocheck.qc.accelerated import freeze_thaw_loss

    loss = freeze_thaw_loss(
        _read_table(data_csv), cycle_col=cycle_col, count_col=count_col, batch_col=batch_col
    )
    if as_json:
        typer.echo(json.dumps(loss.model_dump(), indent=2, allow_nan=False))
        return
    console.print(
        f"loss per freeze–thaw cycle {100 * loss.loss_per_cycle:.2f} % "
        f"(95 % CI {100 * loss.loss_low:.2f} to {100 * loss.loss_high:.2f} %)"
    )


def register(app: typer.Typer) -> None:
    """Add the stability commands to the ``exocheck`` command."""
    app.command("shelf-life")(shelf_life)
    app.command("accelerated")(accelerated)
    app.command("freeze-thaw")(freeze_thaw)
