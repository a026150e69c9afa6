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

The keyring also holds the organisation's letterhead, set once with the keys: its name, an
optional postal address and an optional logo (PNG or SVG, at most :data:`MAX_LOGO_BYTES`, copied
into the folder with its SHA-256 in ``keyring.json``). Every certificate shows it in its header.
Keyrings made before the letterhead existed have none: they keep working, with the name only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
import xml.etree.ElementTree as ET
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
from exocheck.records import atomic_write_bytes, atomic_write_text

ENV_VAR = "EXOCHECK_KEYS_DIR"
KEYRING_FORMAT = "exocheck.keyring/1"
PUBLIC_FORMAT = "exocheck.public-keys/1"
USES = ("data", "pdf")
#: the largest logo file accepted (bytes): a letterhead mark, not a photograph
MAX_LOGO_BYTES = 256 * 1024
#: the largest PNG logo accepted, in pixels on either side
MAX_LOGO_PX = 2000
#: the longest postal address accepted: characters, lines
MAX_ADDRESS_CHARS = 300
MAX_ADDRESS_LINES = 5
_LOGO_TYPES = {".png": "image/png", ".svg": "image/svg+xml"}
#: SVG elements that run code or pull in other documents; a logo needs none of them
_SVG_FORBIDDEN = {"script", "foreignobject", "iframe", "object", "embed", "audio", "video"}
_EXTERNAL_CSS = re.compile(r"@import|url\(\s*['\"]?(?!#)", re.IGNORECASE)


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


def clean_address(address: str | None) -> str | None:
    """The postal address as the certificate prints it: lines (``\\n`` or ``;`` between
    them) with their blanks collapsed; ``None`` for none. Raises :class:`ParameterError` for
    control characters, more than :data:`MAX_ADDRESS_LINES` lines or
    :data:`MAX_ADDRESS_CHARS` characters."""
    if address is None:
        return None
    lines = [" ".join(line.split()) for line in re.split(r"[\n;]", address)]
    lines = [line for line in lines if line]
    if not lines:
        return None
    text = "\n".join(lines)
    if any((ord(c) < 32 and c != "\n") or ord(c) == 127 for c in text):
        raise ParameterError("the address holds control characters")
    if len(lines) > MAX_ADDRESS_LINES or len(text) > MAX_ADDRESS_CHARS:
        raise ParameterError(
            f"the address is longer than {MAX_ADDRESS_LINES} lines or "
            f"{MAX_ADDRESS_CHARS} characters"
        )
    return text


def _png_size_px(content: bytes) -> tuple[int, int]:
    if content[:8] != b"\x89PNG\r\n\x1a\n" or content[12:16] != b"IHDR" or len(content) < 24:
        raise ParameterError("not a PNG image")
    return struct.unpack(">II", content[16:24])


def _check_svg(content: bytes) -> None:
    """Refuse an SVG that is not a plain drawing: no DTD or entities, no scripts, event
    handlers or embedded documents, no reference to anything outside the file."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise ParameterError("an SVG logo must be UTF-8 text") from None
    if re.search(r"<!(DOCTYPE|ENTITY)", text, re.IGNORECASE):
        raise ParameterError("an SVG logo may not declare a DOCTYPE or entities")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ParameterError(f"not a readable SVG ({exc})") from None
    if root.tag.rsplit("}", 1)[-1] != "svg":
        raise ParameterError("not an SVG image (its root element is not <svg>)")
    if root.get("viewBox") is None and (root.get("width") is None or root.get("height") is None):
        raise ParameterError("an SVG logo needs a viewBox (or width and height) to be sized")
    for element in root.iter():
        tag = str(element.tag).rsplit("}", 1)[-1].lower()
        if tag in _SVG_FORBIDDEN:
            raise ParameterError(f"an SVG logo may not contain <{tag}>")
        if tag == "style" and _EXTERNAL_CSS.search(element.text or ""):
            raise ParameterError("an SVG logo may not load other files (url() or @import)")
        for name, value in element.attrib.items():
            local = name.rsplit("}", 1)[-1].lower()
            if local.startswith("on"):
                raise ParameterError(f"an SVG logo may not carry event handlers ({local})")
            if local == "href" and not value.strip().startswith(("#", "data:image/")):
                raise ParameterError("an SVG logo may not link to other files")
            if local == "style" and _EXTERNAL_CSS.search(value):
                raise ParameterError("an SVG logo may not load other files (url() or @import)")


def check_logo(path: str | Path) -> tuple[bytes, str]:
    """The content and media type of a logo file, validated: ``.png`` or ``.svg``, at most
    :data:`MAX_LOGO_BYTES`; a PNG of at most :data:`MAX_LOGO_PX` pixels a side; an SVG that is
    a plain drawing (see :func:`_check_svg`). Raises :class:`ParameterError` naming the file."""
    path = Path(path)
    media_type = _LOGO_TYPES.get(path.suffix.lower())
    if media_type is None:
        raise ParameterError(f"{path}: a logo is a .png or .svg file")
    try:
        size = path.stat().st_size
        if size > MAX_LOGO_BYTES:
            raise ParameterError(
                f"{path}: the logo is {size} bytes, more than {MAX_LOGO_BYTES // 1024} KiB"
            )
        content = path.read_bytes()
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read the logo ({exc.strerror})") from None
    if not content:
        raise ParameterError(f"{path}: the logo file is empty")
    try:
        if media_type == "image/png":
            width, height = _png_size_px(content)
            if not (0 < width <= MAX_LOGO_PX and 0 < height <= MAX_LOGO_PX):
                raise ParameterError(
                    f"the logo is {width}×{height} px; at most {MAX_LOGO_PX} px a side"
                )
        else:
            _check_svg(content)
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None
    return content, media_type


@dataclass(frozen=True)
class Letterhead:
    """Who issues the certificates, as their header shows it."""

    organisation: str
    address: str | None = None
    logo: bytes | None = None
    logo_media_type: str | None = None

    @property
    def address_lines(self) -> list[str]:
        return self.address.split("\n") if self.address else []

    @property
    def logo_data_uri(self) -> str | None:
        """The logo as a ``data:`` URI for the certificate's HTML (``None`` without one)."""
        if self.logo is None:
            return None
        return f"data:{self.logo_media_type};base64," + base64.b64encode(self.logo).decode()


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

    def letterhead(self) -> Letterhead:
        """The organisation's name, address and logo (a keyring without them: the name only).
        Raises :class:`KeyringError` when the logo file is missing or no longer the one set."""
        index = self._index()
        logo = index.get("logo")
        content = media_type = None
        if logo:
            path = self.folder / logo["file"]
            try:
                content = path.read_bytes()
            except OSError:
                raise KeyringError(f"{path}: the letterhead's logo is missing") from None
            if hashlib.sha256(content).hexdigest() != logo["sha256"]:
                raise KeyringError(
                    f"{path}: the logo changed since it was set (set it again with "
                    "'exocheck keys letterhead --logo')"
                )
            media_type = logo["media_type"]
        return Letterhead(index["organisation"], index.get("address"), content, media_type)

    def set_letterhead(
        self,
        *,
        address: str | None = None,
        logo: str | Path | None = None,
        remove_logo: bool = False,
    ) -> Letterhead:
        """Set the address (``""``: none) and/or the logo (copied into the keyring) of an
        existing keyring; what is not given stays. Nothing changes when either is refused."""
        index = self._index()
        cleaned = clean_address(address) if address is not None else index.get("address")
        checked = check_logo(logo) if logo is not None else None
        if checked is not None:
            old = index.get("logo")
            self._store_logo(index, checked)
            if old and old["file"] != index["logo"]["file"]:
                (self.folder / old["file"]).unlink(missing_ok=True)
        elif remove_logo and index.get("logo"):
            (self.folder / index["logo"]["file"]).unlink(missing_ok=True)
            index["logo"] = None
        index["address"] = cleaned
        self._save(index)
        return self.letterhead()

    def _store_logo(self, index: dict[str, Any], checked: tuple[bytes, str]) -> None:
        """Copy a checked logo into the folder and record it (file, type, SHA-256)."""
        content, media_type = checked
        name = "logo" + {v: k for k, v in _LOGO_TYPES.items()}[media_type]
        atomic_write_bytes(self.folder / name, content)
        index["logo"] = {
            "file": name,
            "media_type": media_type,
            "sha256": hashlib.sha256(content).hexdigest(),
        }

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

    def init(
        self,
        organisation: str,
        *,
        public_url: str | None = None,
        address: str | None = None,
        logo: str | Path | None = None,
    ) -> dict[str, str]:
        """Create the keyring: an Ed25519 data key and a P-256 key with a self-signed
        certificate. Refuses to overwrite an existing keyring (use :meth:`rotate`).
        ``public_url`` is the base URL of the public verification page; ``address`` and
        ``logo`` (a PNG or SVG file, see :func:`check_logo`) complete the letterhead of the
        certificates. Every argument is checked before anything is written."""
        if public_url is not None and not public_url.startswith(("https://", "http://")):
            raise ParameterError(f"the public URL must start with https:// ({public_url!r})")
        organisation = " ".join((organisation or "").split())
        if not organisation:
            raise ParameterError("name the organisation that issues the certificates (--org)")
        address = clean_address(address)
        checked_logo = check_logo(logo) if logo is not None else None
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
            "address": address,
            "logo": None,
            "active": {},
            "keys": [],
        }
        if checked_logo is not None:
            self._store_logo(index, checked_logo)
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
