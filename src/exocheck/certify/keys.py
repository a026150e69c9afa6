"""The organisation's signing keys: a keyring folder.

``keyring.json`` lists every key with its id, use and dates; beside it, one PEM file per public
key or certificate and one per private key (mode 0600, in a 0700 folder). Two uses:

- ``pdf``: the key and X.509 certificate that sign the PDF (PAdES). ``exocheck keys init``
  makes a P-256 key with a self-signed certificate; ``exocheck keys import`` takes the
  organisation's own (PEM or PKCS#12, e.g. issued by its CA).
- ``data``: an Ed25519 key that signs the certificate's ``coa.json``.

A key id is the first 16 hex digits of the SHA-256 of the public key (DER SubjectPublicKeyInfo).
Rotation retires the active key of a use: its private key file is deleted, its public key stays,
so that certificates signed with it still verify. ``export-public`` writes every public key and
certificate (active and retired) in one JSON file for recipients.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import platformdirs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from exocheck.errors import ParameterError
from exocheck.records import atomic_write_text

ENV_VAR = "EXOCHECK_KEYS_DIR"
KEYRING_FORMAT = "exocheck.keyring/1"
PUBLIC_FORMAT = "exocheck.public-keys/1"
USES = ("data", "pdf")


class KeyringError(ParameterError):
    """A keyring is missing, damaged or lacks the key asked for."""


def default_keys_dir() -> Path:
    """``$EXOCHECK_KEYS_DIR``, else ``keys`` in the per-user data directory."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("exocheck", appauthor=False)) / "keys"


def _spki_der(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(public_key: Any) -> str:
    """The id of a public key: 16 hex digits of the SHA-256 of its SubjectPublicKeyInfo."""
    return hashlib.sha256(_spki_der(public_key)).hexdigest()[:16]


def public_pem(public_key: Any) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _private_pem(private_key: Any) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _algorithm(public_key: Any) -> str:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ECDSA P-256", "secp384r1": "ECDSA P-384"}.get(
            public_key.curve.name, f"ECDSA {public_key.curve.name}"
        )
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}"
    return type(public_key).__name__


def _write_secret(path: Path, content: bytes) -> None:
    """Write a private key readable by its owner only (created 0600, never wider)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def self_signed_certificate(
    private_key: ec.EllipticCurvePrivateKey, organisation: str, *, years: int = 10
) -> x509.Certificate:
    """A self-signed X.509 certificate for PDF signatures of ``organisation``."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} certificates of analysis"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )
    now = datetime.now(UTC)
    public = private_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(private_key, hashes.SHA256())
    )


@dataclass(frozen=True)
class PublicKey:
    """A published key: what a verifier needs."""

    key_id: str
    use: str
    algorithm: str
    public_key: Any
    certificate_pem: str | None = None
    created: str | None = None
    retired: str | None = None

    @property
    def public_key_pem(self) -> str:
        return public_pem(self.public_key)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "use": self.use,
            "algorithm": self.algorithm,
            "public_key_pem": self.public_key_pem,
            "certificate_pem": self.certificate_pem,
            "created": self.created,
            "retired": self.retired,
        }


class Keyring:
    """The keyring folder of an organisation (see the module's description)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder).expanduser() if folder else default_keys_dir()

    # ---- the index ----------------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.folder / "keyring.json"

    def exists(self) -> bool:
        return self.index_path.is_file()

    def _index(self) -> dict[str, Any]:
        if not self.exists():
            raise KeyringError(
                f"no signing keys in {self.folder} (create them with 'exocheck keys init')"
            )
        try:
            index = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KeyringError(f"{self.index_path}: not a readable keyring ({exc})") from None
        if index.get("format") != KEYRING_FORMAT:
            raise KeyringError(f"{self.index_path}: not an exocheck keyring")
        return index

    def _save(self, index: dict[str, Any]) -> None:
        atomic_write_text(self.index_path, json.dumps(index, indent=2) + "\n")

    @property
    def organisation(self) -> str:
        return self._index()["organisation"]

    @property
    def public_url(self) -> str | None:
        """Base URL of the public verification page (the QR code points under it)."""
        return self._index().get("public_url")

    def _prepare_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)

    # ---- creating keys ------------------------------------------------------------------------
    def _add(
        self,
        index: dict[str, Any],
        use: str,
        private_key: Any,
        certificate_chain: list[x509.Certificate] | None = None,
    ) -> str:
        public = private_key.public_key()
        kid = key_id(public)
        if any(k["id"] == kid for k in index["keys"]):
            raise KeyringError(f"key {kid} is already in the keyring")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        private_file = f"{use}-{kid}.key.pem"
        _write_secret(self.folder / private_file, _private_pem(private_key))
        entry = {
            "id": kid,
            "use": use,
            "algorithm": _algorithm(public),
            "created": now,
            "retired": None,
            "private": private_file,
            "public": f"{use}-{kid}.pub.pem",
        }
        atomic_write_text(self.folder / entry["public"], public_pem(public))
        if certificate_chain:
            entry["certificate"] = f"{use}-{kid}.crt.pem"
            atomic_write_text(
                self.folder / entry["certificate"],
                "".join(
                    c.public_bytes(serialization.Encoding.PEM).decode("ascii")
                    for c in certificate_chain
                ),
            )
        old = index["active"].get(use)
        for k in index["keys"]:
            if k["id"] == old:  # rotation: the old private key goes, its public key stays
                k["retired"] = now
                if k.get("private"):
                    (self.folder / k["private"]).unlink(missing_ok=True)
                    k["private"] = None
        index["keys"].append(entry)
        index["active"][use] = kid
        return kid

    def init(self, organisation: str, *, public_url: str | None = None) -> dict[str, str]:
        """Create the keyring: an Ed25519 data key and a P-256 key with a self-signed
        certificate. Refuses to overwrite an existing keyring (use :meth:`rotate`).
        ``public_url`` is the base URL of the public verification page."""
        if public_url is not None and not public_url.startswith(("https://", "http://")):
            raise ParameterError(f"the public URL must start with https:// ({public_url!r})")
        organisation = " ".join((organisation or "").split())
        if not organisation:
            raise ParameterError("name the organisation that issues the certificates (--org)")
        if self.exists():
            raise KeyringError(
                f"{self.folder} already holds a keyring; rotate its keys with "
                "'exocheck keys rotate'"
            )
        self._prepare_folder()
        index: dict[str, Any] = {
            "format": KEYRING_FORMAT,
            "organisation": organisation,
            "public_url": public_url,
            "active": {},
            "keys": [],
        }
        data = self._add(index, "data", ed25519.Ed25519PrivateKey.generate())
        pdf_key = ec.generate_private_key(ec.SECP256R1())
        pdf = self._add(index, "pdf", pdf_key, [self_signed_certificate(pdf_key, organisation)])
        self._save(index)
        return {"data": data, "pdf": pdf}

    def rotate(self, uses: tuple[str, ...] = USES) -> dict[str, str]:
        """New active keys for ``uses``; the old ones are retired (public part kept)."""
        index = self._index()
        out = {}
        for use in uses:
            if use == "data":
                out[use] = self._add(index, use, ed25519.Ed25519PrivateKey.generate())
            else:
                pdf_key = ec.generate_private_key(ec.SECP256R1())
                out[use] = self._add(
                    index, use, pdf_key, [self_signed_certificate(pdf_key, index["organisation"])]
                )
        self._save(index)
        return out

    def import_pdf_key(self, path: str | Path, password: str | None = None) -> str:
        """Make the organisation's own key and certificate (PEM with key and certificates, or
        PKCS#12) the active PDF signing key; the previous one is retired."""
        path = Path(path)
        content = path.read_bytes()
        secret = password.encode("utf-8") if password else None
        if path.suffix.lower() in (".p12", ".pfx"):
            try:
                key, cert, extra = pkcs12.load_key_and_certificates(content, secret)
            except ValueError:
                raise KeyringError(f"{path}: not a PKCS#12 file, or a wrong password") from None
            certs = [c for c in (cert, *extra) if c is not None]
        else:
            try:
                key = serialization.load_pem_private_key(content, secret)
            except TypeError:
                raise KeyringError(
                    f"{path}: the private key is encrypted; give its password (--password-stdin)"
                ) from None
            except ValueError:
                raise KeyringError(
                    f"{path}: no readable private key (or a wrong password)"
                ) from None
            try:
                certs = x509.load_pem_x509_certificates(content)
            except ValueError:
                raise KeyringError(f"{path}: no X.509 certificate beside the key") from None
        if key is None or not certs:
            raise KeyringError(f"{path}: needs both a private key and its certificate")
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise KeyringError(
                f"{path}: PDF signatures need an ECDSA or RSA key, not "
                f"{_algorithm(key.public_key())}"
            )
        mine = _spki_der(key.public_key())
        leaf = [c for c in certs if _spki_der(c.public_key()) == mine]
        if not leaf:
            raise KeyringError(f"{path}: no certificate in it belongs to the private key")
        chain = leaf[:1] + [c for c in certs if c is not leaf[0]]
        index = self._index()
        kid = self._add(index, "pdf", key, chain)
        self._save(index)
        return kid

    # ---- using keys ---------------------------------------------------------------------------
    def _entry(self, use: str) -> dict[str, Any]:
        index = self._index()
        kid = index["active"].get(use)
        entry = next((k for k in index["keys"] if k["id"] == kid), None)
        if entry is None or not entry.get("private"):
            raise KeyringError(f"the keyring in {self.folder} has no active {use} key")
        return entry

    def private_key(self, use: str) -> tuple[str, Any]:
        """``(key id, private key)`` of the active key for ``use``."""
        entry = self._entry(use)
        path = self.folder / entry["private"]
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), None)
        except (OSError, ValueError) as exc:
            raise KeyringError(f"{path}: cannot read the private key ({exc})") from None
        return entry["id"], key

    def certificate_chain_pem(self, kid: str) -> str:
        entry = next((k for k in self._index()["keys"] if k["id"] == kid), None)
        if entry is None or not entry.get("certificate"):
            raise KeyringError(f"no certificate for key {kid}")
        return (self.folder / entry["certificate"]).read_text(encoding="ascii")

    def public_keys(self) -> list[PublicKey]:
        """Every key of the keyring, active and retired, public parts only."""
        out = []
        for k in self._index()["keys"]:
            pem = (self.folder / k["public"]).read_bytes()
            cert = None
            if k.get("certificate"):
                cert = (self.folder / k["certificate"]).read_text(encoding="ascii")
            out.append(
                PublicKey(
                    k["id"],
                    k["use"],
                    k["algorithm"],
                    serialization.load_pem_public_key(pem),
                    cert,
                    k["created"],
                    k["retired"],
                )
            )
        return out

    def export_public(self, path: str | Path) -> Path:
        """Write what verifiers need (every public key and certificate) to ``path``."""
        path = Path(path)
        document = {
            "format": PUBLIC_FORMAT,
            "organisation": self.organisation,
            "exported": datetime.now(UTC).isoformat(timespec="seconds"),
            "keys": [k.as_json() for k in self.public_keys()],
        }
        atomic_write_text(path, json.dumps(document, indent=2) + "\n")
        return path


def load_public_keys(path: str | Path) -> list[PublicKey]:
    """Published keys from ``exocheck keys export-public``'s JSON, or from a PEM file of public
    keys and/or X.509 certificates (Ed25519 keys are taken for data, the others for PDFs)."""
    path = Path(path)
    content = path.read_bytes()
    if content.lstrip().startswith(b"{"):
        try:
            document = json.loads(content)
            assert document.get("format") == PUBLIC_FORMAT
            return [
                PublicKey(
                    k["id"],
                    k["use"],
                    k["algorithm"],
                    serialization.load_pem_public_key(k["public_key_pem"].encode()),
                    k.get("certificate_pem"),
                    k.get("created"),
                    k.get("retired"),
                )
                for k in document["keys"]
            ]
        except (ValueError, KeyError, TypeError, AssertionError):
            raise KeyringError(
                f"{path}: not a public key file from 'exocheck keys export-public'"
            ) from None
    keys: list[PublicKey] = []
    for block in content.split(b"-----END ")[:-1]:
        start = block.find(b"-----BEGIN ")
        if start < 0:
            continue
        kind = block[start + 11 :].split(b"-----", 1)[0]
        pem = block[start:] + b"-----END " + kind + b"-----\n"
        try:
            if kind == b"CERTIFICATE":
                cert = x509.load_pem_x509_certificate(pem)
                public = cert.public_key()
                cert_pem = pem.decode("ascii")
            elif kind == b"PUBLIC KEY":
                public, cert_pem = serialization.load_pem_public_key(pem), None
            else:
                continue
        except ValueError:
            raise KeyringError(f"{path}: a damaged {kind.decode()} block") from None
        use = "data" if isinstance(public, ed25519.Ed25519PublicKey) else "pdf"
        keys.append(PublicKey(key_id(public), use, _algorithm(public), public, cert_pem))
    if not keys:
        raise KeyringError(f"{path}: no public key or certificate in it")
    return keys
