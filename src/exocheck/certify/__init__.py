"""Certificates anyone can verify: the organisation's keys, signed certificates of analysis,
offline verification, the public status of a certificate (recalls, supersession) and the
tamper-evident audit trail.

- :class:`Keyring` — ``exocheck keys init|rotate|import|export-public``.
- :func:`issue_certificate` — a PDF with an embedded, Ed25519-signed ``coa.json`` (RFC 8785),
  a QR code of the verification URL, signed with PAdES.
- :func:`verify_path` — ``exocheck verify``, offline.
- :func:`verify_certificate_status` — what the public page ``/verify/{certificate id}`` shows;
  :func:`recall_lot` — a QA recall with an electronic signature.
- :func:`verify_audit_trail` — ``exocheck audit verify``: the chain, the certificates' heads and
  the rows the chain recorded; :func:`check_lot_records` / :func:`require_intact_lot` — the same
  for one lot, before it is certified or released.
"""

from exocheck.certify.audit import (
    AuditCheck,
    RecordsAltered,
    check_lot_records,
    require_intact_lot,
    verify_audit_trail,
)
from exocheck.certify.certificate import IssuedCertificate, issue_certificate
from exocheck.certify.keys import Keyring, KeyringError, Letterhead, PublicKey, load_public_keys
from exocheck.certify.status import recall_lot, verify_certificate_status
from exocheck.certify.verify import Verification, VerificationFailed, verify_path, verify_pdf

__all__ = [
    "AuditCheck",
    "IssuedCertificate",
    "Keyring",
    "KeyringError",
    "Letterhead",
    "PublicKey",
    "RecordsAltered",
    "Verification",
    "VerificationFailed",
    "check_lot_records",
    "issue_certificate",
    "load_public_keys",
    "recall_lot",
    "require_intact_lot",
    "verify_audit_trail",
    "verify_certificate_status",
    "verify_path",
    "verify_pdf",
]
