"""``exocheck instrument|method|calibration``: the instrument register, analytical methods and
stored bead calibrations (:mod:`exocheck.methods`).

Every command takes ``--db`` like the store's commands; those that write say who acts
(``--user`` / ``exocheck login``, or ``--by`` in a store without users) and the role is checked:
the register is QA's (``instrument.edit``), methods are written by analysts or QA and approved
by QA, never by their author.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from exocheck.cli._common import console
from exocheck.cli.store_cmds import (
    ByOption,
    DbOption,
    JsonOption,
    PasswordStdin,
    UserOption,
    acting,
    open_store,
    print_json,
    writing_store,
)

instrument_app = typer.Typer(help="The instrument register.", no_args_is_help=True)
method_app = typer.Typer(
    help="Analytical methods (versioned, approved by QA).", no_args_is_help=True
)
calibration_app = typer.Typer(help="Stored bead calibrations.", no_args_is_help=True)


def _show(info: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    for key, value in info.items():
        if key in skip:
            continue
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "—"
        console.print(
            f"[bold]{key}[/]: {'—' if value is None else value}", highlight=False, soft_wrap=True
        )


@instrument_app.command("add")
def instrument_add(
    serial: Annotated[str, typer.Argument(help="Serial number, as the instrument states it.")],
    model: Annotated[str, typer.Option(help="Instrument model, e.g. 'NanoSight NS300'.")],
    laser_wavelength_nm: Annotated[float | None, typer.Option(help="Laser wavelength, nm.")] = None,
    filter_set: Annotated[
        str | None, typer.Option(help="Filter set, e.g. '500 nm long-pass'.")
    ] = None,
    camera: Annotated[str | None, typer.Option(help="Camera, e.g. 'sCMOS'.")] = None,
    pixel_size_um: Annotated[float | None, typer.Option(help="Pixel size, µm.")] = None,
    qualification_due: Annotated[
        str | None, typer.Option(help="Next qualification due, YYYY-MM-DD.")
    ] = None,
    calibration_due: Annotated[
        str | None, typer.Option(help="Next instrument calibration due, YYYY-MM-DD.")
    ] = None,
    db: DbOption = None,
    by: ByOption = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Add an instrument to the register."""
    from exocheck.methods.instruments import add_instrument
    from exocheck.methods.units import check_values

    check_values({"pixel_size_um": pixel_size_um, "wavelength_nm": laser_wavelength_nm})
    with writing_store(db) as store:
        info = add_instrument(
            store,
            serial=serial,
            model=model,
            laser_wavelength_nm=laser_wavelength_nm,
            filter_set=filter_set,
            camera=camera,
            pixel_size_um=pixel_size_um,
            qualification_due=qualification_due,
            calibration_due=calibration_due,
            by=acting(store, "instrument.edit", by=by, user=user, password_stdin=password_stdin),
        )
    console.print(f"instrument {info['serial']} ({info['model']}) added", highlight=False)


@instrument_app.command("list")
def instrument_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the instruments of the register."""
    from exocheck.methods.instruments import list_instruments

    with open_store(db) as store:
        rows = list_instruments(store)
    if as_json:
        print_json(rows)
        return
    table = Table("serial", "model", "qualification due", "calibration due")
    for r in rows:
        table.add_row(
            r["serial"],
            r["model"],
            (r["qualification_due"] or "—")[:10],
            (r["calibration_due"] or "—")[:10],
        )
    console.print(table)


@instrument_app.command("show")
def instrument_show(
    serial: Annotated[str, typer.Argument(help="Serial number.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show an instrument, and what is past due on it."""
    from exocheck.methods.instruments import get_instrument

    with open_store(db) as store:
        info = get_instrument(store, serial)
    if as_json:
        print_json(info)
        return
    _show(info)


@method_app.command("add")
def method_add(
    file: Annotated[Path, typer.Argument(help="Method YAML (schema exocheck.method/1).")],
    db: DbOption = None,
    by: ByOption = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Store a method version as a draft (QA approves it before use)."""
    from exocheck.methods.methods import add_method

    with writing_store(db) as store:
        info = add_method(
            store,
            file,
            by=acting(store, "method.add", by=by, user=user, password_stdin=password_stdin),
        )
    state = "stored as a draft" if info["changed"] else "already stored, unchanged"
    console.print(f"method {info['method']} {state} ({info['status']})", highlight=False)


@method_app.command("approve")
def method_approve(
    method: Annotated[str, typer.Argument(help="NAME@VERSION (or NAME: its newest version).")],
    db: DbOption = None,
    by: ByOption = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Approve a method version (QA; never its author)."""
    from exocheck.methods.methods import approve_method

    with writing_store(db) as store:
        info = approve_method(
            store,
            method,
            by=acting(store, "method.approve", by=by, user=user, password_stdin=password_stdin),
        )
    console.print(f"method {info['method']} approved by {info['approved_by']}", highlight=False)


@method_app.command("list")
def method_list(
    approved: Annotated[bool, typer.Option("--approved", help="Only approved versions.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List method versions, drafts included (unless --approved)."""
    from exocheck.methods.methods import approved_methods, list_methods

    with open_store(db) as store:
        rows = approved_methods(store) if approved else list_methods(store)
    if as_json:
        print_json(rows)
        return
    table = Table("method", "instrument model", "status", "written by", "approved by")
    for r in rows:
        table.add_row(
            r["method"],
            r["instrument_model"],
            r["status"],
            r["created_by"],
            r["approved_by"] or "—",
        )
    console.print(table)


@method_app.command("show")
def method_show(
    method: Annotated[str, typer.Argument(help="NAME@VERSION (or NAME: its newest version).")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a method: its document, approval, and the detection limit its newest calibration
    implies for the product's refractive index."""
    from exocheck.methods.methods import get_method

    with open_store(db) as store:
        info = get_method(store, method)
    if as_json:
        print_json(info)
        return
    _show(info, skip=("document", "yaml", "detection_limit"))
    limit = info["detection_limit"]
    if limit["detection_limit_nm"] is not None:
        note = (
            f" (the reportable range starts below it, at {limit['reportable_from_nm']:g} nm)"
            if limit["below_limit"]
            else ""
        )
        console.print(
            f"[bold]detection limit[/]: {limit['detection_limit_nm']:.0f} nm for refractive "
            f"index {limit['refractive_index']:g} (calibration {limit['calibration']}){note}",
            highlight=False,
        )
    console.print(info["yaml"], highlight=False, markup=False)


@calibration_app.command("list")
def calibration_list(
    instrument: Annotated[str | None, typer.Option(help="Only this instrument's.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List stored bead calibrations, newest first."""
    from exocheck.methods.calibrations import list_calibrations

    with open_store(db) as store:
        rows = list_calibrations(store, instrument)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "instrument", "method", "standard lot", "D50 nm", "span", "valid until")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["instrument"] or "—",
            r["method"] or "—",
            r["standard_lot"],
            f"{r['measured_d50_nm']:.1f}",
            f"{r['span']:.2f}",
            (r["valid_until"] or "—")[:10],
        )
    console.print(table)


@calibration_app.command("show")
def calibration_show(
    calibration: Annotated[str, typer.Argument(help="The calibration's id.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a stored calibration."""
    from exocheck.methods.calibrations import get_calibration

    with open_store(db) as store:
        info = get_calibration(store, calibration)
    if as_json:
        print_json(info)
        return
    _show(info, skip=("calibration",))


def register(app: typer.Typer) -> None:
    app.add_typer(instrument_app, name="instrument")
    app.add_typer(method_app, name="method")
    app.add_typer(calibration_app, name="calibration")
