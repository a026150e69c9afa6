"""The keyring: files and permissions, key ids, refusal to overwrite, rotation keeping public
keys, export for recipients, and importing an organisation's PEM or PKCS#12."""

from __future__ import annotations

import hashlib
import json
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import pkcs12

from exocheck.certify import Keyring, KeyringError, load_public_keys
from exocheck.certify.keys import self_signed_certificate


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_private_keys_for_the_owner_only(tmp_path):
    ring = Keyring(tmp_path / "keys")
    ids = ring.init("Example Biologics", public_url="https://verify.example.org")
    assert mode(ring.folder) == 0o700
    private = sorted(ring.folder.glob("*.key.pem"))
    assert len(private) == 2 and all(mode(p) == 0o600 for p in private)
    kid, key = ring.private_key("data")
    assert isinstance(key, ed25519.Ed25519PrivateKey) and kid == ids["data"]
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert kid == hashlib.sha256(spki).hexdigest()[:16]
    kid, key = ring.private_key("pdf")
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert "BEGIN CERTIFICATE" in ring.certificate_chain_pem(kid)
    assert ring.public_url == "https://verify.example.org"
    with pytest.raises(KeyringError, match="already holds a keyring"):
        ring.init("Example Biologics")


def test_rotation_retires_private_keys_and_keeps_public_ones(tmp_path):
    ring = Keyring(tmp_path / "keys")
    old = ring.init("Example Biologics")
    new = ring.rotate()
    assert set(new.values()).isdisjoint(old.values())
    assert sorted(p.name for p in ring.folder.glob("*.key.pem")) == sorted(
        f"{use}-{kid}.key.pem" for use, kid in new.items()
    )
    keys = {k.key_id: k for k in ring.public_keys()}
    assert set(keys) == set(old.values()) | set(new.values())
    assert all(keys[kid].retired for kid in old.values())
    assert not any(keys[kid].retired for kid in new.values())


def test_export_public_holds_no_secret_and_loads_back(tmp_path):
    ring = Keyring(tmp_path / "keys")
    ring.init("Example Biologics")
    ring.rotate(("data",))
    path = ring.export_public(tmp_path / "public.json")
    text = path.read_text()
    assert "PRIVATE" not in text
    assert json.loads(text)["organisation"] == "Example Biologics"
    loaded = load_public_keys(path)
    assert sorted(k.key_id for k in loaded) == sorted(k.key_id for k in ring.public_keys())
    # a PEM file of the certificate and the data public key works as well
    pem = tmp_path / "keys.pem"
    pem.write_text(
        ring.certificate_chain_pem(ring.private_key("pdf")[0])
        + (ring.folder / f"data-{ring.private_key('data')[0]}.pub.pem").read_text()
    )
    assert {k.use for k in load_public_keys(pem)} == {"data", "pdf"}


def _organisation_key():
    key = ec.generate_private_key(ec.SECP256R1())
    return key, self_signed_certificate(key, "Example Biologics CA-issued")


def test_import_pem_and_pkcs12(tmp_path):
    ring = Keyring(tmp_path / "keys")
    first = ring.init("Example Biologics")
    key, cert = _organisation_key()
    pem = tmp_path / "org.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    kid = ring.import_pdf_key(pem)
    assert ring.private_key("pdf")[0] == kid != first["pdf"]
    key2, cert2 = _organisation_key()
    p12 = tmp_path / "org.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"org", key2, cert2, None, serialization.BestAvailableEncryption(b"s3cret")
        )
    )
    with pytest.raises(KeyringError, match="wrong password"):
        ring.import_pdf_key(p12, "nope")
    kid2 = ring.import_pdf_key(p12, "s3cret")
    assert ring.private_key("pdf")[0] == kid2
    assert all(mode(p) == 0o600 for p in ring.folder.glob("*.key.pem"))


def test_import_refuses_a_certificate_of_another_key(tmp_path):
    ring = Keyring(tmp_path / "keys")
    ring.init("Example Biologics")
    key, _ = _organisation_key()
    _, other_cert = _organisation_key()
    pem = tmp_path / "mismatch.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + other_cert.public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(KeyringError, match="belongs to the private key"):
        ring.import_pdf_key(pem)
