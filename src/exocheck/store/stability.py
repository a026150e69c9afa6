"""Stability studies in the store: CSV import, listing, shelf life and particles at expiry.

A study is imported from a tidy CSV table (:func:`exocheck.qc.study.read_study_csv`) into the
stability tables: the study (attribute, unit, time unit, product, evaluation protocol, the SHA-256
of the original file, which is kept as an attachment), its storage conditions (temperature,
container, buffer) and its results, each linked to a lot of the product. Every lot must exist:
otherwise nothing is written. Example::

    with Store.open(url) as store:
        store.import_study("study.csv", name="EV-4C", product="EXO-1", by="ana",
                           response_col="concentration_per_ml", time_col="day", time_unit="day",
                           protocol={"lower_limit": 7e10, "transform": "log",
                                     "storage": "refrigerated",
                                     "condition": {"temperature_c": 4, "container": "low-binding"}})
        result = store.shelf_life("EV-4C")                  # ShelfLifeResult (ICH Q1E)
        expiry = store.particles_at_expiry("EXO-1-007")      # LotExpiry, from the product's study
        write_coa(store, "EXO-1-007", "coa.html", expiry=expiry.for_certificate())

The protocol holds the evaluation settings of :func:`exocheck.qc.stability.estimate_shelf_life`
(acceptance limits, transform, ICH Q1E storage class and accelerated / intermediate change,
confidence) and the labelled storage condition; arguments given to :meth:`shelf_life` override it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import select

from exocheck.errors import StabilityError, StoreError
from exocheck.qc.expiry import ParticlesAtExpiry
from exocheck.qc.expiry import particles_at_expiry as _particles_at_expiry
from exocheck.qc.ich_q1e import MONTH_IN_UNIT, Change, Storage
from exocheck.qc.stability_records import ShelfLifeResult
from exocheck.qc.study import StabilityStudy, StudyCondition, StudyResult, read_study_csv
from exocheck.store import models as m
from exocheck.store.base import StoreBase, aware, check_actor

ConditionFilter = dict[str, str | float]
_CONDITION_KEYS = ("temperature_c", "container", "buffer")
_DAYS_PER_MONTH = 365.25 / 12.0


class StudyProtocol(BaseModel):
    """How a study is evaluated: the settings of ``estimate_shelf_life`` and the storage
    condition on the label (``condition``: e.g. ``{"temperature_c": 4, "container": "vial"}``;
    needed only when the study has more than one condition)."""

    model_config = ConfigDict(extra="forbid")

    lower_limit: float | None = None
    upper_limit: float | None = None
    transform: Literal["none", "log"] = "none"
    storage: Storage = "room"
    accelerated_change: Change | None = None
    intermediate_change: Change = "none"
    confidence: float = 0.95
    condition: ConditionFilter | None = None


class LotExpiry(BaseModel):
    """Particles per unit of a lot at the end of its shelf life, from a stored study."""

    model_config = ConfigDict(extra="forbid")

    lot: str
    study: str
    condition: str
    time_unit: str
    expiry_time: float
    expiry_date: datetime | None
    expiry_from: Literal["lot expiry date", "supported shelf life"]
    model: str
    shelf_life: float | None
    supported_shelf_life: float
    worst_batch: str | None
    particles: ParticlesAtExpiry
    warnings: list[str]

    def for_certificate(self) -> dict[str, Any]:
        """The ``expiry=`` section of :func:`exocheck.report.write_coa`."""
        unit = self.time_unit
        p = self.particles
        when = self.expiry_date or f"{self.expiry_time:.4g} {unit}(s) after manufacture"
        shelf = "not reached" if self.shelf_life is None else f"{self.shelf_life:.4g} {unit}(s)"
        governs = f", governing lot {self.worst_batch}" if self.worst_batch else ""
        note = (
            f"Stability study {self.study} ({self.condition}): ICH Q1E model {self.model}, "
            f"shelf life {shelf}, supported {self.supported_shelf_life:.4g} {unit}(s)"
            f"{governs}. Predicted at {self.expiry_time:.4g} {unit}(s) "
            f"({self.expiry_from}) by first-order loss from the label claim: "
            f"{p.fraction_remaining:.1%} remaining (lower one-sided "
            f"{p.confidence:.0%} bound {p.fraction_remaining_lower:.1%})."
        )
        if self.warnings:
            note += " " + " ".join(self.warnings)
        return {
            "expiry": when,
            "particles_per_unit": p.predicted_per_unit,
            "lower_95": p.lower_bound_per_unit,
            "label_claim": p.label_claim_per_unit,
            "note": note,
        }


def _protocol(value: StudyProtocol | dict[str, Any] | None, where: str) -> StudyProtocol:
    if isinstance(value, StudyProtocol):
        return value
    try:
        return StudyProtocol.model_validate(value or {})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        raise StabilityError(f"{where}: protocol {key}: {error['msg']}") from None


def select_condition(study: StabilityStudy, where: ConditionFilter | None) -> int:
    """Index of the one storage condition of ``study`` matching ``where`` (all keys must match;
    keys ``temperature_c``, ``container``, ``buffer``). Without ``where`` the study must have a
    single condition."""
    matches = list(range(len(study.conditions)))
    for key, wanted in (where or {}).items():
        if key not in _CONDITION_KEYS:
            raise StabilityError(
                f"study {study.name}: cannot select a condition by {key!r} "
                f"(use {', '.join(_CONDITION_KEYS)})"
            )
        if key == "temperature_c":
            try:
                wanted = float(wanted)
            except (TypeError, ValueError):
                raise StabilityError(
                    f"study {study.name}: temperature_c={wanted!r} is not a number"
                ) from None
        else:
            wanted = str(wanted)
        matches = [i for i in matches if getattr(study.conditions[i], key) == wanted]
    if len(matches) == 1:
        return matches[0]
    labels = "; ".join(c.label for c in study.conditions)
    if not matches:
        raise StabilityError(
            f"study {study.name}: no storage condition matches {where} (conditions: {labels})"
        )
    raise StabilityError(
        f"study {study.name} has {len(matches)} matching storage conditions "
        f"({labels}): choose one, e.g. --where temperature_c=4"
    )


def _study_info(session, row: m.StabilityStudy) -> dict[str, Any]:
    lots = list(dict.fromkeys(r.lot_number for r in sorted(row.results, key=lambda r: r.id)))
    product = session.get(m.Product, row.product_id) if row.product_id is not None else None
    return {
        "study": row.name,
        "product": product.name if product else None,
        "attribute": row.attribute,
        "unit": row.unit,
        "time_unit": row.time_unit,
        "conditions": [
            StudyCondition(
                temperature_c=c.temperature_c, container=c.container, buffer=c.buffer
            ).label
            for c in row.conditions
        ],
        "lots": lots,
        "results": len(row.results),
        "protocol": row.protocol,
        "source_sha256": row.source_sha256,
        "created_by": row.created_by,
        "created_at": aware(row.created_at).isoformat(),
    }


class StabilityMixin(StoreBase):
    """Stability studies: import, list, load, shelf life, particles at expiry."""

    def import_study(
        self,
        path: str | Path,
        *,
        name: str,
        product: str,
        by: str,
        response_col: str,
        lot_col: str = "lot",
        time_col: str = "time",
        temperature_col: str | None = "temperature_c",
        container_col: str | None = "container",
        buffer_col: str | None = "buffer",
        time_unit: str = "month",
        unit: str | None = None,
        protocol: StudyProtocol | dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Import a stability study of ``product`` from CSV (one row per result) in one
        transaction. Every lot named in the file must be a stored lot of ``product``; the CSV
        itself is kept as an attachment. Returns the study's summary (as :meth:`list_studies`)."""
        by = check_actor(by)
        name = (name or "").strip()
        if not name:
            raise StoreError("a study needs a name (--name)")
        path = Path(path)
        study = read_study_csv(
            path,
            response_col=response_col,
            lot_col=lot_col,
            time_col=time_col,
            temperature_col=temperature_col,
            container_col=container_col,
            buffer_col=buffer_col,
            time_unit=time_unit,
            unit=unit,
            name=name,
        )
        plan = _protocol(protocol, str(path))
        if plan.condition is not None:
            select_condition(study, plan.condition)  # must name exactly one condition
        content = path.read_bytes()
        sha = hashlib.sha256(content).hexdigest()
        with self._action() as session:
            product_row = self._product(session, product)
            if session.scalar(select(m.StabilityStudy).where(m.StabilityStudy.name == name)):
                raise StoreError(f"study {name!r} already exists")
            numbers = list(dict.fromkeys(r.lot for r in study.results))
            lots = {
                lot.number: lot
                for lot in session.scalars(select(m.Lot).where(m.Lot.number.in_(numbers)))
            }
            missing = [n for n in numbers if n not in lots]
            if missing:
                raise StoreError(
                    f"{path}: unknown lot(s) {', '.join(missing)}: add them with "
                    "'exocheck lot add' first; nothing imported"
                )
            foreign = [n for n in numbers if lots[n].product_id != product_row.id]
            if foreign:
                raise StoreError(
                    f"{path}: lot(s) {', '.join(foreign)} are not lots of product "
                    f"{product_row.name}; nothing imported"
                )
            if session.get(m.Attachment, sha) is None:
                session.add(
                    m.Attachment(
                        sha256=sha, filename=path.name, size_bytes=len(content), content=content
                    )
                )
            row = m.StabilityStudy(
                name=name,
                product_id=product_row.id,
                attribute=study.attribute,
                unit=study.unit,
                time_unit=study.time_unit,
                created_by=by,
                protocol=plan.model_dump(mode="json"),
                source_sha256=sha,
            )
            session.add(row)
            conditions = [
                m.StorageCondition(study=row, position=i, **c.model_dump())
                for i, c in enumerate(study.conditions)
            ]
            session.add_all(conditions)
            session.flush()
            session.add_all(
                [
                    m.StabilityResult(
                        study_id=row.id,
                        condition_id=conditions[r.condition].id,
                        lot_number=r.lot,
                        lot_id=lots[r.lot].id,
                        time=r.time,
                        value=r.value,
                    )
                    for r in study.results
                ]
            )
            session.flush()
            session.refresh(row)
            info = _study_info(session, row)
            self._audit(
                session,
                by,
                "study.import",
                "study",
                name,
                after={k: v for k, v in info.items() if k != "created_at"}
                | {"source_file": path.name},
            )
        return info

    def list_studies(self, product: str | None = None) -> list[dict[str, Any]]:
        """``[{"study", "product", "attribute", "unit", "time_unit", "conditions", "lots",
        "results", "protocol", "source_sha256", "created_by", "created_at"}]``, by name."""
        with self._read() as session:
            query = select(m.StabilityStudy).order_by(m.StabilityStudy.name)
            if product is not None:
                query = query.where(
                    m.StabilityStudy.product_id == self._product(session, product).id
                )
            return [_study_info(session, row) for row in session.scalars(query)]

    @staticmethod
    def _study_row(session, name: str) -> m.StabilityStudy:
        row = session.scalar(select(m.StabilityStudy).where(m.StabilityStudy.name == name))
        if row is None:
            raise StoreError(f"unknown study {name!r} (import it with 'exocheck study import')")
        return row

    def get_study(self, name: str) -> StabilityStudy:
        """The stored study as the plain :class:`~exocheck.qc.study.StabilityStudy` record."""
        with self._read() as session:
            row = self._study_row(session, name)
            position = {c.id: c.position for c in row.conditions}
            results = session.scalars(
                select(m.StabilityResult)
                .where(m.StabilityResult.study_id == row.id)
                .order_by(m.StabilityResult.id)
            )
            return StabilityStudy(
                name=row.name,
                attribute=row.attribute,
                unit=row.unit,
                time_unit=row.time_unit,
                conditions=[
                    StudyCondition(
                        temperature_c=c.temperature_c, container=c.container, buffer=c.buffer
                    )
                    for c in row.conditions
                ],
                results=[
                    StudyResult(
                        lot=r.lot_number,
                        time=r.time,
                        value=r.value,
                        condition=position[r.condition_id],
                    )
                    for r in results
                ],
            )

    def study_protocol(self, name: str) -> StudyProtocol:
        """The evaluation protocol stored with the study."""
        with self._read() as session:
            return _protocol(self._study_row(session, name).protocol, f"study {name}")

    def study_condition(self, name: str, where: ConditionFilter | None = None) -> StudyCondition:
        """The storage condition :meth:`shelf_life` evaluates (``where``, else the protocol's)."""
        study = self.get_study(name)
        chosen = where if where else self.study_protocol(name).condition
        return study.conditions[select_condition(study, chosen)]

    def shelf_life(
        self, study: str, *, where: ConditionFilter | None = None, **settings: Any
    ) -> ShelfLifeResult:
        """Shelf life by ICH Q1E of one storage condition of a stored study.

        ``where`` selects the condition (default: the protocol's, or the only one). ``settings``
        are the keyword arguments of :func:`~exocheck.qc.stability.estimate_shelf_life`
        (``lower_limit``, ``upper_limit``, ``transform``, ``storage``, ``accelerated_change``,
        ``intermediate_change``, ``confidence``); those given (not ``None``) override the
        stored protocol.
        """
        from exocheck.qc.stability import estimate_shelf_life  # statsmodels: loaded on use

        data = self.get_study(study)
        stored = self.study_protocol(study)
        given = {k: v for k, v in settings.items() if v is not None}
        plan = _protocol(stored.model_dump() | given, f"study {study}")
        index = select_condition(data, where if where else plan.condition)
        return estimate_shelf_life(
            data.frame(index),
            time_col="time",
            response_col="value",
            batch_col="lot",
            lower_limit=plan.lower_limit,
            upper_limit=plan.upper_limit,
            transform=plan.transform,
            storage=plan.storage,
            time_unit=data.time_unit,
            accelerated_change=plan.accelerated_change,
            intermediate_change=plan.intermediate_change,
            confidence=plan.confidence,
        )

    def default_study(self, product: str) -> str | None:
        """The study the certificate of a lot of ``product`` uses without ``--study``: the
        product's only study whose protocol has an acceptance limit (``None`` if none or
        several)."""
        rows = [
            s
            for s in self.list_studies(product)
            if s["protocol"]
            and (
                s["protocol"].get("lower_limit") is not None
                or s["protocol"].get("upper_limit") is not None
            )
        ]
        return rows[0]["study"] if len(rows) == 1 else None

    def particles_at_expiry(
        self, lot: str, *, study: str | None = None, where: ConditionFilter | None = None
    ) -> LotExpiry:
        """Particles per unit of ``lot`` at expiry with the lower one-sided 95 % bound.

        The lot is taken to be released at its product's label claim and to lose particles by
        first order as ``study`` (default: :meth:`default_study`) measured under its labelled
        condition (the protocol needs ``transform: log``). Expiry is the lot's expiry date when
        both it and the date of manufacture are stored, else the supported shelf life.
        """
        info = self.lot_info(lot)
        claim = next(p for p in self.list_products() if p["product"] == info["product"])[
            "particles_per_unit"
        ]
        if claim is None:
            raise StoreError(
                f"product {info['product']} has no label claim (particles per "
                "unit): particles at expiry are stated against it"
            )
        if study is None:
            study = self.default_study(info["product"])
            if study is None:
                raise StoreError(
                    f"product {info['product']} has no single stored study with "
                    "an acceptance limit: name one with --study"
                )
        result = self.shelf_life(study, where=where)
        condition = self.study_condition(study, where)
        days_per_unit = _DAYS_PER_MONTH / MONTH_IN_UNIT[result.time_unit]
        made, expires = info["manufactured"], info["expiry"]
        warnings: list[str] = []
        if made is not None and expires is not None:
            t = (expires - made).total_seconds() / 86400.0 / days_per_unit
            if t < 0:
                raise StoreError(
                    f"lot {lot}: expiry date {expires:%Y-%m-%d} is before its "
                    f"manufacture {made:%Y-%m-%d}"
                )
            source, date = "lot expiry date", expires
            if t > result.supported_shelf_life * (1 + 1e-9):
                warnings.append(
                    f"The lot's expiry lies beyond the supported shelf life "
                    f"({result.supported_shelf_life:.4g} {result.time_unit}(s))."
                )
        else:
            t, source = result.supported_shelf_life, "supported shelf life"
            date = None if made is None else made + timedelta(days=t * days_per_unit)
        particles = _particles_at_expiry(result, expiry=t, label_claim_per_unit=claim)
        return LotExpiry(
            lot=lot,
            study=study,
            condition=condition.label,
            time_unit=result.time_unit,
            expiry_time=t,
            expiry_date=date,
            expiry_from=source,
            model=result.model,
            shelf_life=result.shelf_life,
            supported_shelf_life=result.supported_shelf_life,
            worst_batch=result.worst_batch,
            particles=particles,
            warnings=warnings,
        )
