"""A certificate's current standing (the public verification page) and lot recalls.

The page ``/verify/{certificate id}`` shows :func:`verify_certificate_status`: whether the
certificate is genuine (issued by this store, its ``coa.json`` unchanged and its signature valid
with the key recorded at issue), the lot's current status (released, rejected, recalled, or
superseded by a newer certificate) with its date, the key results, the shelf life and the
particles per unit predicted at expiry. A recall (:func:`recall_lot`) is a QA electronic
signature with a reason and shows at once.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from exocheck.certify.models import Certificate, CertificateKey, Recall
from exocheck.lots.signatures import _recall_dict, recall_lot
from exocheck.store.base import aware

__all__ = ["recall_lot", "verify_certificate_status"]


def _genuine(row: Certificate, key: CertificateKey | None) -> bool:
    if key is None or hashlib.sha256(row.coa_json.encode("utf-8")).hexdigest() != row.coa_sha256:
        return False
    try:
        public = serialization.load_pem_public_key(key.public_key_pem.encode("ascii"))
        public.verify(base64.b64decode(row.data_signature), row.coa_json.encode("utf-8"))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def verify_certificate_status(store, certificate_id: str) -> dict[str, Any]:
    """What the public verification page of ``certificate_id`` shows.

    Returns ``{"found": False, "certificate_id"}`` for an id this store never issued, else::

        {"found": True, "certificate_id", "genuine": bool,
         "status": "released" | "rejected" | "recalled" | "superseded",
         "status_since": ISO time, "superseded_by": id | None,
         "recall": {"by", "user", "role", "reason", "at"} | None,
         "lot", "product", "issuer", "issued_at", "decision", "specification",
         "criteria": [{"name", "printed_value", "limit", "result"}],
         "signatures": [...], "lot_expiry": ISO date | None,
         "expiry_prediction": {"expiry", "particles_per_unit", "lower_95", "label_claim"} | None,
         "unit": "vial", "data_key_id", "pdf_key_id", "audit_chain_head"}

    ``genuine`` is False when the stored ``coa.json`` no longer matches its signature (the
    page must then say the certificate cannot be confirmed, and show no results).
    """
    import json

    with store.read() as session:
        row = session.scalar(
            select(Certificate).where(Certificate.certificate_id == (certificate_id or "").strip())
        )
        if row is None:
            return {"found": False, "certificate_id": certificate_id}
        genuine = _genuine(row, session.get(CertificateKey, row.data_key_id))
        newer = session.scalar(
            select(Certificate)
            .where(Certificate.lot_id == row.lot_id, Certificate.id > row.id)
            .order_by(Certificate.id.desc())
            .limit(1)
        )
        recall = session.scalar(
            select(Recall).where(Recall.lot_id == row.lot_id).order_by(Recall.id).limit(1)
        )
        data = json.loads(row.coa_json)
        if recall is not None:
            status, since = "recalled", aware(recall.recalled_at)
        elif newer is not None:
            status, since = "superseded", aware(newer.issued_at)
        else:
            status, since = data["status"], aware(row.issued_at)
        return {
            "found": True,
            "certificate_id": row.certificate_id,
            "genuine": genuine,
            "status": status,
            "status_since": since.isoformat(),
            "superseded_by": newer.certificate_id if newer is not None else None,
            "recall": _recall_dict(recall) if recall is not None else None,
            "lot": data["lot"]["number"],
            "product": data["product"]["name"],
            "unit": data["product"]["unit"],
            "issuer": data["issuer"],
            "issued_at": data["issued_at"],
            "decision": data["decision"],
            "specification": f"{data['specification']['name']} version "
            f"{data['specification']['version']}",
            "criteria": [
                {k: c[k] for k in ("name", "printed_value", "limit", "result")}
                for c in data["criteria"]
            ],
            "signatures": data["signatures"],
            "lot_expiry": data["lot"]["expiry"],
            "expiry_prediction": data["expiry_prediction"],
            "data_key_id": row.data_key_id,
            "pdf_key_id": row.pdf_key_id,
            "audit_chain_head": data["audit_chain_head"],
        }
