"""Which certificate a lot gets, decided once for the command line and the web service.

- A lot without a specification gets none.
- A recalled lot gets none: its certificates show the recall on the verification page, and no
  new document may say it was released.
- A released or rejected lot gets the **signed certificate** (``coa.json`` signed with Ed25519,
  a QR code of its verification page, a PAdES signature) when signing keys exist. While the
  lot stays as it was, asking again gives the same certificate, byte for byte; a change of the
  lot (a recall aside, which refuses) issues a new one, which supersedes the earlier one.
- Otherwise (a lot still in review, or no signing keys) it gets an unsigned **draft** with a
  watermark on every page, the same bytes for the same lot state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import func, not_, or_, select

from exocheck.errors import ExocheckError, NotAllowed, ParameterError, StoreError
from exocheck.lots.status import lot_state
from exocheck.store import models as m

#: audit actions of a lot that do not change what its certificate says: issuing certificates,
#: and refusals (a refused signature, a wrong password at signing) that change nothing
_NOT_STATE_PREFIXES = ("certificate.", "login.", "user.")
_NOT_STATE_SUFFIXES = (".refused", ".failed")


@dataclass(frozen=True)
class CertificateDocument:
    """A lot's certificate as bytes, and what it is."""

    kind: Literal["signed", "draft"]
    content: bytes
    media_type: str
    certificate_id: str | None = None
    reissued: bool = False  # the lot's current signed certificate, given again

    @property
    def signed(self) -> bool:
        return self.kind == "signed"


def lot_revision(store, lot: str) -> int:
    """The lot's newest audit event that changed what its certificate says (0: none)."""
    with store.read() as session:
        row = store.lot_row(session, lot)
        query = select(func.max(m.AuditEvent.id)).where(
            m.AuditEvent.lot_id == row.id,
            not_(
                or_(
                    *(m.AuditEvent.action.startswith(p) for p in _NOT_STATE_PREFIXES),
                    *(m.AuditEvent.action.endswith(p) for p in _NOT_STATE_SUFFIXES),
                )
            ),
        )
        return session.scalar(query) or 0


def _revision_time(store, revision: int):
    with store.read() as session:
        return session.scalar(select(m.AuditEvent.at).where(m.AuditEvent.id == revision))


def _expiry(store, lot: str, study: str | None, no_study: bool):
    if study and no_study:
        raise ParameterError("--study and --no-study exclude each other")
    if no_study:
        return None, None
    if study is None:
        study = store.default_study(store.lot_info(lot)["product"])
    if study is None:
        return None, None
    try:
        return store.particles_at_expiry(lot, study=study).for_certificate(), study
    except ExocheckError as exc:
        raise type(exc)(f"{exc} (study {study}; leave it out with --no-study)") from None


def _current_certificate(store, lot: str, revision: int) -> m.Certificate | None:
    with store.read() as session:
        row = store.lot_row(session, lot)
        cert = session.scalar(
            select(m.Certificate)
            .where(m.Certificate.lot_id == row.id)
            .order_by(m.Certificate.id.desc())
            .limit(1)
        )
        if cert is not None and cert.pdf is not None and cert.lot_event_id == revision:
            return cert
    return None


def certificate(
    store,
    lot: str,
    *,
    by: str,
    suffix: str = ".pdf",
    keyring=None,
    public_url: str | None = None,
    study: str | None = None,
    no_study: bool = False,
    unsigned: bool = False,
) -> tuple[CertificateDocument, str | None]:
    """The certificate of ``lot`` (see the module docstring) and the stability study its
    particles-at-expiry section comes from (``None``: none).

    ``suffix`` ``.html`` gives the draft's HTML (never signed); ``unsigned`` writes the PDF
    without issuing a signed certificate. Raises :class:`NotAllowed` for a recalled lot and
    :class:`StoreError` for a lot without a specification.
    """
    from exocheck.certify import issue_certificate, require_intact_lot
    from exocheck.report.coa import render_html, render_pdf

    suffix = suffix.lower()
    if suffix not in (".pdf", ".html", ".htm"):
        raise ParameterError("the certificate file must end in .pdf or .html")
    require_intact_lot(store, lot)  # records changed past exocheck: refused, one line
    state = lot_state(store, lot)
    info = store.lot_info(lot)
    if info["specification"] is None:
        raise StoreError(f"lot {lot} has no specification: there is no certificate to write")
    if state["status"] == "recalled":
        recall = state["recall"] or {}
        raise NotAllowed(
            f"lot {lot} was recalled by {recall.get('by')} ({recall.get('reason')}); it gets no "
            "new certificate, and its certificates show the recall on the verification page"
        )
    revision = lot_revision(store, lot)
    expiry, used_study = _expiry(store, lot, study, no_study)
    final = state["status"] in ("released", "rejected")
    if final and suffix == ".pdf" and not unsigned and keyring is not None and keyring.exists():
        current = _current_certificate(store, lot, revision)
        if current is not None and (expiry is None) == (
            json.loads(current.coa_json).get("expiry_prediction") is None
        ):
            doc = CertificateDocument(
                "signed", current.pdf, "application/pdf", current.certificate_id, reissued=True
            )
            return doc, used_study
        issued = issue_certificate(
            store,
            lot,
            keyring,
            by=by,
            public_url=public_url,
            expiry=expiry,
            lot_event_id=revision,
        )
        return (
            CertificateDocument("signed", issued.pdf, "application/pdf", issued.certificate_id),
            used_study,
        )
    at = _revision_time(store, revision)
    head = keyring.letterhead() if keyring is not None and keyring.exists() else None
    html = render_html(store, lot, expiry=expiry, draft=True, generated_at=at, letterhead=head)
    if suffix == ".pdf":
        return CertificateDocument("draft", render_pdf(html), "application/pdf"), used_study
    return CertificateDocument("draft", html.encode("utf-8"), "text/html"), used_study


def write_certificate(path: str | Path, document: CertificateDocument) -> Path:
    """Write ``document`` to ``path``, complete or not at all."""
    from exocheck.records import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, document.content)
    return path


def status_line(document: CertificateDocument) -> str:
    """What the document is, in one line."""
    if document.signed:
        again = " (unchanged lot: the current certificate)" if document.reissued else ""
        return f"signed certificate {document.certificate_id}{again}"
    return "unsigned draft (watermarked)"
