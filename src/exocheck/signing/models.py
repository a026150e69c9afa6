"""Tables of issued certificates, the public keys that signed them, and lot recalls
(migration 0005)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from exocheck.store.models import Base, utcnow


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
