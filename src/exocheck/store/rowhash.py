"""Hashes of the rows a decision rests on, recorded in the audit chain when they are written.

A lot's decision and its certificate rest on more than the audit events: on its measurements
(their JSON record, kind, lot, the columns read from the record, the raw file they came from),
the attachments (the raw files), the specification, the product's label claim, the signed
release, the electronic signatures, recalls and issued certificates, and the instruments, methods
and bead calibrations a measurement cites. Each such row has a hash:
the SHA-256 of the canonical JSON (:func:`exocheck.canonical.canonical_sha256`) of its table,
key and the columns in :data:`SEALED`, as the database returns them (JSON columns parsed from
their stored text, times in UTC).

Every write goes through a transaction that appends an audit event (:meth:`StoreBase._audit`).
The store's sessions note each row of a :data:`SEALED` table that a flush inserts, changes or
deletes (:func:`track_writes`); the next audit event of the transaction reads those rows back and
carries their hashes in ``after["rows"]`` (``{"measurements/12": "<sha256>", …}``; ``None`` for a
row deleted). The chain then protects the rows: ``exocheck audit verify`` recomputes every
row's hash and compares it with the one the chain recorded last.

An attachment's hash covers its key, which is the SHA-256 of its content, and not the content
itself: the verifier checks the content against the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, Table, Text, cast, inspect, select
from sqlalchemy.orm import Session

from exocheck.canonical import canonical_sha256
from exocheck.store import models as m

#: the tables whose rows are hashed into the chain, and the columns each hash covers
SEALED: dict[str, tuple[str, ...]] = {
    "products": (
        "name",
        "description",
        "particles_per_unit",
        "fill_volume_ml",
        "unit_name",
        "created_at",
        "created_by",
    ),
    "specifications": (
        "name",
        "version",
        "yaml_text",
        "sha256",
        "product_id",
        "created_at",
        "created_by",
    ),
    "lots": (
        "number",
        "product_id",
        "specification_id",
        "manufactured",
        "expiry",
        "created_at",
        "created_by",
    ),
    "attachments": ("sha256", "filename", "size_bytes", "created_at"),
    "measurements": (
        "lot_id",
        "kind",
        "data",
        "particles_per_ml",
        "d50_nm",
        "attachment_sha256",
        "measured_at",
        "created_at",
        "created_by",
    ),
    "releases": (
        "lot_id",
        "specification_id",
        "decision",
        "result",
        "approved_by",
        "approved_at",
        "comment",
    ),
    "signatures": (
        "lot_id",
        "user_id",
        "username",
        "printed_name",
        "role",
        "meaning",
        "reason",
        "signed_at",
        "content_sha256",
        "content",
    ),
    "lot_recalls": (
        "lot_id",
        "user_id",
        "username",
        "printed_name",
        "role",
        "reason",
        "recalled_at",
        "content_sha256",
    ),
    "certificates": (
        "certificate_id",
        "lot_id",
        "issued_at",
        "issued_by",
        "coa_json",
        "coa_sha256",
        "data_key_id",
        "data_signature",
        "pdf_key_id",
        "audit_head_id",
        "audit_head_sha256",
    ),
    "measurement_withdrawals": (
        "measurement_id",
        "lot_id",
        "user_id",
        "username",
        "printed_name",
        "role",
        "reason",
        "withdrawn_at",
        "content_sha256",
    ),
    "specification_products": ("specification_id", "product_id", "created_at", "created_by"),
    "certificate_keys": (
        "key_id",
        "use",
        "algorithm",
        "public_key_pem",
        "certificate_pem",
        "first_used_at",
    ),
    "instruments": (
        "serial",
        "model",
        "laser_wavelength_nm",
        "filter_set",
        "camera",
        "pixel_size_um",
        "qualification_due",
        "calibration_due",
        "created_at",
        "created_by",
    ),
    "methods": (
        "name",
        "version",
        "instrument_model",
        "yaml_text",
        "sha256",
        "created_at",
        "created_by",
        "approved_by",
        "approved_at",
    ),
    "calibrations": (
        "instrument_id",
        "method_id",
        "standard_name",
        "standard_lot",
        "standard_expiry",
        "certified_diameter_nm",
        "certified_concentration_per_ml",
        "measured_d50_nm",
        "span",
        "tolerance_percent",
        "max_span",
        "valid_until",
        "source_sha256",
        "data",
        "created_at",
        "created_by",
    ),
}

#: the column that says when a row was written (rows older than row hashing have no hash)
WRITTEN_AT: dict[str, str] = {
    "products": "created_at",
    "specifications": "created_at",
    "lots": "created_at",
    "attachments": "created_at",
    "measurements": "created_at",
    "releases": "approved_at",
    "signatures": "signed_at",
    "lot_recalls": "recalled_at",
    "certificates": "issued_at",
    "certificate_keys": "first_used_at",
    "measurement_withdrawals": "withdrawn_at",
    "specification_products": "created_at",
    "instruments": "created_at",
    "methods": "created_at",
    "calibrations": "created_at",
}

#: where a session keeps the rows written since its last audit event
_WRITTEN = "exocheck.rows_written"


def row_key(table: str, pk: Any) -> str:
    """The name of a row in ``after["rows"]``: ``"measurements/12"``."""
    return f"{table}/{pk}"


@dataclass(frozen=True)
class StoredRow:
    """A row of a :data:`SEALED` table as the database holds it now.

    ``values`` are the sealed columns (JSON columns parsed; one whose stored text is not JSON
    holds ``{"unreadable": text}`` and is named in ``unreadable``)."""

    table: str
    pk: Any
    values: dict[str, Any]
    unreadable: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return row_key(self.table, self.pk)

    @property
    def sha256(self) -> str:
        """The row's hash: SHA-256 of the canonical JSON of its table, key and columns."""
        return canonical_sha256({"table": self.table, "key": self.pk, "columns": self.values})


def sealed_table(name: str) -> Table:
    """The table ``name`` of the store's metadata (the model module must be imported)."""
    return m.Base.metadata.tables[name]


def primary_key(table: Table) -> Column:
    """The one primary-key column of a :data:`SEALED` table."""
    (column,) = table.primary_key.columns
    return column


def read_rows(session: Session, table_name: str, pks: Any = None) -> list[StoredRow]:
    """The rows of ``table_name`` (all, or those whose key is in ``pks``), in key order, with
    their JSON columns read from the stored text: a row that is no longer valid JSON is
    returned (and named unreadable), never an exception."""
    table = sealed_table(table_name)
    pk = primary_key(table)
    names = SEALED[table_name]
    columns = [
        cast(table.c[n], Text).label(n) if isinstance(table.c[n].type, JSON) else table.c[n]
        for n in names
    ]
    query = select(pk.label("_pk"), *columns).order_by(pk)
    if pks is not None:
        pks = list(pks)
        if not pks:
            return []
        query = query.where(pk.in_(pks))
    out = []
    for row in session.execute(query).mappings():
        values, unreadable = {}, []
        for n in names:
            value = row[n]
            if isinstance(table.c[n].type, JSON) and value is not None:
                try:
                    value = json.loads(value)
                except (TypeError, ValueError):
                    unreadable.append(n)
                    value = {"unreadable": str(value)}
            values[n] = value
        out.append(StoredRow(table_name, row["_pk"], values, tuple(unreadable)))
    return out


def track_writes(session: Session, flush_context: Any) -> None:
    """``after_flush`` listener of the store's sessions: note every row of a :data:`SEALED`
    table this flush inserted, changed (a column, not a relationship) or deleted."""
    written = session.info.setdefault(_WRITTEN, {})
    changed = [o for o in session.dirty if session.is_modified(o, include_collections=False)]
    for obj in (*session.new, *changed, *session.deleted):
        table = getattr(obj, "__table__", None)
        if table is None or table.name not in SEALED:
            continue
        (pk,) = inspect(obj).mapper.primary_key_from_instance(obj)
        written[row_key(table.name, pk)] = (table.name, pk)


def seal_written(session: Session) -> dict[str, str | None]:
    """The hashes of the rows written in this transaction since its last audit event, as the
    database now holds them (``None``: deleted); the rows are then no longer pending."""
    written = session.info.pop(_WRITTEN, {})
    out: dict[str, str | None] = {}
    for key in sorted(written):
        table, pk = written[key]
        rows = read_rows(session, table, [pk])
        out[key] = rows[0].sha256 if rows else None
    return out
