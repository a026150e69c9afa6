"""Offline verification of signed certificates: a genuine one passes; each way of tampering
fails with its own message (the issue's acceptance list), and the QR code on the rendered page
decodes to the verification URL."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess

import pytest
from signing_factories import PUBLIC_URL

from exocheck.certify import (
    Keyring,
    VerificationFailed,
    issue_certificate,
    load_public_keys,
    verify_pdf,
)
from exocheck.certify.certificate import (
    COA_NAME,
    SIGNATURE_NAME,
    canonical,
    qr_png,
    sign_data,
    sign_pdf,
    verify_url,
)
from exocheck.certify.verify import verify_path
from exocheck.report.coa import render_html, render_pdf


def unsigned(pdf: bytes) -> bytes:
    """The rendered PDF before signing (the signature is an incremental update after it)."""
    end = pdf.index(b"%%EOF") + len(b"%%EOF")
    return pdf[:end] + b"\n"


def failure(pdf: bytes, keys) -> str:
    with pytest.raises(VerificationFailed) as caught:
        verify_pdf(pdf, keys)
    return str(caught.value)


def test_genuine_certificate_verifies(issued):
    folder, _, keyring, certificate = issued
    exported = load_public_keys(keyring.export_public(folder / "public.json"))
    result = verify_pdf(certificate.pdf, exported)
    data = result.data
    assert data["certificate_id"] == certificate.certificate_id
    assert data["verify_url"] == f"{PUBLIC_URL}/verify/{certificate.certificate_id}"
    assert data["lot"]["number"] == "L-OK" and data["decision"] == "conforms"
    assert [s["meaning"] for s in data["signatures"]] == ["approved"]
    assert data["signatures"][0]["name"] == "bob"
    assert data["signatures"][0]["reason"] == "meets the release specification"
    assert len(data["raw_files"]) >= 1 and all(len(f["sha256"]) == 64 for f in data["raw_files"])
    assert data["audit_chain_head"]["event_id"] > 0
    assert {c["result"] for c in data["criteria"]} == {"pass"}
    assert result.pdf_key.key_id == data["keys"]["pdf"]
    assert len(result.checks) == 3
    text = "\n".join(result.lines())
    assert "signed 'approved' by bob" in text and result.data_key.key_id in text


def test_embedded_json_is_rfc8785_with_a_detached_signature(issued):
    import io

    from pypdf import PdfReader

    *_, certificate = issued
    attached = PdfReader(io.BytesIO(certificate.pdf)).attachments
    coa_json = attached[COA_NAME][0]
    assert coa_json == canonical(json.loads(coa_json)) == certificate.coa_json
    signature = json.loads(attached[SIGNATURE_NAME][0])
    assert (
        signature["algorithm"] == "Ed25519" and len(base64.b64decode(signature["signature"])) == 64
    )


def test_one_flipped_byte_is_an_altered_document(issued):
    _, _, keyring, certificate = issued
    pdf = bytearray(certificate.pdf)
    at = pdf.index(b"/Producer")  # in the rendered document, covered by the signature
    pdf[at + 3] ^= 0x01
    assert failure(bytes(pdf), keyring.public_keys()).startswith("document altered after signing")


def test_a_flip_in_the_signature_padding_is_an_altered_document(issued):
    """The zeros reserved after the signature lie outside the signed byte range; changing one
    still changes the file."""
    _, _, keyring, certificate = issued
    pdf = bytearray(certificate.pdf)
    end = pdf.index(b">", pdf.rindex(b"/Contents <"))
    assert pdf[end - 1 : end] == b"0"
    pdf[end - 1] = ord("1")
    assert failure(bytes(pdf), keyring.public_keys()).startswith("document altered after signing")


def test_content_appended_after_signing_is_an_altered_document(issued):
    _, _, keyring, certificate = issued
    pdf = certificate.pdf + b"\n% appended\n"
    assert failure(pdf, keyring.public_keys()).startswith("document altered after signing")


def test_edited_json_re_embedded_is_an_invalid_data_signature(issued):
    _, _, keyring, certificate = issued
    data = json.loads(certificate.coa_json)
    data["criteria"][0]["printed_value"] = "999 nm"
    attachments = {
        COA_NAME: canonical(data),
        SIGNATURE_NAME: json.dumps(certificate.signature).encode(),
    }
    forged = sign_pdf(unsigned(certificate.pdf), keyring, attachments, reason="forged")
    assert failure(forged, keyring.public_keys()).startswith("data signature invalid")


def test_re_signed_with_another_key_is_an_unknown_key(issued, tmp_path):
    _, _, keyring, certificate = issued
    other = Keyring(tmp_path / "other")
    other.init("Someone Else")
    data = json.loads(certificate.coa_json)
    data["keys"] = {"data": other.private_key("data")[0], "pdf": other.private_key("pdf")[0]}
    attachments = {
        COA_NAME: canonical(data),
        SIGNATURE_NAME: json.dumps(sign_data(other, canonical(data))).encode(),
    }
    forged = sign_pdf(unsigned(certificate.pdf), other, attachments, reason="re-signed")
    line = failure(forged, keyring.public_keys())
    assert line.startswith("unknown key") and other.private_key("data")[0] in line
    # only the PDF re-signed by another key (coa.json and its signature genuine)
    genuine = {
        COA_NAME: certificate.coa_json,
        SIGNATURE_NAME: json.dumps(certificate.signature).encode(),
    }
    forged_pdf = sign_pdf(unsigned(certificate.pdf), other, genuine, reason="re-signed")
    line = failure(forged_pdf, keyring.public_keys())
    assert line.startswith("unknown key") and "the PDF" in line


def test_swapped_qr_certificate_id_is_page_and_data_disagree(issued):
    _, store, keyring, certificate = issued
    data = json.loads(certificate.coa_json)
    wrong = verify_url(PUBLIC_URL, "COA-0000-0000-0000-0000")
    html = render_html(
        store,
        "L-OK",
        certificate=data
        | {"qr_png": "data:image/png;base64," + base64.b64encode(qr_png(wrong)).decode()},
    )
    attachments = {
        COA_NAME: certificate.coa_json,
        SIGNATURE_NAME: json.dumps(certificate.signature).encode(),
    }
    forged = sign_pdf(render_pdf(html), keyring, attachments, reason="swapped QR")
    line = failure(forged, keyring.public_keys())
    assert line.startswith("page and data disagree") and "QR code" in line


def test_signed_data_unlike_the_page_is_page_and_data_disagree(issued):
    _, _, keyring, certificate = issued
    data = json.loads(certificate.coa_json)
    data["criteria"][0]["printed_value"] = "999 nm"
    attachments = {
        COA_NAME: canonical(data),
        SIGNATURE_NAME: json.dumps(sign_data(keyring, canonical(data))).encode(),
    }
    forged = sign_pdf(unsigned(certificate.pdf), keyring, attachments, reason="inconsistent")
    line = failure(forged, keyring.public_keys())
    assert line.startswith("page and data disagree") and "999 nm" in line


def test_a_key_that_was_never_published_is_unknown(issued, tmp_path):
    """Keys exported, then rotated: a certificate signed with the new, unexported key is
    refused by the old export; the retired key still verifies what it signed."""
    _, store, keyring, old = issued
    rotated = Keyring(tmp_path / "keys")
    shutil.copytree(keyring.folder, rotated.folder)
    published = load_public_keys(rotated.export_public(tmp_path / "published.json"))
    rotated.rotate()
    new = issue_certificate(store, "L-OK", rotated, by="bob")
    assert verify_pdf(old.pdf, published).data["lot"]["number"] == "L-OK"
    line = failure(new.pdf, published)
    assert line.startswith("unknown key") and "not among the issuer's published keys" in line
    assert verify_pdf(old.pdf, rotated.public_keys())  # the retired key still verifies
    assert verify_pdf(new.pdf, rotated.public_keys())


def test_bare_coa_json_with_its_signature(issued, tmp_path):
    _, _, keyring, certificate = issued
    (tmp_path / "coa.json").write_bytes(certificate.coa_json)
    (tmp_path / "coa.json.sig").write_text(json.dumps(certificate.signature))
    assert verify_path(tmp_path / "coa.json", keyring.public_keys()).data["lot"]["number"] == "L-OK"
    (tmp_path / "coa.json").write_bytes(certificate.coa_json.replace(b'"conforms"', b'"CONFORMS"'))
    with pytest.raises(VerificationFailed, match=r"^data signature invalid"):
        verify_path(tmp_path / "coa.json", keyring.public_keys())


def test_qr_code_on_the_rendered_page_decodes_to_the_verification_url(issued):
    import zxingcpp
    from PIL import Image

    if shutil.which("pdftoppm") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("pdftoppm (poppler-utils) is missing in CI: .ci/run installs it")
        pytest.skip("rendering the page needs pdftoppm (poppler-utils)")

    folder, *_, certificate = issued
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "150",
            "-f",
            "1",
            "-l",
            "1",
            "-png",
            str(folder / "coa.pdf"),
            str(folder / "page"),
        ],
        check=True,
    )
    image = Image.open(next(folder.glob("page*.png")))
    decoded = [b.text for b in zxingcpp.read_barcodes(image)]
    assert decoded == [f"{PUBLIC_URL}/verify/{certificate.certificate_id}"]


def test_edited_json_embedded_again_after_signing_is_an_invalid_data_signature(issued):
    """coa.json edited and added to the signed PDF by an incremental update (the signature
    left in place): the edit is named, not only the added content."""
    from pyhanko.pdf_utils import embed
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    _, _, keyring, certificate = issued
    data = json.loads(certificate.coa_json)
    data["decision"] = "conforms, really"
    writer = IncrementalPdfFileWriter(io.BytesIO(certificate.pdf), strict=False)
    embedded = embed.EmbeddedFileObject.from_file_data(writer, canonical(data))
    embed.embed_file(
        writer,
        embed.FileSpec(file_spec_string=COA_NAME, file_name=COA_NAME, embedded_data=embedded),
    )
    out = io.BytesIO()
    writer.write(out)
    assert failure(out.getvalue(), keyring.public_keys()).startswith("data signature invalid")
