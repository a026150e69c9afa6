"""``exocheck product|spec|lot|measurement``: the QC store's records.

Every command takes ``--db URL`` (default ``$EXOCHECK_DATABASE_URL``, then a SQLite file in the
per-user data directory) and changes the store in one transaction. A database named by ``--db`` or
the variable must exist (``exocheck db init`` makes one; ``--create`` on the commands that start
one); only the per-user store is created on first use. Every command that writes says, on stderr,
which database it wrote to.

In a store with users every command that writes says who acts: ``--user NAME`` with the password
(from a prompt, or the first line of standard input with ``--password-stdin``), or the session of
``exocheck login``; ``--by`` names the person only in a store without users
(:func:`exocheck.auth.identity.identify` decides, and checks the role).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from exocheck.cli._common import console, err_console
from exocheck.errors import FormatError, ParameterError

if TYPE_CHECKING:
    from exocheck.store import Store

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL or SQLite file (default: $EXOCHECK_DATABASE_URL, "
        "then the per-user store).",
        show_default=False,
    ),
]
ByOption = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="Who enters this, in a store without users (default: $EXOCHECK_USER, then the "
        "login name). A store with users takes --user or 'exocheck login'.",
        show_default=False,
    ),
]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        help="Your user name, in a store with users (the password is asked; without --user, "
        "the session of 'exocheck login').",
        show_default=False,
    ),
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
CreateOption = Annotated[
    bool,
    typer.Option("--create", help="Create the database named by --db if it does not exist yet."),
]


def actor(by: str | None) -> str:
    """The name recorded in a store without users: ``by``, else ``$EXOCHECK_USER``, else the
    login name."""
    return by or os.environ.get("EXOCHECK_USER") or getpass.getuser()


def read_password(from_stdin: bool, prompt: str = "Password", confirm: bool = False) -> str:
    """The password from the next line of stdin or from a prompt (never echoed)."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
    else:
        if not sys.stdin.isatty():
            raise ParameterError("no terminal to ask for the password: use --password-stdin")
        password = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
    if not password:
        raise ParameterError("no password given")
    return password


def acting(
    store: Store,
    action: str,
    *,
    by: str | None = None,
    user: str | None = None,
    password_stdin: bool = False,
) -> str:
    """The name the audit trail records for a command that writes.

    :func:`exocheck.auth.identity.identify` on the command's options: in a store without users
    ``--by`` (or :func:`actor`'s default); in a store with users ``--user`` and its password
    (asked only then), else the saved session of ``exocheck login``, and the role must allow
    ``action``. Its errors are one line each (exit status 2).
    """
    from exocheck.auth.identity import identify
    from exocheck.auth.token_file import load_token

    if password_stdin and user is None:
        raise ParameterError("--password-stdin reads the password of --user NAME: give --user")
    return identify(
        store,
        action,
        by=by,
        user=user,
        password=lambda: read_password(password_stdin, prompt=f"Password of {user}"),
        token=lambda: load_token(store.url),
        default_name=lambda: actor(None),
    ).name


def open_store(db: str | None, *, create: bool = False):
    """The store named by ``--db`` (or ``$EXOCHECK_DATABASE_URL``), which must exist unless
    ``create``; without either, the per-user store (created on first use)."""
    from exocheck.store import ENV_VAR, Store

    named = db or os.environ.get(ENV_VAR)
    return Store.open(db, create=create or not named)


@contextmanager
def writing_store(db: str | None, *, create: bool = False) -> Iterator:
    """:func:`open_store` for a command that writes; afterwards it says which database it used."""
    with open_store(db, create=create) as store:
        yield store
        url = store.url
    err_console.print(f"database: {url}", highlight=False, soft_wrap=True)


def print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ParameterError(f"{what}: expected NAME=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    if not out:
        raise ParameterError(f"{what}: give at least one NAME=VALUE")
    return out


product_app = typer.Typer(help="Products and their label claims.", no_args_is_help=True)
spec_app = typer.Typer(help="Release specifications (versioned YAML).", no_args_is_help=True)
lot_app = typer.Typer(help="Lots of a product.", no_args_is_help=True)
db_app = typer.Typer(help="The QC database itself.", no_args_is_help=True)
measurement_app = typer.Typer(
    help="Results of a lot: NTA, protein, markers, safety tests.", no_args_is_help=True
)


@db_app.command("init")
def db_init(db: DbOption = None) -> None:
    """Create the database named by --db (or bring an existing one to the current schema)."""
    from exocheck.store import Store, resolve_url
    from exocheck.store.session import sqlite_path

    path = sqlite_path(resolve_url(db))
    existed = path is None or path.exists()
    with Store.open(db, create=True) as store:
        url = store.url
    console.print(
        f"database {'ready' if existed else 'created'}: {url}", highlight=False, soft_wrap=True
    )


@product_app.command("add")
def product_add(
    name: Annotated[str, typer.Argument(help="Product name.")],
    particles_per_unit: Annotated[
        float | None, typer.Option(help="Label claim: particles per unit (vial).")
    ] = None,
    fill_volume_ml: Annotated[float | None, typer.Option(help="Fill volume per unit, mL.")] = None,
    unit: Annotated[str, typer.Option(help="What one unit is called.")] = "vial",
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    db: DbOption = None,
    by: ByOption = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
    create: CreateOption = False,
) -> None:
    """Add a product with its label claim."""
    with writing_store(db, create=create) as store:
        store.add_product(
            name,
            particles_per_unit=particles_per_unit,
            fill_volume_ml=fill_volume_ml,
            unit_name=unit,
            description=description,
            by=acting(store, "catalog.edit", by=by, user=user, password_stdin=password_stdin),
        )
    console.print(f"product {name} added")


@product_app.command("list")
def product_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List products."""
    with open_store(db) as store:
        rows = store.list_products()
    if as_json:
        print_json(rows)
        return
    table = Table("product", "particles per unit", "fill volume (mL)")
    for r in rows:
        table.add_row(
            r["product"],
            f"{r['particles_per_unit']:.3g}" if r["particles_per_unit"] else "—",
            f"{r['fill_volume_ml']:g}" if r["fill_volume_ml"] else "—",
        )
    console.print(table)


@spec_app.command("add")
def spec_add(
    file: Annotated[Path, typer.Argument(help="Specification YAML.")],
    product: Annotated[str | None, typer.Option(help="Product it applies to.")] = None,
    db: DbOption = None,
    by: ByOption = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
    create: CreateOption = False,
) -> None:
    """Store a specification version (immutable once a lot uses it)."""
    with writing_store(db, create=create) as store:
        info = store.add_specification(
            file,
            product=product,
            by=acting(store, "catalog.edit", by=by, user=user, password_stdin=password_stdin),
        )
    if info.get("serves"):
        state = f"already stored; now serves {', '.join(info['serves'])}"
    else:
        state = "stored" if info["changed"] else "already stored, unchanged"
    console.print(f"specification {info['specification']} v{info['version']} {state}")


@spec_app.command("check")
def spec_check(file: Annotated[Path, typer.Argument(help="Specification YAML.")]) -> None:
    """Validate a specification file without storing it."""
    from exocheck.qc.specification import load_specification

    spec = load_specification(file)
    console.print(f"{file}: {spec.label}, {len(spec.criteria)} criteria, valid")


@spec_app.command("list")
def spec_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List stored specifications and how many lots use each."""
    with open_store(db) as store:
        rows = store.list_specifications()
    if as_json:
        print_json(rows)
        return
    table = Table("specification", "version", "lots", "sha256")
    for r in rows:
        table.add_row(r["specification"], str(r["version"]), str(r["lots"]), r["sha256"][:12])
    console.print(table)


@lot_app.command("add")
def lot_add(
    number: Annotated[str, typer.Argument(help="Lot number.")],
    product: Annotated[str, typer.Option(help="Product name.")],
    spec: Annotated[
        str | None,
        typer.Option(help="Specification NAME or NAME@VERSION (default: newest for the product)."),
    ] = None,
    manufactured: Annotated[
        str | None, typer.Option(help="Date of manufacture, YYYY-MM-DD.")
    ] = None,
    expiry: Annotated[str | None, typer.Option(help="Expiry date, YYYY-MM-DD.")] = None,
    db: DbOption = None,
    by: ByOption = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create a lot."""
    with writing_store(db) as store:
        info = store.add_lot(
            number,
            product,
            specification=spec,
            manufactured=manufactured,
            expiry=expiry,
            by=acting(store, "lot.create", by=by, user=user, password_stdin=password_stdin),
        )
    console.print(f"lot {number} of {product} added (specification {info['specification']})")


@lot_app.command("list")
def lot_list(
    product: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List lots with their status and decision (signed, or evaluated now)."""
    from exocheck.lots.status import overview

    with open_store(db) as store:
        rows = overview(store, product)
    if as_json:
        print_json(rows)
        return
    table = Table("lot", "product", "status", "decision")
    for r in rows:
        decision = r["decision"] or "—"
        if r["status"] == "awaiting data":
            decision = f"missing: {', '.join(r['missing']) or 'a specification'}"
        table.add_row(r["lot"], r["product"], r["status"], decision)
    console.print(table)


@lot_app.command("show")
def lot_show(
    number: Annotated[str, typer.Argument(help="Lot number.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a lot: status, product, specification, who entered and signed, raw files."""
    from exocheck.certify import require_intact_lot
    from exocheck.lots.status import lot_state

    with open_store(db) as store:
        require_intact_lot(store, number)  # records changed past exocheck: one line, no table
        state = lot_state(store, number)
        info = {"status": state["status"]} | store.lot_info(number)
        if state["missing"]:
            info["missing"] = state["missing"]
        if state["recall"]:
            recall = state["recall"]
            info["recall"] = f"{recall['by']}, {recall['at'][:10]}: {recall['reason']}"
    if as_json:
        print_json(info)
        return
    for key, value in info.items():
        if key in ("attachments", "measurements"):
            continue
        if hasattr(value, "strftime"):
            value = f"{value:%Y-%m-%d %H:%M %Z}".strip()
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "—"
        console.print(
            f"[bold]{key}[/]: {'—' if value is None else value}", highlight=False, soft_wrap=True
        )
    for x in info["measurements"]:
        withdrawn = x.get("withdrawn")
        line = (
            f"measurement {x['id']}: {x['kind']}, entered by {x['created_by']} at "
            f"{x['created_at']:%Y-%m-%d %H:%M %Z}"
        )
        line = escape(line)
        if withdrawn:
            why = escape(f"withdrawn by {withdrawn['by']}: {withdrawn['reason']}")
            line = f"[strike]{line}[/strike] — {why}"
        console.print(line, highlight=False, soft_wrap=True)
    for a in info["attachments"]:
        console.print(
            f"file {a['filename']} ({a['size_bytes']} bytes)\n  SHA-256 {a['sha256']}",
            highlight=False,
            soft_wrap=True,
        )


@measurement_app.command("add")
def measurement_add(
    lot: Annotated[str, typer.Argument(help="Lot number.")],
    file: Annotated[
        Path,
        typer.Argument(help="NTA result JSON, an instrument export or a ViewSizer result folder."),
    ],
    db: DbOption = None,
    by: ByOption = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
    allow_reuse: Annotated[
        str | None,
        typer.Option(
            "--allow-reuse",
            metavar="REASON",
            help="Accept raw data already measured for another "
            "lot; the reason goes into the audit trail.",
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            metavar="NAME[@VERSION]",
            help="The approved method the measurement was made under (an exocheck result must "
            "carry it already; an instrument export is entered as made under it).",
        ),
    ] = None,
) -> None:
    """Attach an NTA result (exocheck JSON or instrument export); the file is kept by SHA-256."""
    from exocheck.records import SCHEMA, Measurement

    head = b"" if file.is_dir() else file.read_bytes()[:4096]
    if f'"{SCHEMA}"'.encode() in head:
        record = Measurement.load(file)
    else:
        try:
            from exocheck.instruments import read_measurement
        except ImportError:
            raise FormatError(
                f"{file}: not an exocheck measurement record ({SCHEMA}) and "
                "instrument imports are not available"
            ) from None
        record = read_measurement(file)
    kept = nullcontext(file)
    if file.is_dir():  # a ViewSizer folder: the files it was read from are kept as one ZIP
        from exocheck.instruments.tree import original_file

        kept = original_file(file, record)
    with kept as original, writing_store(db) as store:
        store.add_measurement(
            lot,
            record,
            by=acting(store, "measurement.add", by=by, user=user, password_stdin=password_stdin),
            original_file=original,
            allow_reuse=allow_reuse,
            method=method,
        )
    console.print(f"lot {lot}: measurement from {file.name} added")


@measurement_app.command("protein")
def measurement_protein(
    lot: Annotated[str, typer.Argument(help="Lot number.")],
    ug_per_ml: Annotated[float, typer.Option(help="Total protein, µg/mL.")],
    sd_ug_per_ml: Annotated[float | None, typer.Option(help="Its standard deviation.")] = None,
    method: Annotated[str, typer.Option(help="Assay (BCA, micro-BCA, Bradford...).")] = "BCA",
    db: DbOption = None,
    by: ByOption = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Record the lot's total protein."""
    with writing_store(db) as store:
        store.add_protein(
            lot,
            ug_per_ml,
            sd_ug_per_ml=sd_ug_per_ml,
            method=method,
            by=acting(store, "measurement.add", by=by, user=user, password_stdin=password_stdin),
        )
    console.print(f"lot {lot}: protein {ug_per_ml:g} µg/mL added")


@measurement_app.command("markers")
def measurement_markers(
    lot: Annotated[str, typer.Argument(help="Lot number.")],
    results: Annotated[list[str], typer.Argument(help="MARKER=present|absent, e.g. CD9=present.")],
    method: Annotated[str | None, typer.Option(help="Western blot, flow, ELISA...")] = None,
    db: DbOption = None,
    by: ByOption = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Record a marker panel."""
    with writing_store(db) as store:
        store.add_markers(
            lot,
            _pairs(results, "markers"),
            method=method,
            by=acting(store, "measurement.add", by=by, user=user, password_stdin=password_stdin),
        )
    console.print(f"lot {lot}: {len(results)} marker result(s) added")


@measurement_app.command("safety")
def measurement_safety(
    lot: Annotated[str, typer.Argument(help="Lot number.")],
    results: Annotated[
        list[str],
        typer.Argument(help="TEST=VALUE, e.g. endotoxin_eu_per_ml=0.05 sterility=negative."),
    ],
    db: DbOption = None,
    by: ByOption = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Record safety tests (numeric, or positive/negative)."""
    with writing_store(db) as store:
        store.add_safety(
            lot,
            _pairs(results, "safety"),
            by=acting(store, "measurement.add", by=by, user=user, password_stdin=password_stdin),
        )
    console.print(f"lot {lot}: {len(results)} safety result(s) added")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(product_app, name="product")
    app.add_typer(spec_app, name="spec")
    app.add_typer(lot_app, name="lot")
    app.add_typer(measurement_app, name="measurement")
