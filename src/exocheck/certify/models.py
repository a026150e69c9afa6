"""The tables of issued certificates, their keys and lot recalls, which live with every other
table in :mod:`exocheck.store.models` (one metadata, which Alembic compares in full)."""

from exocheck.store.models import Certificate, CertificateKey, Recall

__all__ = ["Certificate", "CertificateKey", "Recall"]
