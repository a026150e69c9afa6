"""The lot lifecycle's actions: create a lot, add and withdraw measurements, share a
specification, evaluate. Each is one transaction with its audit event; the command line, the web
service and the batch runner call these and only map their errors.

Signatures (review, approval, rejection, accepted deviations, recall) are in
:mod:`exocheck.lots.signatures`; which certificate a lot gets is in
:mod:`exocheck.lots.certificate`; the status is :func:`exocheck.lots.status.lot_status`.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from exocheck.errors import ExocheckError, NotAllowed, ParameterError, StoreError
from exocheck.lots.status import state_of
from exocheck.plausibility import check_record
from exocheck.qc.lotdata import MarkerPanel, ProteinAssay, SafetyTests
from exocheck.records import Measurement
from exocheck.store import models as m
from exocheck.store.base import check_actor

#: A lot number: a letter or digit, then letters, digits, '.', '_' or '-'; at most 64 characters
#: (it appears in file names, URLs and on labels, so nothing that needs escaping anywhere).
LOT_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_LOT_NUMBER_CHARS = 64
MAX_REASON_CHARS = 2000


def check_lot_number(number: str) -> str:
    """The lot number, stripped, when it is valid; :class:`ParameterError` (one line) when not."""
    text = (number or "").strip() if isinstance(number, str) else ""
    if not text:
        raise ParameterError("a lot needs a number")
    if len(text) > MAX_LOT_NUMBER_CHARS:
        raise ParameterError(
            f"a lot number has at most {MAX_LOT_NUMBER_CHARS} characters, not {len(text)}"
        )
    if not LOT_NUMBER.match(text):
        bad = sorted({c for c in text if not (c.isascii() and (c.isalnum() or c in "._-"))})
        shown = " ".join(repr(c) for c in bad[:5]) or "its first character"
        raise ParameterError(
            f"lot number {text[:40]!r}: use letters, digits, '.', '_' and '-' only, starting "
            f"with a letter or digit (not {shown})"
        )
    return text


def check_reason(reason: str | None, what: str) -> str:
    """A reason as one clean line: required, at most :data:`MAX_REASON_CHARS` characters."""
    text = " ".join((reason or "").split())
    if not text:
        raise ParameterError(f"{what} needs a reason")
    if len(text) > MAX_REASON_CHARS:
        raise ParameterError(f"the reason is longer than {MAX_REASON_CHARS} characters")
    return text


def _as_datetime(value: date | datetime | str | None, what: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise StoreError(f"{what}: not an ISO date (YYYY-MM-DD): {value!r}") from None


def _check_dates(made: datetime | None, expires: datetime | None) -> None:
    """Plausible lot dates: manufactured not in the future, expiry after manufacture."""
    today = datetime.now(UTC).replace(tzinfo=None)
    for what, value in (("manufactured", made), ("expiry", expires)):
        if value is not None and not 1990 <= value.year <= 2200:
            raise StoreError(f"{what} date {value:%Y-%m-%d} is not plausible")
    if made is not None and made.replace(tzinfo=None) > today + timedelta(days=1):
        raise StoreError(f"manufactured {made:%Y-%m-%d} is in the future")
    if made is not None and expires is not None and expires <= made:
        raise StoreError(f"expiry {expires:%Y-%m-%d} is not after manufacture {made:%Y-%m-%d}")


def _validation_message(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg'].removeprefix('Value error, ')}" if where else error["msg"]


def specification_for(session: Session, product: m.Product) -> m.Specification | None:
    """The newest specification that serves ``product`` (a version may serve several)."""
    return session.scalar(
        select(m.Specification)
        .join(m.SpecificationProduct, m.SpecificationProduct.specification_id == m.Specification.id)
        .where(m.SpecificationProduct.product_id == product.id)
        .order_by(m.Specification.name, m.Specification.version.desc(), m.Specification.id.desc())
        .limit(1)
    )


# ---- lots -------------------------------------------------------------------------------------
def create_lot(
    store,
    number: str,
    product: str,
    *,
    by: str,
    specification: str | None = None,
    manufactured: date | datetime | str | None = None,
    expiry: date | datetime | str | None = None,
) -> dict[str, Any]:
    """Create a lot of ``product``, held against ``specification`` (``name`` or
    ``name@version``; default: the newest specification that serves the product).

    The lot number is checked here, once, for every shell (:func:`check_lot_number`).
    """
    by = check_actor(by)
    number = check_lot_number(number)
    made, expires = _as_datetime(manufactured, "manufactured"), _as_datetime(expiry, "expiry")
    _check_dates(made, expires)
    with store.transaction() as session:
        if session.scalar(select(m.Lot.id).where(m.Lot.number == number)) is not None:
            raise StoreError(f"lot {number!r} already exists")
        product_row = store.product_row(session, product)
        if specification is not None:
            spec_row = store.spec_row(session, specification)
        else:
            spec_row = specification_for(session, product_row)
        lot = m.Lot(
            number=number,
            product=product_row,
            created_by=by,
            manufactured=made,
            expiry=expires,
            specification_id=spec_row.id if spec_row else None,
        )
        session.add(lot)
        session.flush()
        after = {
            "lot": number,
            "product": product_row.name,
            "specification": f"{spec_row.name}@{spec_row.version}" if spec_row else None,
            "manufactured": made.isoformat() if made else None,
        }
        store.audit(session, by, "lot.add", "lot", number, lot_id=lot.id, after=after)
    return after


def open_lot(store, session: Session, number: str) -> m.Lot:
    """The lot ``number`` when its data may still change; :class:`NotAllowed` once it is
    released, rejected or recalled (every shell, the same rule)."""
    lot = store.lot_row(session, number)
    if lot.release is not None:
        raise NotAllowed(
            f"lot {number} was signed by {lot.release.approved_by} "
            f"({lot.release.decision}); its data can no longer change"
        )
    state = state_of(session, lot, None)
    if state.final:
        raise NotAllowed(f"lot {number} is {state.status}; its data can no longer change")
    return lot


def ensure_open(store, number: str) -> None:
    """:class:`NotAllowed` unless ``number`` is a lot whose data may still change (a check
    before long work, such as a batch of analyses meant for the lot; the adding itself checks
    again in its transaction)."""
    with store.read() as session:
        open_lot(store, session, number)


# ---- measurements -----------------------------------------------------------------------------
def _reuse(session: Session, lot: m.Lot, checksums: set[str]) -> list[str]:
    """Where else the raw data ``checksums`` (SHA-256) were used: ``"lot L (P), SHA…"`` for
    every measurement of another lot that holds one as its file or among its inputs (withdrawn
    measurements included: their data were still those of another lot)."""
    if not checksums:
        return []
    found = []
    rows = session.scalars(
        select(m.Measurement).where(m.Measurement.lot_id != lot.id, m.Measurement.kind == "nta")
    )
    for row in rows:
        inputs = ((row.data or {}).get("provenance") or {}).get("inputs") or {}
        hashes = {row.attachment_sha256, *inputs.values()} & checksums
        if hashes:
            found.append(
                f"lot {row.lot.number} ({row.lot.product.name}), SHA-256 {sorted(hashes)[0][:12]}…"
            )
    return sorted(set(found))


def _add(
    store,
    number: str,
    kind: str,
    data: dict[str, Any],
    by: str,
    *,
    summary: dict[str, Any],
    particles_per_ml: float | None = None,
    d50_nm: float | None = None,
    measured_at: datetime | None = None,
    original: Path | None = None,
    inputs: set[str] | None = None,
    allow_reuse: str | None = None,
) -> int:
    by = check_actor(by)
    content = None
    if original is not None:
        try:
            content = Path(original).read_bytes()
        except OSError as exc:
            raise ParameterError(f"{original}: cannot read ({exc.strerror})") from None
    with store.transaction() as session:
        lot = open_lot(store, session, number)
        sha = hashlib.sha256(content).hexdigest() if content is not None else None
        if kind == "nta":
            reused = _reuse(session, lot, {x for x in {sha, *(inputs or ())} if x})
            if reused and not (allow_reuse and allow_reuse.strip()):
                raise StoreError(
                    f"lot {number}: this raw data is already a measurement of "
                    f"{'; '.join(reused)}; data of one lot cannot stand for another (give "
                    "--allow-reuse REASON if this is intended; the reason is audited)"
                )
            if reused:
                summary = summary | {"reuse": {"of": reused, "reason": allow_reuse.strip()}}
        if content is not None and session.get(m.Attachment, sha) is None:
            session.add(
                m.Attachment(
                    sha256=sha,
                    filename=Path(original).name,
                    size_bytes=len(content),
                    content=content,
                )
            )
        row = m.Measurement(
            lot_id=lot.id,
            kind=kind,
            data=data,
            created_by=by,
            particles_per_ml=particles_per_ml,
            d50_nm=d50_nm,
            measured_at=measured_at,
            attachment_sha256=sha,
        )
        session.add(row)
        session.flush()
        store.audit(
            session,
            by,
            f"measurement.add.{kind}",
            "measurement",
            f"{number}/{row.id}",
            lot_id=lot.id,
            after=summary | {"id": row.id, "attachment_sha256": sha},
        )
        return row.id


def add_measurement(
    store,
    lot: str,
    measurement: Measurement,
    *,
    by: str,
    original_file: str | Path | None = None,
    allow_reuse: str | None = None,
    method: str | None = None,
) -> int:
    """Attach an NTA measurement record (engine or instrument import) to a lot; the original
    file, when given, is stored content-addressed and never altered.

    ``method`` (``NAME[@VERSION]``, approved) is the analytical method the record was made
    under: an engine record must carry it already, an instrument export is stamped with it as
    declared (:func:`exocheck.methods.methods.declare`). The instrument serial an export states
    is matched to the register, and the audit trail records the match.

    Raw data (the original file, or any input named in the record's provenance, by SHA-256)
    already measured for another lot is refused unless ``allow_reuse`` gives the reason, which
    the audit trail keeps. A record outside physical bounds (dilution, a concentration that is
    not finite or whose particles would not fit in the volume) is refused.
    """
    from exocheck.methods.apply import declare
    from exocheck.methods.instruments import match_instrument, stated_serial
    from exocheck.methods.stamps import method_label

    try:
        check_record(measurement)
    except ExocheckError as exc:
        raise StoreError(f"lot {lot}: {exc}") from None
    if method is not None:
        measurement = declare(store, measurement.model_copy(deep=True), method)
    serial = stated_serial(measurement)
    registered = None
    if serial is not None:
        with store.read() as session:
            registered = match_instrument(session, measurement)
            registered = registered.model if registered is not None else None
    data = measurement.model_dump(mode="json", by_alias=True)
    summary = {
        "kind": "nta",
        "instrument": measurement.source.instrument,
        "particles_per_ml": measurement.concentration.particles_per_ml,
        "d50_nm": measurement.size.d50_nm,
        "sample": measurement.sample,
    }
    summary["method"] = method_label(measurement)
    if serial is not None:
        summary["instrument"] = {"serial": serial, "registered": registered is not None}
        if registered is not None:
            summary["instrument"]["model"] = registered
    if measurement.channel is not None:
        summary["channel"] = measurement.channel.mode
    if measurement.labelled is not None:  # size and concentration are the labelled ones
        summary["labelled"] = {
            "marker": measurement.labelled.marker,
            "fraction": measurement.labelled.fraction,
        }
    return _add(
        store,
        lot,
        "nta",
        data,
        by,
        summary=summary,
        particles_per_ml=measurement.concentration.particles_per_ml,
        d50_nm=measurement.size.d50_nm,
        measured_at=measurement.date,
        original=Path(original_file) if original_file else None,
        inputs=set(measurement.provenance.inputs.values())
        | ({measurement.source.file_sha256} - {None}),
        allow_reuse=allow_reuse,
    )


def add_protein(
    store,
    lot: str,
    ug_per_ml: float,
    *,
    by: str,
    sd_ug_per_ml: float | None = None,
    method: str = "BCA",
) -> int:
    """Total protein (µg/mL) of a lot."""
    try:
        record = ProteinAssay(ug_per_ml=ug_per_ml, sd_ug_per_ml=sd_ug_per_ml, method=method)
    except ValidationError as exc:
        raise StoreError(f"lot {lot}: protein {_validation_message(exc)}") from None
    data = record.model_dump(mode="json")
    return _add(store, lot, "protein", data, by, summary={"kind": "protein"} | data)


def add_markers(
    store, lot: str, results: dict[str, str], *, by: str, method: str | None = None
) -> int:
    """Marker panel results: analyte -> present / absent."""
    try:
        record = MarkerPanel(results=results, method=method)
    except ValidationError as exc:
        raise StoreError(f"lot {lot}: markers {_validation_message(exc)}") from None
    data = record.model_dump(mode="json")
    return _add(store, lot, "markers", data, by, summary={"kind": "markers"} | data)


def add_safety(store, lot: str, results: dict[str, float | str], *, by: str) -> int:
    """Safety tests: numeric (``endotoxin_eu_per_ml``) or qualitative (``sterility``)."""
    try:
        record = SafetyTests(results=results)
    except ValidationError as exc:
        raise StoreError(f"lot {lot}: safety {_validation_message(exc)}") from None
    data = record.model_dump(mode="json")
    return _add(store, lot, "safety", data, by, summary={"kind": "safety"} | data)


def withdraw_measurement(
    store,
    lot: str,
    measurement_id: int,
    *,
    by: str,
    reason: str,
    printed_name: str | None = None,
    role: str | None = None,
    user_id: int | None = None,
) -> dict[str, Any]:
    """Withdraw a wrong measurement from an open lot: the row stays (struck through on the lot
    page and in the audit trail) and no longer counts; the decision is computed again.

    Whoever withdraws signs it: in a store with users through
    :func:`exocheck.lots.signatures.withdraw` (password again), otherwise by name. Reviews of the
    lot's earlier data no longer count, since what they bound to has changed.
    """
    by = check_actor(by)
    reason = check_reason(reason, "a withdrawal")
    from exocheck.canonical import canonical_sha256

    with store.transaction() as session:
        row_lot = open_lot(store, session, lot)
        row = session.get(m.Measurement, int(measurement_id))
        if row is None or row.lot_id != row_lot.id:
            raise StoreError(f"lot {lot} has no measurement {measurement_id}")
        if session.scalar(select(m.Withdrawal.id).where(m.Withdrawal.measurement_id == row.id)):
            raise StoreError(f"measurement {measurement_id} of lot {lot} is already withdrawn")
        content = {
            "lot": lot,
            "measurement": row.id,
            "kind": row.kind,
            "data_sha256": canonical_sha256(row.data),
            "meaning": "withdrawn",
            "reason": reason,
        }
        withdrawal = m.Withdrawal(
            measurement_id=row.id,
            lot_id=row_lot.id,
            user_id=user_id,
            username=by,
            printed_name=printed_name or by,
            role=role,
            reason=reason,
            content_sha256=canonical_sha256(content),
        )
        session.add(withdrawal)
        session.flush()
        record = {
            "measurement": row.id,
            "kind": row.kind,
            "by": withdrawal.printed_name,
            "user": by,
            "reason": reason,
            "content_sha256": withdrawal.content_sha256,
        }
        store.audit(
            session,
            by,
            "measurement.withdraw",
            "measurement",
            f"{lot}/{row.id}",
            lot_id=row_lot.id,
            after=record,
        )
    return record
