"""Reading lots: their records, measurements, attachments, and the data their evaluation reads."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import object_session

from exocheck.errors import StoreError
from exocheck.qc.lotdata import LotData, ProteinAssay, is_particle_measurement
from exocheck.qc.release import ReleaseResult, evaluate
from exocheck.qc.specification import parse_specification
from exocheck.records import Measurement
from exocheck.store import models as m
from exocheck.store.base import StoreBase, aware


@lru_cache(maxsize=32)
def _parsed(text: str, source: str):
    """A stored specification, parsed once per process (listing lots evaluates each of them)."""
    return parse_specification(text, source=source)


class LotMixin(StoreBase):
    """Reading lots: their records, the data the release decision reads, the evaluation.

    The lifecycle's actions (create, add, withdraw, sign, recall) and the status live in
    :mod:`exocheck.lots`; the methods below that change a lot delegate to it, so that a rule is
    written once whichever way it is reached.
    """

    # ---- actions (exocheck.lots) ----------------------------------------------------------------
    def add_lot(self, number: str, product: str, **kw: Any) -> dict[str, Any]:
        """:func:`exocheck.lots.actions.create_lot`."""
        from exocheck.lots import actions

        return actions.create_lot(self, number, product, **kw)

    def add_measurement(self, lot: str, measurement: Measurement, **kw: Any) -> int:
        """:func:`exocheck.lots.actions.add_measurement`."""
        from exocheck.lots import actions

        return actions.add_measurement(self, lot, measurement, **kw)

    def add_protein(self, lot: str, ug_per_ml: float, **kw: Any) -> int:
        """:func:`exocheck.lots.actions.add_protein`."""
        from exocheck.lots import actions

        return actions.add_protein(self, lot, ug_per_ml, **kw)

    def add_markers(self, lot: str, results: dict[str, str], **kw: Any) -> int:
        """:func:`exocheck.lots.actions.add_markers`."""
        from exocheck.lots import actions

        return actions.add_markers(self, lot, results, **kw)

    def add_safety(self, lot: str, results: dict[str, float | str], **kw: Any) -> int:
        """:func:`exocheck.lots.actions.add_safety`."""
        from exocheck.lots import actions

        return actions.add_safety(self, lot, results, **kw)

    def approve(self, number: str, *, by: str, comment: str | None = None) -> ReleaseResult:
        """:func:`exocheck.lots.signatures.approve_by_name` (a store without users)."""
        from exocheck.lots import signatures

        return signatures.approve_by_name(self, number, by=by, comment=comment)

    def list_lots(self, product: str | None = None) -> list[dict[str, Any]]:
        """:func:`exocheck.lots.status.overview`: every lot with its status and decision."""
        from exocheck.lots import status

        return status.overview(self, product)

    # ---- reading ----------------------------------------------------------------------------------
    def lot_info(self, number: str) -> dict[str, Any]:
        """Product, specification, dates, release signature and attachments of a lot."""
        with self._read() as session:
            lot = self._lot(session, number)
            release = lot.release
            withdrawn = self.withdrawn_of(lot)
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
                        "withdrawn": (
                            {
                                "by": withdrawn[x.id].printed_name,
                                "user": withdrawn[x.id].username,
                                "reason": withdrawn[x.id].reason,
                                "at": aware(withdrawn[x.id].withdrawn_at),
                            }
                            if x.id in withdrawn
                            else None
                        ),
                    }
                    for x in lot.measurements
                ],
            }

    def attachment(self, sha256: str) -> tuple[str, bytes]:
        """File name and original bytes of a stored attachment."""
        with self._read() as session:
            row = session.get(m.Attachment, sha256)
            if row is None:
                raise StoreError(f"no attachment with SHA-256 {sha256}")
            return row.filename, row.content

    @staticmethod
    def withdrawn_of(lot: m.Lot) -> dict[int, m.Withdrawal]:
        """The lot's withdrawals, by measurement id."""
        session = object_session(lot)
        rows = session.scalars(select(m.Withdrawal).where(m.Withdrawal.lot_id == lot.id))
        return {w.measurement_id: w for w in rows}

    def lot_data_of(self, lot: m.Lot) -> LotData:
        """The lot's data as the release decision reads it: withdrawn measurements left out,
        deviations accepted (by signature) on the current particle measurement applied."""
        try:
            return self._read_lot_data(lot)
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(
                f"lot {lot.number}: a stored record is not readable ({first}); the database "
                "was changed past exocheck ('exocheck audit verify' names the rows)"
            ) from None

    def _read_lot_data(self, lot: m.Lot) -> LotData:
        withdrawn = self.withdrawn_of(lot)
        current = [x for x in lot.measurements if x.id not in withdrawn]
        nta_rows = [x for x in current if x.kind == "nta"]
        nta = [Measurement.model_validate(x.data) for x in nta_rows]
        # the lot's particle measurement: never a labelled-fraction or fluorescence-mode record
        particle_rows = [
            (row, x) for row, x in zip(nta_rows, nta, strict=True) if is_particle_measurement(x)
        ]
        protein = [x.data for x in current if x.kind == "protein"]
        markers: dict[str, str] = {}
        safety: dict[str, Any] = {}
        for x in current:
            if x.kind == "markers":
                markers.update(x.data["results"])
            elif x.kind == "safety":
                safety.update(x.data["results"])
        accepted: dict[str, str] = {}
        if particle_rows:
            particle_id = particle_rows[-1][0].id
            session = object_session(lot)
            for s in session.scalars(
                select(m.Signature)
                .where(m.Signature.lot_id == lot.id, m.Signature.meaning == "deviation accepted")
                .order_by(m.Signature.id)
            ):
                content = s.content or {}
                if content.get("measurement_id") == particle_id and content.get("deviation"):
                    accepted[content["deviation"]] = (
                        f"{s.printed_name} ({s.role}), {aware(s.signed_at):%Y-%m-%d}: {s.reason}"
                    )
        product = lot.product
        return LotData(
            lot=lot.number,
            product=product.name,
            particles_per_unit_claim=product.particles_per_unit,
            fill_volume_ml=product.fill_volume_ml,
            unit_name=product.unit_name,
            manufactured=aware(lot.manufactured) or aware(lot.created_at),
            nta=particle_rows[-1][1] if particle_rows else None,
            nta_all=nta,
            protein=ProteinAssay.model_validate(protein[-1]) if protein else None,
            markers=markers,
            safety=safety,
            accepted_deviations=accepted,
        )

    def lot_data(self, number: str) -> LotData:
        """Everything known about a lot, as the plain record QC functions read."""
        with self._read() as session:
            return self.lot_data_of(self._lot(session, number))

    def product_lot_data(self, product: str) -> list[LotData]:
        """Every lot of a product, in order of manufacture (then entry)."""
        with self._read() as session:
            lots = session.scalars(
                select(m.Lot)
                .where(m.Lot.product_id == self._product(session, product).id)
                .order_by(m.Lot.id)
            )
            data = [self.lot_data_of(lot) for lot in lots]
        return sorted(data, key=lambda d: d.manufactured.timestamp() if d.manufactured else 0)

    def evaluate_row(self, lot: m.Lot) -> ReleaseResult:
        """:meth:`evaluate` of a lot row read in the caller's session."""
        if lot.release is not None:
            return ReleaseResult.model_validate(lot.release.result)
        if lot.specification is None:
            raise StoreError(f"lot {lot.number} has no specification (give one with --spec)")
        spec_row = lot.specification
        spec = _parsed(spec_row.yaml_text, f"{spec_row.name}@{spec_row.version}")
        return evaluate(spec, self.lot_data_of(lot))

    def evaluate(self, number: str) -> ReleaseResult:
        """Hold the lot against its specification. A signed lot gives its signed result."""
        with self._read() as session:
            return self.evaluate_row(self._lot(session, number))

    # the names other packages used before the store had a public face
    _withdrawn = withdrawn_of
    _lot_data = lot_data_of
    _evaluate_row = evaluate_row
