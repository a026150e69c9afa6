"""``exocheck audit verify``: check the audit trail's hash chain and the chain heads that
issued certificates carry.

The chain (:mod:`exocheck.store.chain`) finds an event edited, deleted, inserted or moved in the
database directly. Someone who also recomputed every later hash is found by the certificates:
each carries, under the organisation's signature, the chain head at its issue, which must still
be the chain's hash at that event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select

from exocheck.signing.models import Certificate, CertificateKey
from exocheck.signing.status import _genuine
from exocheck.store import chain
from exocheck.store import models as m


@dataclass(frozen=True)
class AuditCheck:
    """The outcome of :func:`verify_audit_trail`."""

    events: int
    head_id: int | None
    head_sha256: str
    anchors: int
    broken_id: int | None = None
    why: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_id is None and not self.why

    def line(self) -> str:
        if self.intact:
            return (
                f"audit trail intact: {self.events} events, chain head #{self.head_id} "
                f"{self.head_sha256[:16]}…; {self.anchors} certificate anchor(s) agree"
            )
        where = f"at event #{self.broken_id}" if self.broken_id is not None else ""
        return f"audit trail broken {where}: {self.why}".replace("  ", " ")


def verify_audit_trail(store) -> AuditCheck:
    """Walk the chain over every audit event, then check the certificates' signed heads."""
    with store._read() as session:
        rows = session.execute(
            select(
                m.AuditEvent.id,
                m.AuditEvent.at,
                m.AuditEvent.actor,
                m.AuditEvent.action,
                m.AuditEvent.entity,
                m.AuditEvent.entity_key,
                m.AuditEvent.lot_id,
                m.AuditEvent.before,
                m.AuditEvent.after,
                m.AuditEvent.chain_sha256,
            ).order_by(m.AuditEvent.id)
        ).all()
        count, broken, head, why = chain.first_break(rows)
        stored = {row.id: row.chain_sha256 for row in rows}
        head_id = rows[-1].id if rows else None
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
            anchor = json.loads(cert.coa_json)["audit_chain_head"]
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
