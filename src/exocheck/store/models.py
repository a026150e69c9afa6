"""SQLAlchemy 2 models of the exocheck store.

Tables: products (with label claims), specifications (versioned YAML, immutable once a lot uses
them), lots, measurements (NTA records, protein assays, marker panels, safety tests; JSON
payloads), attachments (original files, content-addressed by SHA-256), releases (signed
decisions), audit_events (append-only, hash-chained), and the stability tables (studies, storage conditions,
results linked to lots and measurements).

The schema is created and upgraded by the Alembic migrations in ``exocheck.store.migrations``;
never by ``metadata.create_all``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict] = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    particles_per_unit: Mapped[float | None] = mapped_column(Float)
    fill_volume_ml: Mapped[float | None] = mapped_column(Float)
    unit_name: Mapped[str] = mapped_column(String(50), default="vial")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))

    lots: Mapped[list[Lot]] = relationship(back_populates="product")


class Specification(Base):
    __tablename__ = "specifications"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    yaml_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))


class Lot(Base):
    __tablename__ = "lots"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(200), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    specification_id: Mapped[int | None] = mapped_column(ForeignKey("specifications.id"))
    manufactured: Mapped[datetime | None] = mapped_column()
    expiry: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))

    product: Mapped[Product] = relationship(back_populates="lots")
    specification: Mapped[Specification | None] = relationship()
    measurements: Mapped[list[Measurement]] = relationship(
        back_populates="lot", order_by="Measurement.id"
    )
    release: Mapped[Release | None] = relationship(back_populates="lot", uselist=False)


class Attachment(Base):
    """An original file, stored once per content (SHA-256) and never altered."""

    __tablename__ = "attachments"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    filename: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Measurement(Base):
    """One result attached to a lot. ``kind`` is ``nta``, ``protein``, ``markers`` or
    ``safety``; ``data`` holds the record as JSON (an ``exocheck.nta/1`` record for NTA)."""

    __tablename__ = "measurements"

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    particles_per_ml: Mapped[float | None] = mapped_column(Float)
    d50_nm: Mapped[float | None] = mapped_column(Float)
    attachment_sha256: Mapped[str | None] = mapped_column(ForeignKey("attachments.sha256"))
    measured_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))

    lot: Mapped[Lot] = relationship(back_populates="measurements")
    attachment: Mapped[Attachment | None] = relationship()


class Release(Base):
    """A signed decision. Once it exists the lot's data can no longer change."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), unique=True)
    specification_id: Mapped[int] = mapped_column(ForeignKey("specifications.id"))
    decision: Mapped[str] = mapped_column(String(30))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    approved_by: Mapped[str] = mapped_column(String(200))
    approved_at: Mapped[datetime] = mapped_column(default=utcnow)
    comment: Mapped[str | None] = mapped_column(Text)

    lot: Mapped[Lot] = relationship(back_populates="release")
    specification: Mapped[Specification] = relationship()


class AuditEvent(Base):
    """Append-only: who did what, when, with the record before and after."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    entity: Mapped[str] = mapped_column(String(50))
    entity_key: Mapped[str] = mapped_column(String(300), index=True)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # added by migration 0005: SHA-256 chaining this event to the one before (store.chain)
    chain_sha256: Mapped[str | None] = mapped_column(String(64))


class StabilityStudy(Base):
    """A stability study (see :mod:`exocheck.qc.study`)."""

    __tablename__ = "stability_studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    attribute: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(50))
    time_unit: Mapped[str] = mapped_column(String(20), default="month")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    # added by migration 0002: evaluation protocol and the imported CSV file
    protocol: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    source_sha256: Mapped[str | None] = mapped_column(ForeignKey("attachments.sha256"))

    conditions: Mapped[list[StorageCondition]] = relationship(
        back_populates="study", order_by="StorageCondition.position"
    )
    results: Mapped[list[StabilityResult]] = relationship(back_populates="study")


class StorageCondition(Base):
    __tablename__ = "storage_conditions"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("stability_studies.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    temperature_c: Mapped[float | None] = mapped_column(Float)
    container: Mapped[str | None] = mapped_column(String(200))
    buffer: Mapped[str | None] = mapped_column(String(200))

    study: Mapped[StabilityStudy] = relationship(back_populates="conditions")


class StabilityResult(Base):
    """One time point of one lot under one condition, optionally linked to a measurement."""

    __tablename__ = "stability_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("stability_studies.id"), index=True)
    condition_id: Mapped[int] = mapped_column(ForeignKey("storage_conditions.id"))
    lot_number: Mapped[str] = mapped_column(String(200))
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"))
    time: Mapped[float] = mapped_column(Float)
    value: Mapped[float] = mapped_column(Float)
    measurement_id: Mapped[int | None] = mapped_column(ForeignKey("measurements.id"))

    study: Mapped[StabilityStudy] = relationship(back_populates="results")


# ---- people, sessions and electronic signatures (migration 0004) -------------------------------
ROLES = ("analyst", "reviewer", "qa", "admin")
#: what an electronic signature of a lot can mean
MEANINGS = ("reviewed", "approved", "rejected", "deviation accepted")


class User(Base):
    """A person who may log in. Never deleted (disabled instead); a name is never reused."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('analyst', 'reviewer', 'qa', 'admin')", name="ck_users_role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    printed_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))


class AuthSession(Base):
    """A server-side session: only the SHA-256 of its token is stored; revocable."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))  # page | api | cli
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(100))

    user: Mapped[User] = relationship()


class Signature(Base):
    """An electronic signature (21 CFR 11.50): printed name, UTC time, meaning, reason, and the
    SHA-256 of the canonical JSON of what was signed (11.70: bound to the record)."""

    __tablename__ = "signatures"
    __table_args__ = (
        CheckConstraint(
            "meaning IN ('reviewed', 'approved', 'rejected', 'deviation accepted')",
            name="ck_signatures_meaning",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    username: Mapped[str] = mapped_column(String(200))
    printed_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    meaning: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    content_sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[dict[str, Any]] = mapped_column(JSON)


# ---- certificates, their keys, recalls (migration 0005) -----------------------------------------


class CertificateKey(Base):
    """A public key that signed certificates of this store (never removed: old certificates
    must still verify after a rotation)."""

    __tablename__ = "certificate_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    use: Mapped[str] = mapped_column(String(10))  # data | pdf
    algorithm: Mapped[str] = mapped_column(String(50))
    public_key_pem: Mapped[str] = mapped_column(Text)
    certificate_pem: Mapped[str | None] = mapped_column(Text)
    first_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Certificate(Base):
    """An issued certificate of analysis: its signed ``coa.json`` (RFC 8785 text) and the
    detached Ed25519 signature. A newer certificate of the same lot supersedes it."""

    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(primary_key=True)
    certificate_id: Mapped[str] = mapped_column(String(64), unique=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    issued_by: Mapped[str] = mapped_column(String(200))
    coa_json: Mapped[str] = mapped_column(Text)
    coa_sha256: Mapped[str] = mapped_column(String(64))
    data_key_id: Mapped[str] = mapped_column(ForeignKey("certificate_keys.key_id"))
    data_signature: Mapped[str] = mapped_column(Text)  # base64
    pdf_key_id: Mapped[str] = mapped_column(ForeignKey("certificate_keys.key_id"))
    audit_head_id: Mapped[int] = mapped_column(Integer)
    audit_head_sha256: Mapped[str] = mapped_column(String(64))
    # added by migration 0006: the issued PDF, served again while the lot stays as it was
    # (``lot_event_id``: the lot's newest state-changing audit event at issue)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    lot_event_id: Mapped[int | None] = mapped_column(Integer)


class Recall(Base):
    """A lot recalled by QA with an electronic signature (password again, meaning, reason)."""

    __tablename__ = "lot_recalls"

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    username: Mapped[str] = mapped_column(String(200))
    printed_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    recalled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    content_sha256: Mapped[str] = mapped_column(String(64))


# ---- corrections and shared specifications (migration 0006) -------------------------------------
class Withdrawal(Base):
    """A measurement withdrawn from its lot by an electronic signature: the measurement row stays
    (struck through on the lot page and in the audit trail) and no longer counts."""

    __tablename__ = "measurement_withdrawals"

    id: Mapped[int] = mapped_column(primary_key=True)
    measurement_id: Mapped[int] = mapped_column(ForeignKey("measurements.id"), unique=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    username: Mapped[str] = mapped_column(String(200))
    printed_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    withdrawn_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    content_sha256: Mapped[str] = mapped_column(String(64))


class SpecificationProduct(Base):
    """A product that a specification version serves (one version may serve several)."""

    __tablename__ = "specification_products"
    __table_args__ = (UniqueConstraint("specification_id", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    specification_id: Mapped[int] = mapped_column(ForeignKey("specifications.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))


# ---- instruments, bead calibrations and analytical methods (migration 0007) ---------------------
class Instrument(Base):
    """An instrument of the register: what it is, and when its qualification and its calibration
    (by the vendor or the lab's metrology) fall due."""

    __tablename__ = "instruments"

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(200), unique=True)
    model: Mapped[str] = mapped_column(String(200))
    laser_wavelength_nm: Mapped[float | None] = mapped_column(Float)
    filter_set: Mapped[str | None] = mapped_column(String(200))
    camera: Mapped[str | None] = mapped_column(String(200))
    pixel_size_um: Mapped[float | None] = mapped_column(Float)
    qualification_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    calibration_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))


class Method(Base):
    """A versioned analytical method (its YAML document, immutable), approved by QA (four eyes:
    never by its author) before any analysis may use it."""

    __tablename__ = "methods"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    instrument_model: Mapped[str] = mapped_column(String(200))
    yaml_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BeadCalibration(Base):
    """A bead calibration that passed its acceptance check: the standard it used, what was
    measured, until when it may be used, and the calibration itself (``data``: the fields of
    :class:`exocheck.nta.concentration.Calibration`)."""

    __tablename__ = "calibrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int | None] = mapped_column(ForeignKey("instruments.id"), index=True)
    method_id: Mapped[int | None] = mapped_column(ForeignKey("methods.id"))
    standard_name: Mapped[str | None] = mapped_column(String(200))
    standard_lot: Mapped[str] = mapped_column(String(200))
    standard_expiry: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    certified_diameter_nm: Mapped[float] = mapped_column(Float)
    certified_concentration_per_ml: Mapped[float] = mapped_column(Float)
    measured_d50_nm: Mapped[float] = mapped_column(Float)
    span: Mapped[float] = mapped_column(Float)
    tolerance_percent: Mapped[float] = mapped_column(Float)
    max_span: Mapped[float] = mapped_column(Float)
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source_sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
