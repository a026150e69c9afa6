"""Lots, their measurements and attachments, evaluation and signed release (four-eyes)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from exocheck.errors import ExocheckError, StoreError
from exocheck.plausibility import check_record
from exocheck.qc.lotdata import (
    LotData,
    MarkerPanel,
    ProteinAssay,
    SafetyTests,
    is_particle_measurement,
)
from exocheck.qc.release import ReleaseResult, evaluate
from exocheck.qc.specification import parse_specification
from exocheck.records import Measurement
from exocheck.store import models as m
from exocheck.store.base import StoreBase, aware, check_actor


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


@lru_cache(maxsize=32)
def _parsed(text: str, source: str):
    """A stored specification, parsed once per process (listing lots evaluates each of them)."""
    return parse_specification(text, source=source)


def _validation_message(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg'].removeprefix('Value error, ')}" if where else error["msg"]


class LotMixin(StoreBase):
    """Lots, measurements, evaluation and release."""

    # ---- lots -------------------------------------------------------------------------------
    def add_lot(
        self,
        number: str,
        product: str,
        *,
        by: str,
        specification: str | None = None,
        manufactured: date | datetime | str | None = None,
        expiry: date | datetime | str | None = None,
    ) -> dict[str, Any]:
        """Create a lot of ``product``, held against ``specification`` (``name`` or
        ``name@version``; default: the newest specification stored for the product)."""
        by = check_actor(by)
        number = number.strip()
        if not number:
            raise StoreError("a lot needs a number")
        made, expires = _as_datetime(manufactured, "manufactured"), _as_datetime(expiry, "expiry")
        _check_dates(made, expires)
        with self._action() as session:
            if session.scalar(select(m.Lot).where(m.Lot.number == number)) is not None:
                raise StoreError(f"lot {number!r} already exists")
            product_row = self._product(session, product)
            if specification is not None:
                spec_row = self._spec(session, specification)
            else:
                spec_row = session.scalar(
                    select(m.Specification)
                    .where(m.Specification.product_id == product_row.id)
                    .order_by(m.Specification.version.desc())
                    .limit(1)
                )
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
            self._audit(session, by, "lot.add", "lot", number, lot_id=lot.id, after=after)
        return after

    def list_lots(self, product: str | None = None) -> list[dict[str, Any]]:
        """``[{"lot", "product", "decision"}]``: the signed decision of released lots, the
        current evaluation of the others (``None`` without a specification)."""
        with self._read() as session:
            query = select(m.Lot).order_by(m.Lot.id)
            if product is not None:
                query = query.where(m.Lot.product_id == self._product(session, product).id)
            out = []
            for lot in session.scalars(query):
                decision = None
                if lot.release is not None:
                    decision = lot.release.decision
                elif lot.specification is not None:
                    decision = self._evaluate_row(lot).decision
                out.append({"lot": lot.number, "product": lot.product.name, "decision": decision})
            return out

    def lot_info(self, number: str) -> dict[str, Any]:
        """Product, specification, dates, release signature and attachments of a lot."""
        with self._read() as session:
            lot = self._lot(session, number)
            release = lot.release
            return {
                "lot": lot.number,
                "product": lot.product.name,
                "specification": (
                    f"{lot.specification.name}@{lot.specification.version}"
                    if lot.specification
                    else None
                ),
                "specification_sha256": lot.specification.sha256 if lot.specification else None,
                "manufactured": aware(lot.manufactured),
                "expiry": aware(lot.expiry),
                "created_by": lot.created_by,
                "entered_by": sorted({lot.created_by, *(x.created_by for x in lot.measurements)}),
                "approved_by": release.approved_by if release else None,
                "approved_at": aware(release.approved_at) if release else None,
                "decision": release.decision if release else None,
                "comment": release.comment if release else None,
                "attachments": [
                    {
                        "filename": x.attachment.filename,
                        "sha256": x.attachment.sha256,
                        "size_bytes": x.attachment.size_bytes,
                    }
                    for x in lot.measurements
                    if x.attachment is not None
                ],
                "measurements": [
                    {
                        "id": x.id,
                        "kind": x.kind,
                        "created_by": x.created_by,
                        "created_at": aware(x.created_at),
                        "measured_at": aware(x.measured_at),
                    }
                    for x in lot.measurements
                ],
            }

    # ---- measurements -------------------------------------------------------------------------
    def _open_lot(self, session: Session, number: str) -> m.Lot:
        lot = self._lot(session, number)
        if lot.release is not None:
            raise StoreError(
                f"lot {number} was signed by {lot.release.approved_by} "
                f"({lot.release.decision}); its data can no longer change"
            )
        return lot

    @staticmethod
    def _reuse(session: Session, lot: m.Lot, checksums: set[str]) -> list[str]:
        """Where else the raw data ``checksums`` (SHA-256) were used: ``"file in lot L (P)"``
        for every measurement of another lot that holds one as its file or among its inputs."""
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
                    f"lot {row.lot.number} ({row.lot.product.name}), "
                    f"SHA-256 {sorted(hashes)[0][:12]}…"
                )
        return sorted(set(found))

    def _add(
        self,
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
            content = Path(original).read_bytes()
        with self._action() as session:
            lot = self._open_lot(session, number)
            sha = None
            if content is not None:
                sha = hashlib.sha256(content).hexdigest()
            if kind == "nta":
                reused = self._reuse(session, lot, {x for x in {sha, *(inputs or ())} if x})
                if reused and not (allow_reuse and allow_reuse.strip()):
                    raise StoreError(
                        f"lot {number}: this raw data is already a measurement of "
                        f"{'; '.join(reused)}; data of one lot cannot stand for another (give "
                        "--allow-reuse REASON if this is intended; the reason is audited)"
                    )
                if reused:
                    summary = summary | {"reuse": {"of": reused, "reason": allow_reuse.strip()}}
            if content is not None:
                if session.get(m.Attachment, sha) is None:
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
            self._audit(
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
        self,
        lot: str,
        measurement: Measurement,
        *,
        by: str,
        original_file: str | Path | None = None,
        allow_reuse: str | None = None,
    ) -> int:
        """Attach an NTA measurement record (engine or instrument import) to a lot; the original
        file, when given, is stored content-addressed and never altered.

        Raw data (the original file, or any input named in the record's provenance, by SHA-256)
        already measured for another lot is refused unless ``allow_reuse`` gives the reason,
        which the audit trail keeps. A record outside physical bounds (dilution, a concentration
        that is not finite or whose particles would not fit in the volume) is refused.
        """
        try:
            check_record(measurement)
        except ExocheckError as exc:
            raise StoreError(f"lot {lot}: {exc}") from None
        data = measurement.model_dump(mode="json", by_alias=True)
        summary = {
            "kind": "nta",
            "instrument": measurement.source.instrument,
            "particles_per_ml": measurement.concentration.particles_per_ml,
            "d50_nm": measurement.size.d50_nm,
            "sample": measurement.sample,
        }
        if measurement.channel is not None:
            summary["channel"] = measurement.channel.mode
        if measurement.labelled is not None:  # size and concentration are the labelled ones
            summary["labelled"] = {
                "marker": measurement.labelled.marker,
                "fraction": measurement.labelled.fraction,
            }
        return self._add(
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
        self,
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
        return self._add(lot, "protein", data, by, summary={"kind": "protein"} | data)

    def add_markers(
        self, lot: str, results: dict[str, str], *, by: str, method: str | None = None
    ) -> int:
        """Marker panel results: analyte -> present / absent."""
        try:
            record = MarkerPanel(results=results, method=method)
        except ValidationError as exc:
            raise StoreError(f"lot {lot}: markers {_validation_message(exc)}") from None
        data = record.model_dump(mode="json")
        return self._add(lot, "markers", data, by, summary={"kind": "markers"} | data)

    def add_safety(self, lot: str, results: dict[str, float | str], *, by: str) -> int:
        """Safety tests: numeric (``endotoxin_eu_per_ml``) or qualitative (``sterility``)."""
        try:
            record = SafetyTests(results=results)
        except ValidationError as exc:
            raise StoreError(f"lot {lot}: safety {_validation_message(exc)}") from None
        data = record.model_dump(mode="json")
        return self._add(lot, "safety", data, by, summary={"kind": "safety"} | data)

    def attachment(self, sha256: str) -> tuple[str, bytes]:
        """File name and original bytes of a stored attachment."""
        with self._read() as session:
            row = session.get(m.Attachment, sha256)
            if row is None:
                raise StoreError(f"no attachment with SHA-256 {sha256}")
            return row.filename, row.content

    # ---- lot data and release -------------------------------------------------------------------
    @staticmethod
    def _lot_data(lot: m.Lot) -> LotData:
        nta = [Measurement.model_validate(x.data) for x in lot.measurements if x.kind == "nta"]
        # the lot's particle measurement: never a labelled-fraction or fluorescence-mode record
        particles = [x for x in nta if is_particle_measurement(x)]
        protein = [x.data for x in lot.measurements if x.kind == "protein"]
        markers: dict[str, str] = {}
        safety: dict[str, Any] = {}
        for x in lot.measurements:
            if x.kind == "markers":
                markers.update(x.data["results"])
            elif x.kind == "safety":
                safety.update(x.data["results"])
        product = lot.product
        return LotData(
            lot=lot.number,
            product=product.name,
            particles_per_unit_claim=product.particles_per_unit,
            fill_volume_ml=product.fill_volume_ml,
            unit_name=product.unit_name,
            manufactured=aware(lot.manufactured) or aware(lot.created_at),
            nta=particles[-1] if particles else None,
            nta_all=nta,
            protein=ProteinAssay.model_validate(protein[-1]) if protein else None,
            markers=markers,
            safety=safety,
        )

    def lot_data(self, number: str) -> LotData:
        """Everything known about a lot, as the plain record QC functions read."""
        with self._read() as session:
            return self._lot_data(self._lot(session, number))

    def product_lot_data(self, product: str) -> list[LotData]:
        """Every lot of a product, in order of manufacture (then entry)."""
        with self._read() as session:
            lots = session.scalars(
                select(m.Lot)
                .where(m.Lot.product_id == self._product(session, product).id)
                .order_by(m.Lot.id)
            )
            data = [self._lot_data(lot) for lot in lots]
        return sorted(data, key=lambda d: d.manufactured.timestamp() if d.manufactured else 0)

    def _evaluate_row(self, lot: m.Lot) -> ReleaseResult:
        if lot.release is not None:
            return ReleaseResult.model_validate(lot.release.result)
        if lot.specification is None:
            raise StoreError(f"lot {lot.number} has no specification (give one with --spec)")
        spec_row = lot.specification
        spec = _parsed(spec_row.yaml_text, f"{spec_row.name}@{spec_row.version}")
        return evaluate(spec, self._lot_data(lot))

    def evaluate(self, number: str) -> ReleaseResult:
        """Hold the lot against its specification. A signed lot gives its signed result."""
        with self._read() as session:
            return self._evaluate_row(self._lot(session, number))

    def approve(self, number: str, *, by: str, comment: str | None = None) -> ReleaseResult:
        """Sign the lot's decision (four-eyes: ``by`` must not have entered any of its data).

        ``conforms`` releases the lot; ``does-not-conform`` and ``inconclusive`` reject it. An
        ``incomplete`` lot cannot be signed. After signing the lot's data can no longer change.
        A store that has users (:mod:`exocheck.auth`) is signed only by electronic signatures
        (password, review, four eyes: :class:`exocheck.auth.Signing`), never by a bare name.
        """
        by = check_actor(by, "approver")
        with self._action() as session:
            if session.execute(text("SELECT 1 FROM users LIMIT 1")).first() is not None:
                raise StoreError(
                    "this store has users, who sign with their password: use 'exocheck sign "
                    f"{number} --meaning approved --reason TEXT --user NAME' (or the web service)"
                )
            return self._sign_release(session, self._open_lot(session, number), by, comment)

    def _sign_release(
        self, session: Session, lot: m.Lot, by: str, comment: str | None
    ) -> ReleaseResult:
        """:meth:`approve` inside the caller's transaction (an e-signature adds its record to
        the same transaction: the release, its audit event and the signature are one change)."""
        number = lot.number
        entered = {lot.created_by, *(x.created_by for x in lot.measurements)}
        if by in entered:
            raise StoreError(
                f"four-eyes rule: {by} entered data of lot {number} and cannot approve it; "
                "another person must sign"
            )
        result = self._evaluate_row(lot)
        expiry = aware(lot.expiry)
        if result.decision == "conforms" and expiry is not None and expiry <= datetime.now(UTC):
            raise StoreError(
                f"lot {number} expired on {expiry:%Y-%m-%d}: an expired lot cannot be released"
            )
        if result.decision == "incomplete":
            missing = ", ".join(c.name for c in result.criteria if c.result == "missing")
            raise StoreError(
                f"lot {number} is incomplete (missing: {missing}); add the "
                "missing results before signing"
            )
        release = m.Release(
            lot_id=lot.id,
            specification_id=lot.specification_id,
            decision=result.decision,
            approved_by=by,
            comment=comment,
            result=result.model_dump(mode="json"),
        )
        session.add(release)
        self._audit(
            session,
            by,
            "lot.sign",
            "lot",
            number,
            lot_id=lot.id,
            after={
                "decision": result.decision,
                "status": ("released" if result.decision == "conforms" else "rejected"),
                "specification": result.specification,
                "comment": comment,
            },
        )
        return result
