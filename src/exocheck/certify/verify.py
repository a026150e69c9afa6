"""Offline verification of a certificate of analysis (``exocheck verify``).

A PDF passes when (1) its ``coa.json`` carries a valid Ed25519 signature by a published data key,
(2) its PAdES signature covers the whole file, is intact and was made with a published PDF key,
and (3) the page shows what ``coa.json`` states: the certificate id and verification URL, lot,
product, decision and every criterion's value and verdict, and a QR code that encodes exactly
the verification URL. A bare ``coa.json`` (with ``coa.json.sig`` beside it) is checked for (1).

The first check that fails ends the verification with one line that names it:
``document altered after signing``, ``data signature invalid``, ``unknown key``, ``page and data
disagree`` or ``not a signed certificate``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from pyhanko.pdf_utils.misc import PdfReadError

from exocheck.certify import pdfread
from exocheck.certify.certificate import (
    COA_FORMAT,
    COA_NAME,
    QR_BORDER,
    SIGNATURE_NAME,
    canonical,
    qr_modules,
)
from exocheck.certify.keys import PublicKey

#: what reading a damaged or hostile PDF may raise (the file is then not verifiable)
READ_ERRORS = (
    PdfReadError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    NotImplementedError,
    AssertionError,
    zlib.error,
)

ALTERED = "document altered after signing"
DATA_INVALID = "data signature invalid"
UNKNOWN_KEY = "unknown key"
DISAGREE = "page and data disagree"
NOT_SIGNED = "not a signed certificate"


class VerificationFailed(Exception):
    """A certificate failed verification; ``str()`` is the one line to show."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.what = what
        self.detail = detail


@dataclass
class Verification:
    """What a successful verification established."""

    data: dict[str, Any]
    data_key: PublicKey
    pdf_key: PublicKey | None = None
    pdf_signer: str | None = None
    pdf_signed_at: str | None = None
    checks: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Who signed what, with which meaning, when, and with which key."""
        d = self.data
        out = [
            f"genuine: certificate {d['certificate_id']} of lot {d['lot']['number']} "
            f"({d['product']['name']}), issued {d['issued_at']} by {d['issuer']}",
            f"decision: {d['decision']} — {d['status']}; specification "
            f"{d['specification']['name']} version {d['specification']['version']}",
        ]
        for s in d["signatures"]:
            role = f" ({s['role']})" if s.get("role") else ""
            reason = f": {s['reason']}" if s.get("reason") else ""
            out.append(f"signed '{s['meaning']}' by {s['name']}{role} at {s['signed_at']}{reason}")
        out.append(f"data signed with {self.data_key.algorithm} key {self.data_key.key_id}")
        if self.pdf_key is not None:
            out.append(
                f"PDF signed with {self.pdf_key.algorithm} key {self.pdf_key.key_id} "
                f"({self.pdf_signer}) at {self.pdf_signed_at}"
            )
        out.append("checked: " + "; ".join(self.checks))
        out.append(f"current status (recall, supersession): {d['verify_url']}")
        return out


def _find_key(keys: list[PublicKey], use: str, kid: str, what: str) -> PublicKey:
    key = next((k for k in keys if k.use == use and k.key_id == kid), None)
    if key is None:
        raise VerificationFailed(
            UNKNOWN_KEY,
            f"{what} is signed with key {kid}, which is not among the issuer's published keys",
        )
    return key


def verify_data(coa_json: bytes, signature_json: bytes, keys: list[PublicKey]) -> Verification:
    """Check ``coa.json`` against its detached signature and the published keys."""
    try:
        signature = json.loads(signature_json)
        kid = signature["key_id"]
        raw = base64.b64decode(signature["signature"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise VerificationFailed(
            DATA_INVALID, f"{SIGNATURE_NAME} is not a readable signature"
        ) from None
    key = _find_key(keys, "data", kid, COA_NAME)
    if not isinstance(key.public_key, ed25519.Ed25519PublicKey):
        raise VerificationFailed(UNKNOWN_KEY, f"key {kid} is not an Ed25519 data key")
    try:
        key.public_key.verify(raw, coa_json)
    except InvalidSignature:
        raise VerificationFailed(
            DATA_INVALID,
            f"{COA_NAME} does not match its Ed25519 signature (key {kid}): its content was changed",
        ) from None
    try:
        data = json.loads(coa_json)
        assert data.get("format") == COA_FORMAT
    except (ValueError, AssertionError):
        raise VerificationFailed(NOT_SIGNED, f"{COA_NAME} is not an exocheck certificate") from None
    if canonical(data) != coa_json:
        raise VerificationFailed(DATA_INVALID, f"{COA_NAME} is not in RFC 8785 canonical form")
    if data.get("keys", {}).get("data") != kid:
        raise VerificationFailed(
            UNKNOWN_KEY,
            f"{COA_NAME} names data key "
            f"{data.get('keys', {}).get('data')} but is signed with {kid}",
        )
    if not data["verify_url"].endswith("/verify/" + data["certificate_id"]):
        raise VerificationFailed(DISAGREE, "the verification URL does not name the certificate")
    return Verification(data=data, data_key=key, checks=["data signature (Ed25519, RFC 8785)"])


def _check_signature_padding(signature) -> None:
    """The bytes reserved for the signature beyond the CMS object are zeros (they lie outside
    the signed byte range; a change there is still a change of the file)."""
    from asn1crypto import cms

    try:
        contents = bytes(signature.sig_object["/Contents"].original_bytes)
        used = len(cms.ContentInfo.load(contents, strict=False).dump())
    except READ_ERRORS as exc:
        raise VerificationFailed(ALTERED, f"the PDF signature cannot be read ({exc})") from None
    if any(contents[used:]):
        raise VerificationFailed(ALTERED, "the space reserved for the signature was changed")


def _check_pdf_signature(pdf: bytes, keys: list[PublicKey], result: Verification) -> None:
    from pyhanko.keys import load_certs_from_pemder_data
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko_certvalidator import ValidationContext

    try:
        signatures = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures
    except READ_ERRORS as exc:
        raise VerificationFailed(ALTERED, f"the PDF cannot be read ({exc})") from None
    if not signatures:
        raise VerificationFailed(ALTERED, "the PDF carries no signature")
    if len(signatures) > 1:
        raise VerificationFailed(
            ALTERED,
            f"the PDF carries {len(signatures)} signatures; an exocheck certificate has one",
        )
    _check_signature_padding(signatures[0])
    roots = [
        c
        for k in keys
        if k.use == "pdf" and k.certificate_pem
        for c in load_certs_from_pemder_data(k.certificate_pem.encode("ascii"))
    ]
    context = ValidationContext(trust_roots=roots, allow_fetching=False)
    try:
        status = validate_pdf_signature(signatures[0], context)
    except (SignatureValidationError, *READ_ERRORS) as exc:
        raise VerificationFailed(
            ALTERED, f"the PDF signature cannot be validated ({exc})"
        ) from None
    if not status.intact or not status.valid:
        raise VerificationFailed(ALTERED, "the PDF's bytes no longer match its signature")
    if status.coverage.name != "ENTIRE_FILE":
        raise VerificationFailed(ALTERED, "content was added to the PDF after it was signed")
    cert = status.signing_cert
    kid = hashlib.sha256(cert.public_key.dump()).hexdigest()[:16]
    key = _find_key(keys, "pdf", kid, "the PDF")
    if result.data["keys"].get("pdf") != kid:
        raise VerificationFailed(
            UNKNOWN_KEY,
            f"the PDF is signed with key {kid}, not with the "
            f"key {result.data['keys'].get('pdf')} its coa.json names",
        )
    result.pdf_key = key
    result.pdf_signer = cert.subject.human_friendly
    result.pdf_signed_at = (
        status.signer_reported_dt.isoformat(timespec="seconds")
        if status.signer_reported_dt
        else "an unstated time"
    )
    result.checks.append("PDF signature (PAdES, whole file)")


def _squash(text: str) -> str:
    """Text without white space, in NFKC form (a ligature glyph compares as its letters)."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def _image_matches(image, modules: list[list[bool]]) -> bool:
    """Whether an image XObject is the QR code ``modules`` (sampled at module centres)."""
    size = len(modules)
    width = int(image.get("/Width", 0))
    if width != int(image.get("/Height", -1)) or width % size:
        return False
    try:
        width, _, channels, pixels = pdfread.image_samples(image)
    except READ_ERRORS:
        return False
    scale = width // size
    for row in range(size):
        y = row * scale + scale // 2
        for col in range(size):
            x = col * scale + scale // 2
            if (pixels[(y * width + x) * channels] < 128) != modules[row][col]:
                return False
    return True


def _check_page(reader, result: Verification) -> None:
    data = result.data
    try:
        pages = pdfread.pages(reader)
        text = _squash(" ".join(pdfread.page_text(reader, page) for page in pages))
        if not pages:
            raise ValueError("no pages")
    except READ_ERRORS as exc:
        raise VerificationFailed(DISAGREE, f"the text of the page cannot be read ({exc})") from None
    expected = [
        ("certificate id", data["certificate_id"]),
        ("verification URL", data["verify_url"]),
        ("lot", data["lot"]["number"]),
        ("product", data["product"]["name"]),
        ("decision", f"Decision: {data['decision'].upper()}"),
    ]
    for c in data["criteria"]:
        expected.append((f"criterion {c['name']}", f"{c['name']}{c['printed_value']}"))
    for what, value in expected:
        if _squash(value) not in text:
            raise VerificationFailed(
                DISAGREE, f"the page does not show the {what} that coa.json states ({value})"
            )
    modules = qr_modules(data["verify_url"])
    if not any(
        _image_matches(image, modules) for image in pdfread.images(pages[0].get("/Resources"))
    ):
        raise VerificationFailed(
            DISAGREE, f"the QR code on the page does not encode {data['verify_url']}"
        )
    result.checks.append(
        f"page shows coa.json's values and a QR code of its URL "
        f"({len(modules) - 2 * QR_BORDER} modules)"
    )


def verify_pdf(pdf: bytes, keys: list[PublicKey]) -> Verification:
    """Verify a certificate PDF against the published ``keys`` (see the module)."""
    try:
        reader = pdfread.open_pdf(pdf)
        attached = pdfread.embedded_files(reader)
    except READ_ERRORS as exc:
        raise VerificationFailed(ALTERED, f"the PDF cannot be read ({exc})") from None
    if COA_NAME not in attached or SIGNATURE_NAME not in attached:
        raise VerificationFailed(
            NOT_SIGNED, f"no {COA_NAME} with its signature is attached to this PDF"
        )
    # every version of coa.json must carry a valid signature (one embedded again after
    # signing is an edit of the data, whatever else it did to the file)
    result = None
    for coa_json in attached[COA_NAME]:
        failures: list[VerificationFailed] = []
        for signature in attached[SIGNATURE_NAME]:
            try:
                result = verify_data(coa_json, signature, keys)
                break
            except VerificationFailed as exc:
                failures.append(exc)
        else:
            raise failures[-1]
    _check_pdf_signature(pdf, keys, result)
    _check_page(reader, result)
    return result


def verify_path(path: str | Path, keys: list[PublicKey]) -> Verification:
    """Verify ``FILE.pdf``, or ``coa.json`` with ``coa.json.sig`` beside it."""
    path = Path(path)
    content = path.read_bytes()
    if content.startswith(b"%PDF"):
        return verify_pdf(content, keys)
    signature = path.with_name(path.name + ".sig")
    if not signature.is_file():
        raise VerificationFailed(
            NOT_SIGNED,
            f"{path} is not a PDF, and {signature.name} (its signature) is not beside it",
        )
    return verify_data(content, signature.read_bytes(), keys)
