"""``exocheck import``: read instrument exports into measurement records."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from exocheck.cli._common import console, err_console
from exocheck.errors import ExocheckError

if TYPE_CHECKING:
    from exocheck.records import Measurement


def _fmt(value: float | None, spec: str = ".3g") -> str:
    return "—" if value is None else format(value, spec)


def _table(rows: list[tuple[Path, Measurement]]) -> Table:
    table = Table(title="Imported measurements")
    for name in (
        "file",
        "instrument",
        "sample",
        "particles/mL",
        "dilution",
        "D50 nm",
        "mean nm",
        "warnings",
    ):
        table.add_column(name, overflow="fold")
    for path, m in rows:
        table.add_row(
            path.name, m.source.instrument, m.sample or "—", _fmt(m.concentration.particles_per_ml),
            _fmt(m.dilution_factor, "g"), _fmt(m.size.d50_nm, ".1f"), _fmt(m.size.mean_nm, ".1f"),
            str(len(m.warnings)),
        )  # fmt: skip
    return table


def import_(
    paths: Annotated[
        list[Path], typer.Argument(help="Export files (or ViewSizer result folders).")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one compact JSON record per input.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write <stem>.json for each input here.")
    ] = None,
) -> None:
    """Import NanoSight, ZetaView, ViewSizer and nano-flow FCS exports.

    Bad files are reported one line each on stderr; the others are still imported; the
    exit status is 2 when any input failed.
    """
    from exocheck.instruments import read_measurement, to_json  # imported when used: start-up

    imported: list[tuple[Path, Measurement]] = []
    failed = 0
    for path in paths:
        try:
            measurement = read_measurement(path)
            if out is not None:
                to_json(measurement, out / f"{path.stem or path.name}.json")
        except ExocheckError as exc:
            failed += 1
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            continue
        except OSError as exc:
            failed += 1
            err_console.print(
                f"[bold red]error:[/] {out}: {exc.strerror or exc}", highlight=False, soft_wrap=True
            )
            continue
        imported.append((path, measurement))
        if as_json:
            typer.echo(measurement.to_json(indent=None))
    if not as_json and imported:
        console.print(_table(imported))
        for path, m in imported:
            for warning in m.warnings:
                err_console.print(
                    f"[yellow]warning:[/] {path.name}: {warning}", highlight=False, soft_wrap=True
                )
    if failed:
        raise typer.Exit(code=2)


def register(app: typer.Typer) -> None:
    """Add ``exocheck import`` to the application."""
    app.command(name="import")(import_)
