"""``exocheck import``: read instrument exports into measurement records."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from exocheck.cli._common import console, err_console
from exocheck.cli.store_cmds import PasswordStdin, UserOption
from exocheck.errors import ExocheckError

if TYPE_CHECKING:
    from exocheck.records import Measurement


def _fmt(value: float | None, spec: str = ".3g") -> str:
    return "—" if value is None else format(value, spec)


def _label(path: Path, root: Path | None) -> str:
    if root is None:
        return path.name
    try:
        return path.relative_to(root).as_posix() or path.name
    except ValueError:
        return path.name


def _channel(m: Measurement) -> str:
    """A short channel label for the table (``scatter``, ``FL 500``: fluorescence through a
    500 nm filter, ``FL``), or empty when the export does not say; the laser and the
    settings are in the record."""
    ch = m.channel
    if ch is None:
        return ""
    if ch.mode == "scatter":
        return "scatter"
    return "FL" if ch.filter_wavelength_nm is None else f"FL {ch.filter_wavelength_nm:g}"


def _table(rows: list[tuple[Path, Measurement]], root: Path | None) -> Table:
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
        extra = len(m.source.files) - 1
        label = _label(path, root) + (
            f" (+{extra} file{'s' if extra > 1 else ''})" if extra else ""
        )
        table.add_row(
            label, "\n".join(filter(None, (m.source.instrument, _channel(m)))),
            m.sample or "—", _fmt(m.concentration.particles_per_ml),
            _fmt(m.dilution_factor, "g"), _fmt(m.size.d50_nm, ".1f"), _fmt(m.size.mean_nm, ".1f"),
            str(len(m.warnings)),
        )  # fmt: skip
    return table


def _resized_table(path: Path, m: Measurement) -> Table:
    from exocheck.instruments.resize import comparison_rows

    resized = m.diagnostics["resized"]
    table = Table(
        title=f"{path.name}: vendor sizing vs exocheck re-sizing of {resized['tracks']} tracks "
        f"(mean length {resized['mean_track_length_frames']:.1f} frames)"
    )
    for name in ("statistic", "vendor (stated)", "vendor per-track sizes", "exocheck re-sized",
                 "exocheck 95 % interval"):  # fmt: skip
        table.add_column(name, justify="right" if name != "statistic" else "left")
    for key, stated, per_track, ours in comparison_rows(m):
        ci = resized.get("ci", {}).get(key)
        table.add_row(
            key.removesuffix("_nm").upper() if key.startswith("d") else key.removesuffix("_nm"),
            _fmt(stated, ".1f"), _fmt(per_track, ".1f"), _fmt(ours, ".1f"),
            f"{ci[0]:.1f} – {ci[1]:.1f}" if ci else "—",
        )  # fmt: skip
    return table


def _gather(paths: list[Path], recursive: bool) -> tuple[list[tuple[Path, Path | None]], dict]:
    """(input, root it was found under) pairs, and the files a walk did not try."""
    if not recursive:
        return [(p, None) for p in paths], {}
    from exocheck.instruments.tree import collect

    items: list[tuple[Path, Path | None]] = []
    not_tried: dict[str, int] = {}
    for path in paths:
        if not path.is_dir():
            items.append((path, None))
            continue
        tree = collect(path)
        items.extend((found, path) for found, _ in tree.measurements)
        for suffix, count in tree.not_tried.items():
            not_tried[suffix] = not_tried.get(suffix, 0) + count
    return items, not_tried


def import_(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Export files, ViewSizer result folders, or (with --recursive) folders to walk."
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one compact JSON record per input.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write <stem>.json for each input here.")
    ] = None,
    recursive: Annotated[
        bool,
        typer.Option(
            "--recursive",
            "-r",
            help="Walk folders: every export in them, the files "
            "of one measurement grouped (a summary with its .nano, a size file with "
            "its _11pos table, a ViewSizer folder).",
        ),
    ] = False,
    resize: Annotated[
        bool,
        typer.Option(
            "--resize",
            help="Re-size per-track vendor data (per-particle CSVs, "
            "per-track FCS) with exocheck's maximum-likelihood sizing; shows both "
            "distributions (table, and a PNG beside the JSON or in the current "
            "folder).",
        ),
    ] = False,
    lot: Annotated[
        str | None,
        typer.Option(
            "--lot",
            help="Also add each measurement to this lot in the QC store "
            "(originals kept; a folder as a ZIP of the files read).",
        ),
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL (with --lot).", show_default=False)
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Who enters the data (with --lot), in a store without users (default "
            "$EXOCHECK_USER, then the login name). A store with users takes --user or "
            "'exocheck login'.",
            show_default=False,
        ),
    ] = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Import NanoSight, ZetaView, ViewSizer and nano-flow FCS exports.

    Bad files are reported one line each on stderr; the others are still imported; the
    exit status is 2 when any input failed.
    """
    # imported when used: start-up time
    from exocheck.instruments import read_measurement, to_json

    items, not_tried = _gather(paths, recursive)
    imported: list[tuple[Path, Measurement]] = []
    roots: dict[Path, Path | None] = {}
    failed = 0
    for path, root in items:
        busy = (
            err_console.status(f"{path.name}: re-sizing the vendor's tracks")
            if resize
            else nullcontext()
        )  # seconds for thousands of tracks
        try:
            with busy:
                measurement = read_measurement(path, resize=resize)
            if out is not None:
                name = _label(path, root).replace("/", "__") if root else path.stem or path.name
                to_json(measurement, out / f"{Path(name).stem if root else name}.json")
        except ExocheckError as exc:
            failed += 1
            hint = (
                " (to import the exports inside a folder, add --recursive)"
                if path.is_dir() and not recursive
                else ""
            )
            err_console.print(f"[bold red]error:[/] {exc}{hint}", highlight=False, soft_wrap=True)
            continue
        except OSError as exc:
            failed += 1
            err_console.print(
                f"[bold red]error:[/] {out}: {exc.strerror or exc}", highlight=False, soft_wrap=True
            )
            continue
        imported.append((path, measurement))
        roots[path] = root
        if as_json:
            typer.echo(measurement.to_json(indent=None))
    if lot is not None and imported:
        failed += _store(imported, lot, db, by, user, password_stdin)
    if not as_json and imported:
        common = roots[imported[0][0]] if len(set(roots.values())) == 1 else None
        console.print(_table(imported, common))
        for path, m in imported:
            for warning in m.warnings:
                err_console.print(
                    f"[yellow]warning:[/] {_label(path, roots[path])}: {warning}",
                    highlight=False,
                    soft_wrap=True,
                )
    if resize:
        _show_resized(imported, out, quiet=as_json)
    if not_tried:
        listed = ", ".join(f"{n} {s}" for s, n in sorted(not_tried.items()))
        err_console.print(
            f"not tried ({sum(not_tried.values())} files that are not instrument exports): "
            f"{listed}",
            highlight=False,
            soft_wrap=True,
        )
    if recursive and not items:
        err_console.print("no instrument exports found", highlight=False)
    if failed:
        raise typer.Exit(code=2)


def _show_resized(imported: list[tuple[Path, Measurement]], out: Path | None, quiet: bool) -> None:
    from exocheck.instruments.resize import comparison_png
    from exocheck.records import atomic_write_bytes

    for path, m in imported:
        if "resized" not in m.diagnostics:
            continue
        if not quiet:
            console.print(_resized_table(path, m))
        target = (out or Path.cwd()) / f"{path.stem or path.name}-resized.png"
        try:
            atomic_write_bytes(target, comparison_png(m))
        except OSError as exc:
            err_console.print(
                f"[bold red]error:[/] {target}: {exc.strerror or exc}", highlight=False
            )
            continue
        err_console.print(f"plot: {target}", highlight=False, soft_wrap=True)


def _store(
    imported: list[tuple[Path, Measurement]],
    lot: str,
    db: str | None,
    by: str | None,
    user: str | None,
    password_stdin: bool,
) -> int:
    """Add the measurements to ``lot``; returns how many could not be added (one line each).

    Who enters them is established once, before any is added (a refusal adds none)."""
    from exocheck.cli.store_cmds import acting, open_store
    from exocheck.instruments.tree import original_file

    failed = 0
    with open_store(db) as store:
        name = acting(store, "measurement.add", by=by, user=user, password_stdin=password_stdin)
        for path, m in imported:
            try:
                with original_file(path, m) as original:
                    store.add_measurement(lot, m, by=name, original_file=original)
            except ExocheckError as exc:
                failed += 1
                err_console.print(
                    f"[bold red]error:[/] {path}: not added to lot {lot}: {exc}",
                    highlight=False,
                    soft_wrap=True,
                )
                continue
            err_console.print(f"lot {lot}: measurement from {path.name} added", highlight=False)
    return failed


def register(app: typer.Typer) -> None:
    """Add ``exocheck import`` to the application."""
    app.command(name="import")(import_)
