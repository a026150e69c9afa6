"""``exocheck release|compare|coa|history``: decisions, comparability, certificates, audit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from exocheck.cli._common import console, err_console
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
from exocheck.errors import ParameterError

_STYLE = {
    "pass": "green",
    "fail": "red",
    "inconclusive": "yellow",
    "missing": "dim",
    "conforms": "bold green",
    "does-not-conform": "bold red",
    "inconclusive-decision": "bold yellow",
    "incomplete": "bold yellow",
}


def release(
    lot: Annotated[str, typer.Argument(help="Lot number.")],
    approve: Annotated[
        bool, typer.Option("--approve", help="Sign the decision (needs --by).")
    ] = False,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Approver; must not have entered any of the lot's data."),
    ] = None,
    comment: Annotated[str | None, typer.Option(help="Comment stored with the signature.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a lot against its specification; with --approve --by NAME, sign the decision.

    A lot already signed prints its signed decision.
    """
    if approve and not by:
        raise ParameterError("--approve needs --by NAME (the approver)")
    if by and not approve:
        raise ParameterError("--by is for signing: add --approve")
    from exocheck.certify import require_intact_lot

    with (writing_store if approve else open_store)(db) as store:
        require_intact_lot(store, lot)  # records changed past exocheck: refused, one line
        result = store.approve(lot, by=by, comment=comment) if approve else store.evaluate(lot)
        info = store.lot_info(lot)
    if as_json:
        print_json(result.summary())
        return
    # 80 columns: the value column is wide enough for a number with its interval, never split
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("criterion", width=18)
    table.add_column("value", width=20)
    table.add_column("limit", width=20)
    table.add_column("result", no_wrap=True, width=12)
    for c in result.criteria:
        table.add_row(c.name, c.display_value, c.limit, f"[{_STYLE[c.result]}]{c.result}[/]")
    console.print(table)
    for c in result.criteria:  # why a criterion cannot decide, or what it lacks
        if c.result in ("inconclusive", "missing") and c.detail:
            console.print(f"[yellow]{escape(c.name)}:[/] {escape(c.detail)}", highlight=False)
    for k in result.caveats:  # the evidence's warnings, by the code a deviation names
        if k.accepted:
            line = f"deviation accepted ({k.code}): {k.detail} — {k.accepted}"
        else:
            line = (
                f"evidence warning {k.code}: {k.detail} (accept it with 'exocheck sign {lot} "
                f'--meaning "deviation accepted" --deviation {k.code}\')'
            )
        console.print(escape(line), highlight=False, soft_wrap=True)
    style = _STYLE.get(
        result.decision if result.decision != "inconclusive" else "inconclusive-decision"
    )
    signed = (
        f" — signed by {info['approved_by']} at {info['approved_at']:%Y-%m-%d %H:%M %Z}"
        if info["approved_by"]
        else " — not signed"
    )
    console.print(f"lot {lot}: [{style}]{result.decision}[/]{signed}", highlight=False)


def compare(
    lot: Annotated[str, typer.Argument(help="Lot under test.")],
    reference: Annotated[
        list[str] | None,
        typer.Option(
            "--reference",
            "-r",
            help="Reference lot (repeat); default: the product's other lots signed as conforming.",
        ),
    ] = None,
    margin_sigma: Annotated[float, typer.Option(help="TOST margin in reference σ.")] = 1.5,
    k: Annotated[float, typer.Option(help="Quality range: mean ± k·σ.")] = 3.0,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare a lot with reference lots (TOST, quality ranges, size distributions)."""
    from exocheck.qc.comparability import compare as compare_lots

    with open_store(db) as store:
        test = store.lot_data(lot)
        if reference:
            refs = [store.lot_data(r) for r in reference]
        else:
            signed = {
                r["lot"]
                for r in store.list_lots(test.product)
                if r["lot"] != lot and r["status"] == "released"
            }
            refs = [d for d in store.product_lot_data(test.product) if d.lot in signed]
    report = compare_lots(test, refs, margin_sigma=margin_sigma, k=k)
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    table = Table("attribute", "test", "result")
    # log concentration is a natural log: differences are relative (0.1 ≈ 10 %)
    names = {"log_concentration": ("ln concentration", " ln(/mL)"), "d50_nm": ("D50", " nm")}
    for e in report.equivalence:
        name, unit = names.get(e.attribute, (e.attribute, ""))
        table.add_row(
            name,
            f"TOST ±{e.margin:.3g}{unit}: difference {e.difference:.3g}{unit}, p = {e.p_value:.2g}",
            "equivalent" if e.equivalent else "not shown",
        )
    for q in report.quality_ranges:
        name, unit = names.get(q.attribute, (q.attribute, ""))
        table.add_row(
            name,
            f"{q.value:.4g}{unit} in [{q.low:.4g}, {q.high:.4g}]{unit}",
            "within" if q.within else "outside",
        )
    if report.size is not None:
        table.add_row(
            "size distribution",
            f"overlap {100 * report.size.overlap:.0f} %, KS "
            f"{report.size.ks_distance:.2f}, W {report.size.wasserstein_nm:.1f} nm",
            "similar" if report.size.similar else "different",
        )
    console.print(table)
    verdict = "comparable" if report.comparable else "not shown comparable"
    console.print(f"lot {lot} vs {', '.join(report.references)}: {verdict}")


def coa(
    lot: Annotated[str, typer.Argument(help="Lot number.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file: .pdf or .html.")],
    study: Annotated[
        str | None,
        typer.Option(
            "--study",
            help="Stability study for the particles remaining at expiry (default: the "
            "product's only study with an acceptance limit).",
        ),
    ] = None,
    no_study: Annotated[
        bool, typer.Option("--no-study", help="Leave out the particles remaining at expiry.")
    ] = False,
    keys: Annotated[
        Path | None,
        typer.Option(
            "--keys",
            help="Keyring that signs the PDF of a signed lot (default: "
            "$EXOCHECK_KEYS_DIR, then the per-user one).",
            show_default=False,
        ),
    ] = None,
    unsigned: Annotated[
        bool, typer.Option("--unsigned", help="Write the PDF without issuing a signed certificate.")
    ] = False,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="Base URL of the verification page for the QR code (default: the keyring's).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
    by: ByOption = None,
    user: UserOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Write the certificate of analysis (PDF or HTML by the file suffix).

    A released or rejected lot gets its signed certificate when signing keys exist ('exocheck
    keys init'): coa.json with an Ed25519 signature attached, a QR code of the verification
    URL, and a PAdES signature; asked again while the lot is unchanged, the same certificate.
    Any other lot, or a lot without keys, gets a watermarked draft. A recalled lot gets none.
    The web service's certificate is the same document."""
    from exocheck.certify import Keyring
    from exocheck.lots.certificate import certificate, status_line, write_certificate

    if out.suffix.lower() not in (".pdf", ".html", ".htm"):
        raise ParameterError(f"{out}: the certificate file must end in .pdf or .html")
    with open_store(db) as store:
        ring = Keyring(keys)
        issuer = acting(store, "certificate.issue", by=by, user=user, password_stdin=password_stdin)
        document, used_study = certificate(
            store,
            lot,
            by=issuer,
            suffix=out.suffix,
            keyring=ring,
            public_url=public_url,
            study=study,
            no_study=no_study,
            unsigned=unsigned,
        )
        if (
            not document.signed
            and out.suffix.lower() == ".pdf"
            and not unsigned
            and not ring.exists()
            and store.lot_info(lot)["decision"]
        ):
            err_console.print(
                f"note: no signing keys in {ring.folder}: the PDF is not a "
                "signed certificate ('exocheck keys init' creates keys)",
                highlight=False,
                soft_wrap=True,
            )
    path = write_certificate(out, document)
    with_study = f" (particles at expiry from study {used_study})" if used_study else ""
    console.print(f"certificate of analysis of lot {lot}: {path}{with_study}", highlight=False)
    if document.signed:
        console.print(
            f"signed certificate {document.certificate_id}; verify with: exocheck verify "
            f"{path} --public-key KEYS.json",
            highlight=False,
            soft_wrap=True,
        )
        if document.reissued:
            console.print("the lot is unchanged: this is its current certificate", highlight=False)
    else:
        console.print(status_line(document), highlight=False)


def history(
    lot: Annotated[str | None, typer.Argument(help="Only this lot's events.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The audit trail: who did what, when."""
    with open_store(db) as store:
        events = store.history(lot)
    if as_json:
        print_json(events)
        return
    table = Table("when", "who", "action", "record")
    for e in events:
        at = datetime.fromisoformat(e["at"]).astimezone(UTC)
        table.add_row(f"{at:%Y-%m-%d %H:%M} UTC", e["actor"], e["action"], e["key"])
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("release")(release)
    app.command("compare")(compare)
    app.command("coa")(coa)
    app.command("history")(history)
