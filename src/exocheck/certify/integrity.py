"""The rows a decision rests on, checked against the hashes the audit chain recorded.

Every write of a measurement, attachment, specification, product, lot, release, signature,
recall or certificate records the row's hash in its audit event (:mod:`exocheck.store.rowhash`).
:func:`scan_rows` recomputes each row's hash from the database and names every row that

- no longer matches the hash recorded for it (edited past exocheck),
- was recorded and is gone (deleted past exocheck),
- has no recording event although it was written after row hashing began (inserted past
  exocheck), or
- contradicts itself or the rows it refers to: a measurement whose JSON is no longer a valid
  record, or whose columns differ from its record; an attachment whose content is not its
  SHA-256; a specification whose text is not its SHA-256; a signature, recall or certificate
  whose content is not its recorded SHA-256; a reference to a row that does not exist.

Rows written before row hashing (by an earlier exocheck) have no recorded hash: they are listed
as *not sealed*, apart from the rows that fail, and are checked only for consistency. "Before"
means written before the first event that recorded a row's hash and, for numbered rows, with a
lower number than every recorded row of the table. :func:`check_lot_records` is the same check
restricted to one lot (and the chain itself); ``coa``, ``release`` and the web's certificate
and signing routes refuse a lot it finds fault with (:func:`require_intact_lot`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Integer, Text, cast, select
from sqlalchemy.orm import Session

from exocheck.canonical import canonical_sha256
from exocheck.errors import StoreError
from exocheck.store import models as m
from exocheck.store.base import aware
from exocheck.store.rowhash import SEALED, WRITTEN_AT, StoredRow, read_rows, sealed_table

#: how many rows of one table a "not sealed" line names before it only counts them
UNSEALED_NAMED = 8

_SINGULAR = {
    "products": "product",
    "specifications": "specification",
    "lots": "lot",
    "attachments": "attachment",
    "measurements": "measurement",
    "releases": "release",
    "signatures": "signature",
    "lot_recalls": "recall",
    "certificates": "certificate",
    "certificate_keys": "certificate key",
    "measurement_withdrawals": "withdrawal",
    "specification_products": "specification link",
    "instruments": "instrument",
    "methods": "method",
    "calibrations": "calibration",
}


class RecordsAltered(StoreError):
    """A lot's records fail verification: its certificate or release is refused."""


@dataclass(frozen=True)
class Recorded:
    """The newest hash the chain recorded for a row: the event, the hash (``None``: the row
    was deleted by exocheck) and the event's lot."""

    event_id: int
    sha256: str | None
    lot_id: int | None


@dataclass(frozen=True)
class RowReport:
    """The outcome of :func:`scan_rows`: one line per failing row (``findings``), one line per
    table of rows written before row hashing (``unsealed``), and how many rows were checked."""

    findings: tuple[str, ...] = ()
    unsealed: tuple[str, ...] = ()
    rows: int = 0
    unsealed_rows: int = 0


@dataclass
class _Scan:
    recorded: dict[str, Recorded]
    epoch_at: datetime | None
    lots: dict[int, str]
    low_pk: dict[str, int] = field(default_factory=dict)
    broken_id: int | None = None
    untrusted: set[str] = field(default_factory=set)
    findings: list[str] = field(default_factory=list)
    unsealed: dict[str, list[str]] = field(default_factory=dict)
    rows: int = 0


# ---- reading the audit events ---------------------------------------------------------------
def _parse_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return {"unreadable": str(text)}


def read_events(session: Session) -> list[SimpleNamespace]:
    """Every audit event in id order, its JSON read from the stored text (an event whose JSON
    is no longer readable comes back with ``{"unreadable": text}``, and breaks the chain)."""
    e = m.AuditEvent
    query = select(
        e.id,
        e.at,
        e.actor,
        e.action,
        e.entity,
        e.entity_key,
        e.lot_id,
        cast(e.before, Text).label("before"),
        cast(e.after, Text).label("after"),
        e.chain_sha256,
    ).order_by(e.id)
    try:
        rows = session.execute(query).all()
    except (TypeError, ValueError) as exc:  # a column no longer of its type (SQLite)
        raise StoreError(f"the audit trail cannot be read: {exc}") from None
    return [
        SimpleNamespace(
            **(row._asdict() | {"before": _parse_json(row.before), "after": _parse_json(row.after)})
        )
        for row in rows
    ]


def recorded_rows(
    events: Iterable[Any], *, before: int | None = None
) -> tuple[dict[str, Recorded], datetime | None, set[str]]:
    """The newest hash recorded for each row (``after["rows"]`` of the events), the time of the
    first event that recorded one (``None``: row hashing has not begun in this store), and the
    rows named by events from ``before`` on (a chain broken there vouches for none of them:
    their recorded hashes are left out)."""
    recorded: dict[str, Recorded] = {}
    untrusted: set[str] = set()
    epoch = None
    for event in events:
        rows = event.after.get("rows") if isinstance(event.after, dict) else None
        if not isinstance(rows, dict) or not rows:
            continue
        if before is not None and event.id >= before:
            untrusted.update(str(key) for key in rows)
            continue
        if epoch is None:
            epoch = aware(event.at)
        for key, sha in rows.items():
            recorded[str(key)] = Recorded(int(event.id), sha, event.lot_id)
    return recorded, epoch, untrusted


# ---- labels -------------------------------------------------------------------------------
def _of_lot(lots: dict[int, str], lot_id: Any) -> str:
    if lot_id is None:
        return ""
    return f" of lot {lots[lot_id]}" if lot_id in lots else f" of lot id {lot_id}"


def _label(table: str, pk: Any, values: dict[str, Any] | None, lots: dict[int, str]) -> str:
    """How a finding names a row: ``measurement 12 of lot NS-001``."""
    values = values or {}
    if table == "lots":
        return f"lot {values.get('number') or lots.get(pk) or f'id {pk}'}"
    if table == "products" and values.get("name"):
        return f"product {values['name']}"
    if table == "specifications" and values.get("name"):
        return f"specification {values['name']}@{values.get('version')}"
    if table == "attachments":
        name = f" ({values['filename']})" if values.get("filename") else ""
        return f"attachment {str(pk)[:12]}…{name}"
    if table in ("releases", "lot_recalls"):
        return f"{_SINGULAR[table]}{_of_lot(lots, values.get('lot_id'))}".strip()
    if table == "instruments" and values.get("serial"):
        return f"instrument {values['serial']}"
    if table == "methods" and values.get("name"):
        return f"method {values['name']}@{values.get('version')}"
    if table == "certificates" and values.get("certificate_id"):
        return f"certificate {values['certificate_id']}{_of_lot(lots, values.get('lot_id'))}"
    return f"{_SINGULAR[table]} {pk}{_of_lot(lots, values.get('lot_id'))}"


# ---- consistency of one row ---------------------------------------------------------------
def _record_models() -> dict[str, type[BaseModel]]:
    from exocheck.qc.lotdata import MarkerPanel, ProteinAssay, SafetyTests
    from exocheck.records import Measurement

    return {
        "nta": Measurement,
        "protein": ProteinAssay,
        "markers": MarkerPanel,
        "safety": SafetyTests,
    }


def _invalid(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return " ".join(f"{where}: {message}".split()) if where else " ".join(message.split())


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return False
    return (math.isnan(a) and math.isnan(b)) or a == b


def _legacy_sha256(value: Any) -> str:
    """The content hash signatures were given before RFC 8785 (Python ``json``, sorted keys)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _exists(session: Session, table: str, pk: Any) -> bool:
    column = sealed_table(table).primary_key.columns
    (column,) = column
    return session.execute(select(column).where(column == pk)).first() is not None


def _consistency(session: Session, row: StoredRow, lots: dict[int, str]) -> list[str]:
    """What is wrong with ``row`` on its own or against the rows it refers to."""
    v, problems = row.values, []
    for name in row.unreadable:
        problems.append(f"its {name} is no longer valid JSON")

    def refers(column: str, table: str) -> None:
        pk = v.get(column)
        if pk is None:
            return
        if table == "lots" and pk in lots:
            return
        if not _exists(session, table, pk):
            problems.append(f"it refers to {_SINGULAR[table]} {pk}, which is not in the database")

    if "lot_id" in v:
        refers("lot_id", "lots")
    if row.table == "lots":
        refers("product_id", "products")
        refers("specification_id", "specifications")
    elif row.table == "specifications":
        refers("product_id", "products")
        from exocheck.qc.specification import spec_sha256

        if not isinstance(v["yaml_text"], str) or spec_sha256(v["yaml_text"]) != v["sha256"]:
            problems.append(f"its text no longer matches its SHA-256 {str(v['sha256'])[:12]}…")
    elif row.table == "attachments":
        content = session.scalar(select(m.Attachment.content).where(m.Attachment.sha256 == row.pk))
        if content is None or hashlib.sha256(content).hexdigest() != row.pk:
            problems.append("its content no longer matches its SHA-256 key")
        elif len(content) != v["size_bytes"]:
            problems.append(f"its size {v['size_bytes']} is not its content's {len(content)} bytes")
    elif row.table == "measurements":
        refers("attachment_sha256", "attachments")
        problems += _measurement_problems(v, bool(row.unreadable))
    elif row.table == "methods":
        if not isinstance(v["yaml_text"], str) or (
            hashlib.sha256(v["yaml_text"].encode("utf-8")).hexdigest() != v["sha256"]
        ):
            problems.append(f"its text no longer matches its SHA-256 {str(v['sha256'])[:12]}…")
    elif row.table == "calibrations":
        refers("instrument_id", "instruments")
        refers("method_id", "methods")
    elif row.table == "releases":
        refers("specification_id", "specifications")
        if "result" not in row.unreadable:
            from exocheck.qc.release import ReleaseResult

            try:
                result = ReleaseResult.model_validate(v["result"])
            except ValidationError as exc:
                problems.append(f"its result is not a valid release result ({_invalid(exc)})")
            else:
                if result.decision != v["decision"]:
                    problems.append(
                        f"its decision {v['decision']!r} is not its result's {result.decision!r}"
                    )
    elif row.table == "signatures":
        if "content" not in row.unreadable and v["content_sha256"] not in (
            canonical_sha256(v["content"]),
            _legacy_sha256(v["content"]),
        ):
            problems.append("its signed content no longer matches its SHA-256")
    elif row.table == "lot_recalls":
        content = {"lot": lots.get(v["lot_id"]), "meaning": "recalled", "reason": v["reason"]}
        if v["content_sha256"] not in (canonical_sha256(content), _legacy_sha256(content)):
            problems.append("its signed content no longer matches its SHA-256")
    elif row.table == "certificates":
        text = v["coa_json"] if isinstance(v["coa_json"], str) else ""
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != v["coa_sha256"]:
            problems.append("its signed record (coa.json) no longer matches its SHA-256")
    return problems


def _measurement_problems(v: dict[str, Any], unreadable: bool) -> list[str]:
    if unreadable:
        return []
    models = _record_models()
    kind, data = v["kind"], v["data"]
    if kind not in models:
        return [f"its kind {str(kind)[:20]!r} is not one of {', '.join(models)}"]
    if not isinstance(data, dict):
        return [f"its data is not a valid {kind} record (not a JSON object)"]
    try:
        record = models[kind].model_validate(data)
    except ValidationError as exc:
        return [f"its data is not a valid {kind} record ({_invalid(exc)})"]
    problems = []
    if kind == "nta":
        for column, value in (
            ("particles_per_ml", record.concentration.particles_per_ml),
            ("d50_nm", record.size.d50_nm),
        ):
            if not _same(v[column], value):
                problems.append(f"its {column} column ({v[column]}) is not its record's ({value})")
    return problems


# ---- the scan -----------------------------------------------------------------------------
def _numbered(table: str) -> bool:
    (column,) = sealed_table(table).primary_key.columns
    return isinstance(column.type, Integer)


def _pk_value(table: str, pk: str) -> Any:
    """The key of a row named ``table/pk`` in ``after["rows"]``, as its column holds it."""
    return int(pk) if _numbered(table) and pk.lstrip("-").isdigit() else pk


def _low_pks(recorded: dict[str, Recorded]) -> dict[str, int]:
    """Per numbered table, the lowest row number the chain recorded."""
    low: dict[str, int] = {}
    for key in recorded:
        table, _, pk = key.partition("/")
        if table in SEALED and _numbered(table):
            value = _pk_value(table, pk)
            if isinstance(value, int):
                low[table] = min(low.get(table, value), value)
    return low


def _before_hashing(scan: _Scan, row: StoredRow) -> bool:
    """Whether ``row`` was written before this store began recording row hashes."""
    if scan.epoch_at is None:
        return True
    written = row.values.get(WRITTEN_AT[row.table])
    if not isinstance(written, datetime) or aware(written) >= scan.epoch_at:
        return False
    low = scan.low_pk.get(row.table)
    return not (isinstance(row.pk, int) and low is not None and row.pk > low)


def _check_row(session: Session, scan: _Scan, row: StoredRow) -> None:
    scan.rows += 1
    label = _label(row.table, row.pk, row.values, scan.lots)
    seen = scan.recorded.get(row.key)
    if row.key in scan.untrusted:
        pass  # recorded past a break in the chain: the break is the finding
    elif seen is None or seen.sha256 is None:
        if (scan.epoch_at is not None or scan.broken_id is None) and _before_hashing(scan, row):
            scan.unsealed.setdefault(row.table, []).append(label)
        elif scan.broken_id is None:  # else its event may be one the break leaves unverified
            scan.findings.append(f"{label}: no audit event recorded it (written past exocheck)")
    elif seen.sha256 != row.sha256:
        scan.findings.append(
            f"{label}: its stored content no longer matches the hash recorded at "
            f"event #{seen.event_id}"
        )
    scan.findings += [f"{label}: {p}" for p in _consistency(session, row, scan.lots)]


def _missing(scan: _Scan, keys: Iterable[str], present: set[str]) -> None:
    for key in sorted(keys):
        seen = scan.recorded[key]
        if key in present or key in scan.untrusted or seen.sha256 is None:
            continue
        table, _, pk = key.partition("/")
        if table not in SEALED:
            continue
        label = _label(table, pk, {"lot_id": seen.lot_id}, scan.lots)
        scan.findings.append(
            f"{label}: recorded at event #{seen.event_id}, no longer in the database "
            "(deleted past exocheck)"
        )


def _report(scan: _Scan) -> RowReport:
    lines, count = [], 0
    for table, labels in scan.unsealed.items():
        count += len(labels)
        named = ", ".join(labels[:UNSEALED_NAMED])
        more = f" and {len(labels) - UNSEALED_NAMED} more" if len(labels) > UNSEALED_NAMED else ""
        noun = _SINGULAR[table] if len(labels) == 1 else f"{_SINGULAR[table]}s"
        lines.append(
            f"not sealed (written before row hashing): {len(labels)} {noun}: {named}{more}"
        )
    return RowReport(tuple(scan.findings), tuple(lines), scan.rows, count)


def _start(session: Session, events: list[Any], broken_id: int | None) -> _Scan:
    recorded, epoch, untrusted = recorded_rows(events, before=broken_id)
    lots = {r.id: r.number for r in session.execute(select(m.Lot.id, m.Lot.number))}
    return _Scan(recorded, epoch, lots, _low_pks(recorded), broken_id, untrusted)


def scan_rows(session: Session, events: list[Any], *, broken_id: int | None = None) -> RowReport:
    """Check every row of every :data:`~exocheck.store.rowhash.SEALED` table against the
    hashes recorded by ``events`` (:func:`read_events`).

    With the chain broken at event ``broken_id``, only the hashes recorded before it count:
    rows recorded from there on, and rows with no recording event, are left to that finding
    (their consistency is still checked)."""
    scan = _start(session, events, broken_id)
    present: set[str] = set()
    for table in SEALED:
        for row in read_rows(session, table):
            present.add(row.key)
            _check_row(session, scan, row)
    _missing(scan, scan.recorded, present)
    return _report(scan)


def scan_lot_rows(
    session: Session, events: list[Any], lot_id: int, *, broken_id: int | None = None
) -> RowReport:
    """:func:`scan_rows` for the rows of one lot: the lot, its product and specification, its
    measurements and their raw files, its release, signatures, recalls and certificates (with
    their keys), and every row an event of the lot recorded."""
    scan = _start(session, events, broken_id)
    mine = {k for k, r in scan.recorded.items() if r.lot_id == lot_id}
    wanted: dict[str, set[Any]] = {t: set() for t in SEALED}
    for key in mine:
        table, _, pk = key.partition("/")
        if table in wanted:
            wanted[table].add(_pk_value(table, pk))
    wanted["lots"].add(lot_id)
    for table in (
        "measurements",
        "measurement_withdrawals",
        "releases",
        "signatures",
        "lot_recalls",
        "certificates",
    ):
        t = sealed_table(table)
        (pk,) = t.primary_key.columns
        wanted[table].update(session.scalars(select(pk).where(t.c.lot_id == lot_id)))
    rows: dict[str, list[StoredRow]] = {}
    order = (
        "lots",
        "measurements",
        "measurement_withdrawals",
        "releases",
        "signatures",
        "lot_recalls",
        "certificates",
    )
    for table in order:
        rows[table] = read_rows(session, table, wanted[table])
    for row in rows["lots"]:
        for column, table in (("product_id", "products"), ("specification_id", "specifications")):
            if row.values.get(column) is not None:
                wanted[table].add(row.values[column])
    for row in rows["releases"]:
        wanted["specifications"].add(row.values["specification_id"])
    wanted["attachments"].update(
        r.values["attachment_sha256"] for r in rows["measurements"] if r.values["attachment_sha256"]
    )
    for row in rows["certificates"]:
        wanted["certificate_keys"].update((row.values["data_key_id"], row.values["pdf_key_id"]))
    for table in ("products", "specifications", "attachments", "certificate_keys"):
        rows[table] = read_rows(session, table, {x for x in wanted[table] if x is not None})
    present: set[str] = set()
    for table in SEALED:
        for row in rows.get(table, []):
            present.add(row.key)
            _check_row(session, scan, row)
    _missing(scan, mine, present)
    return _report(scan)
