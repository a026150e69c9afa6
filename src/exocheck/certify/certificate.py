"""Issuing a signed certificate of analysis.

The certified content (:func:`certificate_data`) is written as RFC 8785 canonical JSON
(``coa.json``) and signed with the organisation's Ed25519 data key (a detached signature,
``coa.json.sig``). Both are embedded in the PDF rendered by :mod:`exocheck.report.coa`, whose
page shows a QR code of ``<public base URL>/verify/<certificate id>``; the PDF is then signed
(PAdES B-B, pyHanko) with the organisation's PDF key. The store keeps the certificate, its
signature and the public keys that made them, so that the verification page can answer for it
and a later certificate of the same lot supersedes it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import segno
from sqlalchemy import select

from exocheck import __version__
from exocheck.auth.models import Signature
from exocheck.canonical import canonical_json
from exocheck.certify.keys import Keyring, public_pem
from exocheck.certify.models import Certificate, CertificateKey
from exocheck.errors import StoreError
from exocheck.store import models as m
from exocheck.store.base import aware

COA_FORMAT = "exocheck.coa/1"
SIGNATURE_FORMAT = "exocheck.coa-signature/1"
COA_NAME = "coa.json"
SIGNATURE_NAME = "coa.json.sig"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
#: QR code geometry on the page: pixels per module and quiet-zone modules
QR_SCALE = 4
QR_BORDER = 4


def verify_url(public_url: str, certificate_id: str) -> str:
    return f"{public_url.rstrip('/')}/verify/{certificate_id}"


def qr_png(url: str) -> bytes:
    """The QR code of ``url`` as a PNG (``QR_SCALE`` pixels per module)."""
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(
        buffer, kind="png", scale=QR_SCALE, border=QR_BORDER
    )
    return buffer.getvalue()


def qr_modules(url: str) -> list[list[bool]]:
    """The dark/light modules of the QR code of ``url``, quiet zone included."""
    qr = segno.make(url, error="m", micro=False)
    return [[bool(v) for v in row] for row in qr.matrix_iter(scale=1, border=QR_BORDER)]


def canonical(data: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of ``data`` (:func:`exocheck.canonical.canonical_json`)."""
    return canonical_json(data)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return aware(value).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_certificate_id() -> str:
    """A random certificate id: ``COA-`` and four groups of four hex digits."""
    digits = secrets.token_hex(8).upper()
    return "COA-" + "-".join(digits[i : i + 4] for i in range(0, 16, 4))


def certificate_data(
    store,
    lot: str,
    *,
    certificate_id: str,
    issuer: str,
    public_url: str,
    keys: dict[str, str],
    expiry: Any = None,
) -> dict[str, Any]:
    """The certified content of ``lot``'s certificate (what ``coa.json`` holds)."""
    from exocheck.report.coa import coa_context, printed_value

    context = coa_context(store, lot, expiry=expiry)
    info, result, spec = context["lot"], context["result"], context["spec"]
    if context["status"] == "RECALLED":
        raise StoreError(f"lot {lot} is recalled: it gets no new certificate")
    if context["status"] is None:
        raise StoreError(
            f"lot {lot} is not signed: only a released or rejected lot gets a "
            "signed certificate (a draft is written unsigned)"
        )
    with store.read() as session:
        row = store.lot_row(session, lot)
        signatures = [
            {
                "name": s.printed_name,
                "user": s.username,
                "role": s.role,
                "meaning": s.meaning,
                "reason": s.reason,
                "signed_at": _utc(s.signed_at),
            }
            for s in session.scalars(
                select(Signature).where(Signature.lot_id == row.id).order_by(Signature.id)
            )
        ]
        head = session.execute(
            select(m.AuditEvent.id, m.AuditEvent.chain_sha256)
            .order_by(m.AuditEvent.id.desc())
            .limit(1)
        ).first()
    if info["approved_by"] and not any(
        s["meaning"] in ("approved", "rejected") for s in signatures
    ):
        signatures.append(
            {
                "name": info["approved_by"],
                "user": info["approved_by"],
                "role": None,
                "meaning": "approved" if result.decision == "conforms" else "rejected",
                "reason": info["comment"],
                "signed_at": _utc(info["approved_at"]),
            }
        )
    product = context["product"]
    prediction = context["expiry"]
    data = {
        "format": COA_FORMAT,
        "certificate_id": certificate_id,
        "issued_at": _utc(datetime.now(UTC)),
        "issuer": issuer,
        "verify_url": verify_url(public_url, certificate_id),
        "product": {
            "name": product["product"],
            "unit": product.get("unit_name") or "unit",
            "label_claim_per_unit": product.get("particles_per_unit"),
            "fill_volume_ml": product.get("fill_volume_ml"),
        },
        "lot": {
            "number": info["lot"],
            "manufactured": _utc(info["manufactured"]),
            "expiry": _utc(info["expiry"]),
        },
        "specification": {
            "name": spec.name,
            "version": spec.version,
            "sha256": context["spec_sha256"],
        },
        "decision": result.decision,
        "status": context["lot_status"],
        "criteria": [
            {
                "name": c.name,
                "value": c.value,
                "unit": c.unit,
                "printed_value": printed_value(c),
                "limit": c.limit,
                "result": c.result,
            }
            for c in result.criteria
        ],
        "signatures": signatures,
        "raw_files": [
            {"filename": a["filename"], "sha256": a["sha256"], "role": a["role"]}
            for a in context["inputs"]
        ],
        "expiry_prediction": None
        if prediction is None
        else {
            "expiry": prediction.expiry
            if isinstance(prediction.expiry, str)
            else _utc(prediction.expiry),
            "particles_per_unit": prediction.particles_per_unit,
            "lower_95": prediction.lower_95,
            "label_claim": prediction.label_claim,
        },
        "audit_chain_head": {
            "event_id": head.id if head else 0,
            "sha256": (head.chain_sha256 if head else None) or "",
        },
        "keys": keys,
        "exocheck_version": __version__,
    }
    return _finite(data)


@dataclass(frozen=True)
class IssuedCertificate:
    certificate_id: str
    pdf: bytes
    coa_json: bytes
    signature: dict[str, str]
    data: dict[str, Any]


def sign_data(keyring: Keyring, coa_json: bytes) -> dict[str, str]:
    """The detached Ed25519 signature of ``coa_json`` (what ``coa.json.sig`` holds)."""
    kid, key = keyring.private_key("data")
    return {
        "format": SIGNATURE_FORMAT,
        "algorithm": "Ed25519",
        "key_id": kid,
        "signature": base64.b64encode(key.sign(coa_json)).decode("ascii"),
    }


def sign_pdf(pdf: bytes, keyring: Keyring, attachments: dict[str, bytes], *, reason: str) -> bytes:
    """Embed ``attachments`` and sign the PDF (PAdES B-B) with the active PDF key."""
    from pyhanko.keys import load_certs_from_pemder_data
    from pyhanko.pdf_utils import embed
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.signers.pdf_cms import SimpleSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    kid, key = keyring.private_key("pdf")
    certs = list(load_certs_from_pemder_data(keyring.certificate_chain_pem(kid).encode("ascii")))
    from cryptography.hazmat.primitives import serialization
    from pyhanko.keys import load_private_key_from_pemder_data

    signing_key = load_private_key_from_pemder_data(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        passphrase=None,
    )
    signer = SimpleSigner(
        signing_cert=certs[0],
        signing_key=signing_key,
        cert_registry=SimpleCertificateStore.from_certs(certs),
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    for name, content in attachments.items():
        mime = "application/json" if name.endswith(".json") else "application/octet-stream"
        embed.embed_file(
            writer,
            embed.FileSpec(
                file_spec_string=name,
                file_name=name,
                embedded_data=embed.EmbeddedFileObject.from_file_data(
                    writer, content, mime_type=mime
                ),
                description=name,
            ),
        )
    meta = signers.PdfSignatureMetadata(
        field_name="exocheck-certificate",
        reason=reason,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
    )
    out = io.BytesIO()
    signers.sign_pdf(writer, meta, signer=signer, output=out)
    return out.getvalue()


def _register_key(session, kid: str, use: str, keyring: Keyring) -> None:
    if session.get(CertificateKey, kid) is not None:
        return
    public = next(k for k in keyring.public_keys() if k.key_id == kid)
    session.add(
        CertificateKey(
            key_id=kid,
            use=use,
            algorithm=public.algorithm,
            public_key_pem=public_pem(public.public_key),
            certificate_pem=public.certificate_pem,
        )
    )


def issue_certificate(
    store,
    lot: str,
    keyring: Keyring,
    *,
    by: str,
    public_url: str | None = None,
    expiry: Any = None,
    lot_event_id: int | None = None,
) -> IssuedCertificate:
    """Issue a signed certificate of ``lot`` (released or rejected): render, sign and record
    it, with its PDF. An earlier certificate of the lot is superseded by this one. Nothing is
    recorded when any step fails. ``lot_event_id`` records the lot's state it was issued on
    (:func:`exocheck.lots.certificate.lot_revision`), so that it is given again, unchanged,
    while the lot stays so. Which certificate a lot gets is
    :func:`exocheck.lots.certificate.certificate`'s to decide."""
    from exocheck.report.coa import render_html, render_pdf
    from exocheck.store.base import check_actor

    by = check_actor(by, "issuer")
    keys = {"data": keyring.private_key("data")[0], "pdf": keyring.private_key("pdf")[0]}
    certificate_id = new_certificate_id()
    url = public_url or keyring.public_url or DEFAULT_PUBLIC_URL
    data = certificate_data(
        store,
        lot,
        certificate_id=certificate_id,
        issuer=keyring.organisation,
        public_url=url,
        keys=keys,
        expiry=expiry,
    )
    coa_json = canonical(data)
    signature = sign_data(keyring, coa_json)
    html = render_html(
        store,
        lot,
        expiry=expiry,
        letterhead=keyring.letterhead(),
        certificate=data
        | {
            "qr_png": "data:image/png;base64,"
            + base64.b64encode(qr_png(data["verify_url"])).decode()
        },
    )
    pdf = sign_pdf(
        render_pdf(html),
        keyring,
        {COA_NAME: coa_json, SIGNATURE_NAME: json.dumps(signature, indent=2).encode("utf-8")},
        reason=f"Certificate of analysis {certificate_id}, lot {lot}: {data['status']}",
    )
    with store.transaction() as session:
        row = store.lot_row(session, lot)
        for use, kid in keys.items():
            _register_key(session, kid, use, keyring)
        session.flush()
        session.add(
            Certificate(
                certificate_id=certificate_id,
                lot_id=row.id,
                issued_by=by,
                issued_at=datetime.fromisoformat(data["issued_at"].replace("Z", "+00:00")),
                coa_json=coa_json.decode("utf-8"),
                coa_sha256=hashlib.sha256(coa_json).hexdigest(),
                data_key_id=keys["data"],
                data_signature=signature["signature"],
                pdf_key_id=keys["pdf"],
                audit_head_id=data["audit_chain_head"]["event_id"],
                audit_head_sha256=data["audit_chain_head"]["sha256"],
                pdf=pdf,
                lot_event_id=lot_event_id,
            )
        )
        store.audit(
            session,
            by,
            "certificate.issue",
            "certificate",
            certificate_id,
            lot_id=row.id,
            after={
                "certificate_id": certificate_id,
                "lot": lot,
                "coa_sha256": hashlib.sha256(coa_json).hexdigest(),
                "data_key_id": keys["data"],
                "pdf_key_id": keys["pdf"],
                "audit_chain_head": data["audit_chain_head"],
            },
        )
    return IssuedCertificate(certificate_id, pdf, coa_json, signature, data)
