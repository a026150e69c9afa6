"""``exocheck keys …``, ``exocheck verify``, ``exocheck audit verify``, ``exocheck recall`` and
``exocheck certificate status``: signing keys, offline verification, the audit chain, recalls.

``exocheck verify`` and ``exocheck audit verify`` exit with status 1 and one line naming what
failed when a certificate or the audit trail does not verify (status 2 stays for usage errors);
``audit verify`` prints one such line per finding: the chain, then each record that no longer
matches the hash the chain recorded for it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from exocheck.cli._common import console, err_console
from exocheck.cli.store_cmds import DbOption, JsonOption, open_store, print_json
from exocheck.cli.web_cmds import PasswordStdin, read_password
from exocheck.errors import ParameterError

keys_app = typer.Typer(
    help="The organisation's signing keys for certificates.", no_args_is_help=True
)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
certificate_app = typer.Typer(help="Issued certificates.", no_args_is_help=True)

KeysOption = Annotated[
    Path | None,
    typer.Option(
        "--keys",
        help="Keyring folder (default: $EXOCHECK_KEYS_DIR, then the per-user data folder).",
        show_default=False,
    ),
]


AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Postal address on the certificates' letterhead (lines separated by ';').",
        show_default=False,
    ),
]
LogoOption = Annotated[
    Path | None,
    typer.Option(
        "--logo",
        help="Logo on the certificates' letterhead: a PNG (at most 2000 px a side) or a "
        "plain SVG, at most 256 KiB; copied into the keyring folder.",
        show_default=False,
    ),
]


def _keyring(folder: Path | None):
    from exocheck.certify import Keyring

    return Keyring(folder)


def _fail(line: str) -> None:
    err_console.print(f"[bold red]FAILED:[/] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@keys_app.command("init")
def keys_init(
    org: Annotated[str, typer.Option("--org", help="Organisation that issues certificates.")],
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="Base URL of the public verification page (the QR code points to "
            "URL/verify/<certificate id>).",
        ),
    ] = None,
    address: AddressOption = None,
    logo: LogoOption = None,
    keys: KeysOption = None,
) -> None:
    """Create the signing keys: Ed25519 for data, P-256 with a self-signed X.509 for PDFs;
    with the organisation's letterhead (name, address, logo) that every certificate shows."""
    ring = _keyring(keys)
    ids = ring.init(org, public_url=public_url, address=address, logo=logo)
    console.print(
        f"keys created in {ring.folder} (private keys readable by you only): data "
        f"Ed25519 {ids['data']}, PDF ECDSA P-256 {ids['pdf']} (self-signed)",
        highlight=False,
        soft_wrap=True,
    )


@keys_app.command("letterhead")
def keys_letterhead(
    address: AddressOption = None,
    logo: LogoOption = None,
    no_logo: Annotated[
        bool, typer.Option("--no-logo", help="Remove the logo from the letterhead.")
    ] = False,
    keys: KeysOption = None,
) -> None:
    """Show, or set, the letterhead of an existing keyring (what is not given stays)."""
    if logo is not None and no_logo:
        raise ParameterError("--logo and --no-logo exclude each other")
    ring = _keyring(keys)
    if address is not None or logo is not None or no_logo:
        head = ring.set_letterhead(address=address, logo=logo, remove_logo=no_logo)
    else:
        head = ring.letterhead()
    where = " / ".join(head.address_lines) or "no address"
    mark = f"logo {head.logo_media_type}, {len(head.logo)} bytes" if head.logo else "no logo"
    console.print(f"{head.organisation}; {where}; {mark}", highlight=False, soft_wrap=True)


@keys_app.command("rotate")
def keys_rotate(
    use: Annotated[
        str | None, typer.Option("--only", help="Rotate only 'data' or 'pdf' (default: both).")
    ] = None,
    keys: KeysOption = None,
) -> None:
    """New active keys; the old ones are retired (their public parts stay for verification)."""
    from exocheck.certify.keys import USES

    if use is not None and use not in USES:
        raise ParameterError(f"--only takes data or pdf, not {use!r}")
    ring = _keyring(keys)
    ids = ring.rotate((use,) if use else USES)
    console.print(
        "new keys: "
        + ", ".join(f"{k} {v}" for k, v in ids.items())
        + "; export the public keys again for recipients",
        highlight=False,
    )


@keys_app.command("import")
def keys_import(
    file: Annotated[Path, typer.Argument(help="PEM (key and certificates) or PKCS#12 (.p12).")],
    password_stdin: PasswordStdin = False,
    keys: KeysOption = None,
) -> None:
    """Sign PDFs with the organisation's own key and certificate (e.g. from its CA)."""
    password = read_password(True) if password_stdin else None
    ring = _keyring(keys)
    kid = ring.import_pdf_key(file, password)
    console.print(f"PDF signing key {kid} imported into {ring.folder}", highlight=False)


@keys_app.command("export-public")
def keys_export_public(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON file for recipients.")],
    keys: KeysOption = None,
) -> None:
    """Write every public key and certificate (active and retired) for verifiers."""
    path = _keyring(keys).export_public(out)
    console.print(f"public keys: {path}", highlight=False)


@keys_app.command("list")
def keys_list(keys: KeysOption = None, as_json: JsonOption = False) -> None:
    """The keys of the keyring (public information only)."""
    rows = [
        {k: v for k, v in key.as_json().items() if not k.endswith("_pem")}
        for key in _keyring(keys).public_keys()
    ]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        state = f"retired {r['retired']}" if r["retired"] else "active"
        console.print(
            f"{r['id']}  {r['use']:4}  {r['algorithm']:12}  created {r['created']}  {state}",
            highlight=False,
        )


def verify(
    file: Annotated[
        Path, typer.Argument(help="Certificate PDF, or coa.json (coa.json.sig beside it).")
    ],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The issuer's public keys (from 'exocheck keys export-public', or "
            "PEM). Default: the local keyring.",
        ),
    ] = None,
    keys: KeysOption = None,
) -> None:
    """Verify a certificate offline: signatures, keys, and that the page shows the signed data."""
    from exocheck.certify import VerificationFailed, load_public_keys, verify_path

    # pyHanko logs its analysis of a tampered file with tracebacks; the verdict is our one line
    logging.getLogger("pyhanko").addHandler(logging.NullHandler())
    logging.getLogger("pyhanko").propagate = False
    if public_key is not None:
        published = load_public_keys(public_key)
    else:
        ring = _keyring(keys)
        if not ring.exists():
            _fail(
                "unknown key: no published keys to check against (give --public-key FILE "
                "from the issuer)"
            )
        published = ring.public_keys()
    if not file.is_file():
        raise ParameterError(f"{file}: no such file")
    try:
        result = verify_path(file, published)
    except VerificationFailed as exc:
        _fail(str(exc))
    for line in result.lines():
        console.print(line, highlight=False, soft_wrap=True)


@audit_app.command("verify")
def audit_verify(db: DbOption = None) -> None:
    """Check the audit trail's hash chain, the chain heads signed into certificates, and every
    record the chain recorded (measurements, raw files, specifications, releases, signatures…).

    Records written before row hashing are listed as not sealed, apart from failures."""
    from exocheck.certify import verify_audit_trail

    with open_store(db) as store:
        check = verify_audit_trail(store)
    if not check.intact:
        for line in check.failures():
            err_console.print(f"[bold red]FAILED:[/] {line}", highlight=False, soft_wrap=True)
        for line in check.rows.unsealed:
            err_console.print(line, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    for line in check.lines():
        console.print(line, highlight=False, soft_wrap=True)


def recall(
    lot: Annotated[str, typer.Argument(help="Lot number.")],
    user: Annotated[str, typer.Option("--user", help="QA user who signs the recall.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the lot is recalled.")],
    password_stdin: PasswordStdin = False,
    db: DbOption = None,
) -> None:
    """Recall a released lot (QA electronic signature); its certificates show it at once."""
    from exocheck.certify import recall_lot

    password = read_password(password_stdin)
    with open_store(db) as store:
        record = recall_lot(store, lot, user=user, password=password, reason=reason)
    console.print(
        f"lot {lot} recalled by {record['by']} at {record['at']}: {record['reason']}",
        highlight=False,
        soft_wrap=True,
    )


@certificate_app.command("status")
def certificate_status(
    certificate_id: Annotated[str, typer.Argument(help="Certificate id (COA-…).")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """What the public verification page shows for a certificate."""
    from exocheck.certify import verify_certificate_status

    with open_store(db) as store:
        status = verify_certificate_status(store, certificate_id)
    if as_json:
        print_json(status)
        return
    if not status["found"]:
        _fail(f"unknown certificate: {certificate_id} was not issued by this store")
    if not status["genuine"]:
        _fail(f"certificate {certificate_id}: its stored record no longer matches its signature")
    line = (
        f"certificate {certificate_id} (lot {status['lot']}): genuine; {status['status']} "
        f"since {status['status_since']}"
    )
    if status["recall"]:
        line += f" by {status['recall']['by']}: {status['recall']['reason']}"
    if status["superseded_by"]:
        line += f" by {status['superseded_by']}"
    console.print(line, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")
    app.add_typer(certificate_app, name="certificate")
    app.command("verify")(verify)
    app.command("recall")(recall)
