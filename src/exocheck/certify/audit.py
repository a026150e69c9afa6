"""``exocheck audit verify``: check the audit trail's hash chain, the chain heads that issued
certificates carry, and the rows the chain recorded.

The chain (:mod:`exocheck.store.chain`) finds an event edited, deleted, inserted or moved in the
database directly. Someone who also recomputed every later hash is found by the certificates:
each carries, under the organisation's signature, the chain head at its issue, which must still
be the chain's hash at that event. The rows a decision rests on (measurements, raw files,
specifications, releases, signatures, recalls, certificates…) are recorded in the chain when
written; :mod:`exocheck.certify.integrity` recomputes them and names each one that no longer
matches. :func:`check_lot_records` does both for one lot, for the commands that certify or
release it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from exocheck.certify.integrity import (
    RecordsAltered,
    RowReport,
    read_events,
    scan_lot_rows,
    scan_rows,
)
from exocheck.certify.models import Certificate, CertificateKey
from exocheck.certify.status import _genuine
from exocheck.store import chain


@dataclass(frozen=True)
class AuditCheck:
    """The outcome of :func:`verify_audit_trail`."""

    events: int
    head_id: int | None
    head_sha256: str
    anchors: int
    broken_id: int | None = None
    why: str = ""
    rows: RowReport = field(default_factory=RowReport)

    @property
    def chain_intact(self) -> bool:
        """The chain and the certificates' anchors agree (the rows aside)."""
        return self.broken_id is None and not self.why

    @property
    def intact(self) -> bool:
        """The chain, the anchors and every recorded row agree."""
        return self.chain_intact and not self.rows.findings

    def line(self) -> str:
        """The verdict on the chain, in one line."""
        if self.chain_intact:
            return (
                f"audit trail intact: {self.events} events, chain head #{self.head_id} "
                f"{self.head_sha256[:16]}…; {self.anchors} certificate anchor(s) agree"
            )
        where = f"at event #{self.broken_id}" if self.broken_id is not None else ""
        return f"audit trail broken {where}: {self.why}".replace("  ", " ")

    def failures(self) -> list[str]:
        """One line per failure: the chain's, then each row that fails (empty when intact)."""
        return ([] if self.chain_intact else [self.line()]) + list(self.rows.findings)

    def lines(self) -> list[str]:
        """What ``exocheck audit verify`` prints: the failures, or the verdict with the number
        of rows checked; then the rows not sealed (written before row hashing), by table."""
        if not self.intact:
            return self.failures() + list(self.rows.unsealed)
        sealed = self.rows.rows - self.rows.unsealed_rows
        verdict = f"{self.line()}; {sealed} of {self.rows.rows} record(s) match their hash"
        return [verdict, *self.rows.unsealed]


def _chain(session: Session, events: list[Any]) -> AuditCheck:
    """The chain over ``events``, then the certificates' signed heads."""
    count, broken, head, why = chain.first_break(events)
    stored = {row.id: row.chain_sha256 for row in events}
    head_id = events[-1].id if events else None
    if broken is not None:
        return AuditCheck(count, head_id, head, 0, broken, why)
    anchors = 0
    for cert in session.scalars(select(Certificate).order_by(Certificate.id)):
        if not _genuine(cert, session.get(CertificateKey, cert.data_key_id)):
            return AuditCheck(
                count,
                head_id,
                head,
                anchors,
                None,
                f"certificate {cert.certificate_id}'s signed record was altered",
            )
        try:
            anchor = json.loads(cert.coa_json)["audit_chain_head"]
        except (ValueError, KeyError, TypeError):  # signed, so issued so: never in practice
            return AuditCheck(
                count,
                head_id,
                head,
                anchors,
                None,
                f"certificate {cert.certificate_id} carries no chain head",
            )
        anchors += 1
        if anchor["event_id"] and stored.get(anchor["event_id"]) != anchor["sha256"]:
            return AuditCheck(
                count,
                head_id,
                head,
                anchors,
                anchor["event_id"],
                f"the chain up to this event is not the one certificate "
                f"{cert.certificate_id} was issued on (the history before it was "
                "rewritten, or the event deleted)",
            )
    return AuditCheck(count, head_id, head, anchors)


def verify_audit_trail(store) -> AuditCheck:
    """Walk the chain over every audit event, check the certificates' signed heads, then
    recompute every recorded row (:func:`~exocheck.certify.integrity.scan_rows`)."""
    with store.read() as session:
        events = read_events(session)
        check = _chain(session, events)
        rows = scan_rows(session, events, broken_id=check.broken_id)
    return AuditCheck(
        check.events,
        check.head_id,
        check.head_sha256,
        check.anchors,
        check.broken_id,
        check.why,
        rows,
    )


def check_lot_records(store, lot: str) -> list[str]:
    """What is wrong with the records ``lot``'s decision rests on, one line each; empty when
    they are intact.

    The audit chain must be whole (and agree with the certificates' signed heads), and every
    row of the lot (:func:`~exocheck.certify.integrity.scan_lot_rows`: the lot, its product,
    specification, measurements and raw files, release, signatures, recalls and certificates)
    must match the hash the chain recorded when it was written and be consistent. Rows written
    before row hashing are only checked for consistency. Raises :class:`StoreError` for an
    unknown lot.
    """
    with store.read() as session:
        lot_id = store.lot_row(session, lot).id
        events = read_events(session)
        check = _chain(session, events)
        rows = scan_lot_rows(session, events, lot_id, broken_id=check.broken_id)
    problems = [] if check.chain_intact else [check.line()]
    return problems + list(rows.findings)


def require_intact_lot(store, lot: str) -> None:
    """Refuse (:class:`~exocheck.certify.integrity.RecordsAltered`, one line) a lot whose
    records fail :func:`check_lot_records`: its certificate and release are not to be trusted."""
    problems = check_lot_records(store, lot)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RecordsAltered(
            f"lot {lot}: its records fail verification: "
            f"{problems[0]}{more}; 'exocheck audit verify' lists every finding"
        )


__all__ = [
    "AuditCheck",
    "RecordsAltered",
    "check_lot_records",
    "require_intact_lot",
    "verify_audit_trail",
]
