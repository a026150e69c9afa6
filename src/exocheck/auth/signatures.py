"""Electronic signatures of lots (21 CFR 11.50, 11.70, 11.200) and the lot workflow.

A lot goes *awaiting data* → *in review* (its data are complete against the specification) →
*released* or *rejected*. Signatures move it on:

- ``reviewed``: a reviewer vouches for the data as they stand (the hash of what was reviewed is
  kept, so a review of data that later changed no longer counts);
- ``approved``: QA signs the release decision of the reviewed data (the store's release record,
  the signature and their audit events are one transaction);
- ``rejected``: a reviewer or QA ends the lot as rejected.

Every signature asks for the signer's password again, records the printed name, the server's
UTC time, the meaning and a reason, and the SHA-256 of the canonical JSON of what was signed.
Four eyes: whoever entered any of the lot's data cannot review or approve it, and the reviewer
cannot approve. A refused signature is itself an audit event. The command line and the web
service both sign through :meth:`Signing.sign`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from exocheck.auth.accounts import Accounts, UserView
from exocheck.auth.models import MEANINGS, Signature
from exocheck.errors import NotAllowed, ParameterError, StoreError
from exocheck.store import models as m
from exocheck.store.base import aware

MAX_REASON_CHARS = 2000
#: which roles may sign with which meaning
SIGNERS = {"reviewed": ("reviewer",), "approved": ("qa",), "rejected": ("reviewer", "qa")}
STATUSES = ("awaiting data", "in review", "released", "rejected")


def canonical_sha256(value: Any) -> str:
    """SHA-256 of the canonical JSON of ``value`` (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _signature_dict(s: Signature) -> dict[str, Any]:
    return {
        "id": s.id,
        "user": s.username,
        "printed_name": s.printed_name,
        "role": s.role,
        "meaning": s.meaning,
        "reason": s.reason,
        "signed_at": aware(s.signed_at).isoformat(),
        "content_sha256": s.content_sha256,
    }


class Signing:
    """Signatures and workflow status of the lots of a store."""

    def __init__(self, store, accounts: Accounts | None = None) -> None:
        self.store = store
        self.accounts = accounts or Accounts(store)
        self._decisions: dict[tuple, str | None] = {}
        self._lock = threading.Lock()

    # ---- what is signed ---------------------------------------------------------------------
    def _content(self, lot: m.Lot) -> dict[str, Any]:
        spec = lot.specification
        result = None
        if spec is not None:
            result = self.store._evaluate_row(lot).summary()
        return {
            "lot": lot.number,
            "product": lot.product.name,
            "specification": f"{spec.name}@{spec.version}" if spec else None,
            "specification_sha256": spec.sha256 if spec else None,
            "measurements": [
                {
                    "id": x.id,
                    "kind": x.kind,
                    "entered_by": x.created_by,
                    "data_sha256": canonical_sha256(x.data),
                    "attachment_sha256": x.attachment_sha256,
                }
                for x in lot.measurements
            ],
            "evaluation": result,
        }

    def content(self, lot: str) -> dict[str, Any]:
        """What a signature of ``lot`` now would bind to (its hash is ``content_sha256``)."""
        with self.store._read() as session:
            content = self._content(self.store._lot(session, lot))
        return content | {"content_sha256": canonical_sha256(content)}

    # ---- status -------------------------------------------------------------------------------
    def _decision(self, lot: m.Lot, entries: tuple[int, int] | None = None) -> str | None:
        """The signed decision, else the current evaluation (kept while the lot's measurements
        stay the same; ``entries`` = their count and newest id, when already known)."""
        if lot.release is not None:
            return lot.release.decision
        if lot.specification is None:
            return None
        if entries is None:
            ids = [x.id for x in lot.measurements]
            entries = (len(ids), max(ids, default=0))
        key = (lot.id, lot.specification_id, *entries)
        with self._lock:
            if key in self._decisions:
                return self._decisions[key]
        decision = self.store._evaluate_row(lot).decision
        with self._lock:
            if len(self._decisions) > 10_000:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    @staticmethod
    def _status(lot: m.Lot, decision: str | None, signatures: list[Signature]) -> str:
        if lot.release is not None:
            return "released" if lot.release.decision == "conforms" else "rejected"
        if any(s.meaning == "rejected" for s in signatures):
            return "rejected"
        if decision is None or decision == "incomplete":
            return "awaiting data"
        return "in review"

    def _signatures(self, session: Session, lot_id: int) -> list[Signature]:
        return list(
            session.scalars(
                select(Signature).where(Signature.lot_id == lot_id).order_by(Signature.id)
            )
        )

    def overview(self, product: str | None = None) -> list[dict[str, Any]]:
        """``[{"lot", "product", "status", "decision", "specification", "reviewed_by",
        "signed_by"}]`` for every lot, oldest first."""
        with self.store._read() as session:
            query = (
                select(m.Lot)
                .order_by(m.Lot.id)
                .options(
                    selectinload(m.Lot.product),
                    selectinload(m.Lot.specification),
                    selectinload(m.Lot.release),
                )
            )
            if product is not None:
                query = query.where(m.Lot.product_id == self.store._product(session, product).id)
            lots = list(session.scalars(query))
            entries = {
                lot_id: (count, newest)
                for lot_id, count, newest in session.execute(
                    select(
                        m.Measurement.lot_id,
                        func.count(m.Measurement.id),
                        func.max(m.Measurement.id),
                    ).group_by(m.Measurement.lot_id)
                )
            }
            by_lot: dict[int, list[Signature]] = {}
            for s in session.scalars(select(Signature).order_by(Signature.id)):
                by_lot.setdefault(s.lot_id, []).append(s)
            out = []
            for lot in lots:
                signatures = by_lot.get(lot.id, [])
                decision = self._decision(lot, entries.get(lot.id, (0, 0)))
                spec = lot.specification
                out.append(
                    {
                        "lot": lot.number,
                        "product": lot.product.name,
                        "status": self._status(lot, decision, signatures),
                        "decision": decision,
                        "specification": f"{spec.name}@{spec.version}" if spec else None,
                        "reviewed_by": [s.username for s in signatures if s.meaning == "reviewed"],
                        "signed_by": lot.release.approved_by if lot.release else None,
                    }
                )
            return out

    def lot_state(self, lot: str) -> dict[str, Any]:
        """Status, decision and signatures of one lot."""
        with self.store._read() as session:
            row = self.store._lot(session, lot)
            signatures = self._signatures(session, row.id)
            decision = self._decision(row)
            return {
                "status": self._status(row, decision, signatures),
                "decision": decision,
                "signatures": [_signature_dict(s) for s in signatures],
            }

    # ---- signing ------------------------------------------------------------------------------
    def sign(
        self,
        lot: str,
        *,
        user: str,
        password: str,
        meaning: str,
        reason: str,
        pause_before_commit: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Sign ``lot`` as ``user`` (password checked again) with ``meaning`` and ``reason``.

        Raises :class:`~exocheck.errors.AuthError` (wrong password; counts towards the lockout),
        :class:`~exocheck.errors.NotAllowed` (role, four eyes, the lot's state) or
        :class:`~exocheck.errors.StoreError` (unknown lot, incomplete or expired lot). Every
        refusal is recorded in the audit trail. ``pause_before_commit`` runs inside the
        transaction, after everything is written and before it commits (crash tests).
        """
        if meaning not in MEANINGS:
            raise ParameterError(f"meaning must be one of {', '.join(MEANINGS)}, not {meaning!r}")
        reason = " ".join((reason or "").split())
        if not reason:
            raise ParameterError("a signature needs a reason")
        if len(reason) > MAX_REASON_CHARS:
            raise ParameterError(f"the reason is longer than {MAX_REASON_CHARS} characters")
        with self.store._read() as session:
            lot_id = self.store._lot(session, lot).id  # unknown lot: StoreError
        signer = self.accounts.verify(user, password, purpose="signature", lot_id=lot_id)
        try:
            return self._sign(lot, signer, meaning, reason, pause_before_commit)
        except (NotAllowed, StoreError) as exc:
            self._refused(lot_id, signer, meaning, str(exc))
            raise

    def _refused(self, lot_id: int, signer: UserView, meaning: str, why: str) -> None:
        with self.store._action() as session:
            lot = session.get(m.Lot, lot_id)
            self.store._audit(
                session,
                signer.name,
                "signature.refused",
                "lot",
                lot.number,
                lot_id=lot_id,
                after={"meaning": meaning, "refused": why},
            )

    def _sign(
        self,
        number: str,
        signer: UserView,
        meaning: str,
        reason: str,
        pause: Callable[[], None] | None,
    ) -> dict[str, Any]:
        if signer.role not in SIGNERS[meaning]:
            raise NotAllowed(
                f"a user with role {signer.role} cannot sign '{meaning}' "
                f"(it takes: {' or '.join(SIGNERS[meaning])})"
            )
        with self.store._action() as session:
            lot = self.store._lot(session, number)
            signatures = self._signatures(session, lot.id)
            status = self._status(lot, self._decision(lot), signatures)
            if status in ("released", "rejected"):
                raise NotAllowed(f"lot {number} is already {status}; it cannot be signed again")
            entered = {lot.created_by, *(x.created_by for x in lot.measurements)}
            if meaning != "rejected" and signer.name in entered:
                raise NotAllowed(
                    f"four-eyes rule: {signer.name} entered data of lot {number} "
                    f"and cannot sign it as {meaning}; another person must"
                )
            content = self._content(lot)
            digest = canonical_sha256(content)
            current_reviews = [
                s for s in signatures if s.meaning == "reviewed" and s.content_sha256 == digest
            ]
            if meaning == "reviewed":
                if status == "awaiting data":
                    raise NotAllowed(
                        f"lot {number} is awaiting data (the evaluation is "
                        f"{content['evaluation']['decision'] if content['evaluation'] else 'not possible without a specification'}); "
                        "it can be reviewed once its data are complete"
                    )
                if any(s.username == signer.name for s in current_reviews):
                    raise NotAllowed(
                        f"{signer.name} has already reviewed lot {number} as it stands"
                    )
            if meaning == "approved":
                if not current_reviews:
                    raise NotAllowed(
                        f"lot {number} has no review of its current data: a "
                        "reviewer signs 'reviewed' before QA approves"
                    )
                if signer.name in {s.username for s in signatures if s.meaning == "reviewed"}:
                    raise NotAllowed(
                        f"four-eyes rule: {signer.name} reviewed lot {number} "
                        "and cannot also approve it; another person must"
                    )
                self.store._sign_release(session, lot, signer.name, reason)
            signature = Signature(
                lot_id=lot.id,
                user_id=signer.id,
                username=signer.name,
                printed_name=signer.printed_name,
                role=signer.role,
                meaning=meaning,
                reason=reason,
                content_sha256=digest,
                content=content,
            )
            session.add(signature)
            session.flush()
            record = _signature_dict(signature)
            self.store._audit(
                session,
                signer.name,
                f"signature.{meaning}",
                "lot",
                number,
                lot_id=lot.id,
                after=record,
            )
            if pause is not None:
                pause()
        return record
