"""``exocheck study import|list|shelf-life``: stability studies in the QC store.

The evaluation options are those of ``exocheck shelf-life``. Given to ``study import`` they are
stored with the study as its protocol (and used by ``exocheck coa``); given to
``study shelf-life`` they override the stored protocol for that run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from exocheck.cli._common import console
from exocheck.cli.stability import print_shelf_life
from exocheck.cli.store_cmds import (
    ByOption,
    CreateOption,
    DbOption,
    JsonOption,
    PasswordStdin,
    UserOption,
    acting,
    open_store,
    print_json,
    writing_store,
)
from exocheck.errors import ParameterError

study_app = typer.Typer(
    help="Stability studies: import from CSV, list, shelf life.", no_args_is_help=True
)

LowerOption = Annotated[
    float | None,
    typer.Option("--lower-limit", help="Lower acceptance limit, in the response's units."),
]
UpperOption = Annotated[
    float | None,
    typer.Option("--upper-limit", help="Upper acceptance limit, in the response's units."),
]
TransformOption = Annotated[
    str | None,
    typer.Option("--transform", help="none, or log for first-order loss.", show_default=False),
]
StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage", help="frozen, refrigerated or room (ICH Q1E rules).", show_default=False
    ),
]
AcceleratedOption = Annotated[
    str | None, typer.Option("--accelerated-change", help="none or significant (default: unknown).")
]
IntermediateOption = Annotated[
    str | None,
    typer.Option("--intermediate-change", help="none or significant.", show_default=False),
]
ConfidenceOption = Annotated[float | None, typer.Option("--confidence", show_default=False)]
WhereOption = Annotated[
    list[str] | None,
    typer.Option(
        "--where", help="Storage condition: temperature_c=VALUE, container=VALUE, buffer=VALUE."
    ),
]


def _where(clauses: list[str] | None) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for clause in clauses or []:
        key, sep, value = clause.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--where {clause!r}: use COLUMN=VALUE, e.g. temperature_c=4")
        out[key.strip()] = value.strip()
    return out or None


def _settings(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@study_app.command("import")
def study_import(
    csv: Annotated[Path, typer.Argument(help="Study table, one row per result (CSV).")],
    name: Annotated[str, typer.Option("--name", help="Name of the study.")],
    product: Annotated[str, typer.Option("--product", help="Product the lots belong to.")],
    response_col: Annotated[str, typer.Option("--response-col", help="Response column.")] = (
        "response"
    ),
    time_col: Annotated[str, typer.Option("--time-col", help="Time column.")] = "time",
    lot_col: Annotated[str, typer.Option("--lot-col", help="Lot column.")] = "lot",
    time_unit: Annotated[
        str, typer.Option("--time-unit", help="Unit of the time column: month, week, day, ...")
    ] = "month",
    unit: Annotated[str | None, typer.Option("--unit", help="Unit of the response.")] = None,
    temperature_col: Annotated[str, typer.Option("--temperature-col")] = "temperature_c",
    container_col: Annotated[str, typer.Option("--container-col")] = "container",
    buffer_col: Annotated[str, typer.Option("--buffer-col")] = "buffer",
    lower_limit: LowerOption = None,
    upper_limit: UpperOption = None,
    transform: TransformOption = None,
    storage: StorageOption = None,
    accelerated_change: AcceleratedOption = None,
    intermediate_change: IntermediateOption = None,
    confidence: ConfidenceOption = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where", help="The labelled storage condition, e.g. temperature_c=4 (repeat)."
        ),
    ] = None,
    db: DbOption = None,
    by: ByOption = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
    create: CreateOption = False,
) -> None:
    """Import a stability study; every lot must already be a lot of the product."""
    protocol = _settings(
        lower_limit=lower_limit,
        upper_limit=upper_limit,
        transform=transform,
        storage=storage,
        accelerated_change=accelerated_change,
        intermediate_change=intermediate_change,
        confidence=confidence,
        condition=_where(where),
    )
    with writing_store(db, create=create) as store:
        info = store.import_study(
            csv,
            name=name,
            product=product,
            by=acting(store, "measurement.add", by=by, user=user, password_stdin=password_stdin),
            response_col=response_col,
            lot_col=lot_col,
            time_col=time_col,
            temperature_col=temperature_col,
            container_col=container_col,
            buffer_col=buffer_col,
            time_unit=time_unit,
            unit=unit,
            protocol=protocol,
        )
    console.print(
        f"study {name}: {info['results']} results of {len(info['lots'])} lot(s) under "
        f"{len(info['conditions'])} condition(s) imported",
        highlight=False,
    )


@study_app.command("list")
def study_list(
    product: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List stored stability studies."""
    with open_store(db) as store:
        rows = store.list_studies(product)
    if as_json:
        print_json(rows)
        return
    table = Table("study", "product", "attribute", "conditions", "lots", "results")
    for r in rows:
        table.add_row(
            r["study"],
            r["product"] or "—",
            r["attribute"],
            "; ".join(r["conditions"]),
            ", ".join(r["lots"]),
            str(r["results"]),
        )
    console.print(table)


@study_app.command("shelf-life")
def study_shelf_life(
    name: Annotated[str, typer.Argument(help="Study name.")],
    lower_limit: LowerOption = None,
    upper_limit: UpperOption = None,
    transform: TransformOption = None,
    storage: StorageOption = None,
    accelerated_change: AcceleratedOption = None,
    intermediate_change: IntermediateOption = None,
    confidence: ConfidenceOption = None,
    where: WhereOption = None,
    label_claim: Annotated[
        float | None,
        typer.Option(
            "--label-claim",
            help="Particles per unit at release (default: the product's claim, "
            "with --transform log).",
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot here.")] = None,
) -> None:
    """Shelf life by ICH Q1E from a stored study (options override its stored protocol)."""
    from exocheck.qc.expiry import particles_at_expiry

    chosen = _where(where)
    with open_store(db) as store:
        result = store.shelf_life(
            name,
            where=chosen,
            **_settings(
                lower_limit=lower_limit,
                upper_limit=upper_limit,
                transform=transform,
                storage=storage,
                accelerated_change=accelerated_change,
                intermediate_change=intermediate_change,
                confidence=confidence,
            ),
        )
        condition = store.study_condition(name, chosen)
        info = next(s for s in store.list_studies() if s["study"] == name)
        if label_claim is None and result.transform == "log" and info["product"]:
            label_claim = next(p for p in store.list_products() if p["product"] == info["product"])[
                "particles_per_unit"
            ]
        frame = store.get_study(name).frame(condition) if plot is not None else None
    expiry = None
    if label_claim is not None:
        expiry = particles_at_expiry(result, label_claim_per_unit=label_claim)
    if frame is not None:
        from exocheck.qc.stability_plot import plot_shelf_life, save_figure

        save_figure(
            plot_shelf_life(
                result,
                frame,
                time_col="time",
                response_col="value",
                batch_col="lot",
                title=f"{name}: {condition.label}",
            ),
            plot,
        )
    print_shelf_life(
        result,
        expiry,
        f"Shelf life — study {name} ({condition.label})",
        as_json,
        header={"study": name, "condition": condition.model_dump()},
    )


def register(app: typer.Typer) -> None:
    """Add ``exocheck study`` to the command."""
    app.add_typer(study_app, name="study")
