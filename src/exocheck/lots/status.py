"""A lot's status, decided in one place.

::

    awaiting data ──(data complete)──► in review ──(QA approves)──► released ──► recalled
          │                               │
          └──────(reviewer/QA rejects)────┴──(QA signs a decision that does not conform)──► rejected

* **awaiting data**: no specification yet, or criteria still lack data (they are listed);
* **in review**: every criterion has data; reviewers and QA may sign;
* **released**: QA signed a decision that conforms;
* **rejected**: QA signed a decision that does not conform (or is inconclusive), or a reviewer
  or QA rejected the lot;
* **recalled**: a released lot that QA recalled with an electronic signature.

:func:`lot_status` is the only function that maps a lot's facts to its status; every list, page,
API answer, certificate and refusal reads it (through :func:`lot_state`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from exocheck.store import models as m
from exocheck.store.base import aware

STATUSES = ("awaiting data", "in review", "released", "rejected", "recalled")
#: statuses after which a lot's data can no longer change
FINAL = frozenset({"released", "rejected", "recalled"})


def lot_status(
    *,
    decision: str | None,
    signed_decision: str | None,
    rejected_by_signature: bool,
    recalled: bool,
) -> str:
    """The status of a lot from its facts.

    Parameters
    ----------
    decision
        The current evaluation against the specification (``None`` without a specification).
    signed_decision
        The decision QA signed, when one was signed.
    rejected_by_signature
        Whether a reviewer or QA signed ``rejected``.
    recalled
        Whether QA recalled the lot.
    """
    if recalled:
        return "recalled"
    if signed_decision is not None:
        return "released" if signed_decision == "conforms" else "rejected"
    if rejected_by_signature:
        return "rejected"
    if decision is None or decision == "incomplete":
        return "awaiting data"
    return "in review"


@dataclass(frozen=True)
class LotState:
    """What a lot is now: its status and the facts it rests on."""

    lot: str
    status: str
    decision: str | None
    missing: list[str] = field(default_factory=list)
    recall: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL


def _recall_row(session: Session, lot_id: int) -> m.Recall | None:
    return session.scalar(
        select(m.Recall).where(m.Recall.lot_id == lot_id).order_by(m.Recall.id).limit(1)
    )


def state_of(
    session: Session,
    lot: m.Lot,
    decision: str | None,
    *,
    missing: list[str] | None = None,
    signatures: list[m.Signature] | None = None,
    recall: m.Recall | bool | None = False,
) -> LotState:
    """The :class:`LotState` of a lot row, given its current ``decision`` (rows already loaded
    may be passed in; ``recall=False`` means "look it up")."""
    if signatures is None:
        signatures = list(session.scalars(select(m.Signature).where(m.Signature.lot_id == lot.id)))
    if recall is False:
        recall = _recall_row(session, lot.id)
    status = lot_status(
        decision=decision,
        signed_decision=lot.release.decision if lot.release is not None else None,
        rejected_by_signature=any(s.meaning == "rejected" for s in signatures),
        recalled=recall is not None,
    )
    recall_info = None
    if recall is not None:
        recall_info = {
            "by": recall.printed_name,
            "user": recall.username,
            "reason": recall.reason,
            "at": aware(recall.recalled_at).isoformat() if recall.recalled_at else None,
        }
    return LotState(
        lot=lot.number,
        status=status,
        decision=lot.release.decision if lot.release is not None else decision,
        missing=list(missing or []),
        recall=recall_info,
    )


def overview(store, product: str | None = None) -> list[dict[str, Any]]:
    """Every lot (of ``product``) with its status, decision and missing criteria, oldest
    first: what every list of lots shows (:meth:`exocheck.lots.signatures.Signing.overview`)."""
    from exocheck.lots.signatures import Signing

    return Signing(store).overview(product)


def lot_state(store, number: str) -> dict[str, Any]:
    """One lot's status, decision, missing criteria, recall and signatures."""
    from exocheck.lots.signatures import Signing

    return Signing(store).lot_state(number)
