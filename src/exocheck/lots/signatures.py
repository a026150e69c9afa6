"""Electronic signatures of lots (21 CFR 11.50, 11.70, 11.200).

A lot moves through the states of :mod:`exocheck.lots.status`; signatures move it on:

- ``reviewed``: a reviewer vouches for the data as they stand (the hash of what was reviewed is
  kept, so a review of data that later changed no longer counts);
- ``approved``: QA signs the release of the reviewed data, and only of data that conform (a
  decision that does not conform is refused in one line: sign ``rejected``);
- ``rejected``: a reviewer or QA ends the lot as rejected;
- ``deviation accepted``: a reviewer or QA accepts one named warning of the evidence
  (:mod:`exocheck.qc.evidence`) as a deviation, so that the criteria it undermined are judged;
  the certificate lists it;
- a recall (:func:`recall_lot`): QA recalls a released lot.

Every signature asks for the signer's password again, records the printed name, the server's
UTC time, the meaning and a reason, and the SHA-256 of the canonical JSON of what was signed.
Four eyes: whoever entered any of the lot's data cannot review, approve or accept a deviation on
it, and the reviewer cannot approve. A refused signature is itself an audit event. The command
line and the web service both sign through :meth:`Signing.sign`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session, selectinload

from exocheck.auth.accounts import Accounts, UserView
from exocheck.auth.roles import can, require
from exocheck.canonical import canonical_sha256
from exocheck.errors import NotAllowed, ParameterError, StoreError
from exocheck.lots.actions import check_reason, open_lot, withdraw_measurement
from exocheck.lots.status import LotState, lot_status, state_of
from exocheck.qc.evidence import CODES
from exocheck.qc.release import ReleaseResult
from exocheck.store import models as m
from exocheck.store.base import aware, check_actor
from exocheck.store.models import MEANINGS, Signature

MAX_REASON_CHARS = 2000
#: which roles may sign with which meaning
SIGNERS = {
    "reviewed": ("reviewer",),
    "approved": ("qa",),
    "rejected": ("reviewer", "qa"),
    "deviation accepted": ("reviewer", "qa"),
}
#: what each meaning does, in the words the signing dialog and ``exocheck sign`` show
DOES = {
    "reviewed": "vouch for the lot's data as they stand",
    "approved": "release the lot",
    "rejected": "reject the lot",
    "deviation accepted": "accept a warning of the evidence as a deviation",
}


def legacy_sha256(value: Any) -> str:
    """The content hash signatures carried before exocheck hashed everything with RFC 8785
    (sorted keys, no spaces, UTF-8, Python's number text): a review signed then still counts
    while the content it bound to is unchanged."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _signature_dict(s: Signature) -> dict[str, Any]:
    out = {
        "id": s.id,
        "user": s.username,
        "printed_name": s.printed_name,
        "role": s.role,
        "meaning": s.meaning,
        "reason": s.reason,
        "signed_at": aware(s.signed_at).isoformat(),
        "content_sha256": s.content_sha256,
    }
    if s.meaning == "deviation accepted":
        out["deviation"] = (s.content or {}).get("deviation")
    return out


def _entered(lot: m.Lot) -> set[str]:
    return {lot.created_by, *(x.created_by for x in lot.measurements)}


def _sign_release(store, session: Session, lot: m.Lot, by: str, comment: str | None):
    """Write the lot's release record (its signed decision) in the caller's transaction."""
    number = lot.number
    if by in _entered(lot):
        raise NotAllowed(
            f"four-eyes rule: {by} entered data of lot {number} and cannot approve it; "
            "another person must sign"
        )
    result = store.evaluate_row(lot)
    expiry = aware(lot.expiry)
    if result.decision == "conforms" and expiry is not None and expiry <= datetime.now(UTC):
        raise StoreError(
            f"lot {number} expired on {expiry:%Y-%m-%d}: an expired lot cannot be released"
        )
    if result.decision == "incomplete":
        raise StoreError(
            f"lot {number} is awaiting data (missing: {', '.join(result.missing)}); add the "
            "missing results before signing"
        )
    session.add(
        m.Release(
            lot_id=lot.id,
            specification_id=lot.specification_id,
            decision=result.decision,
            approved_by=by,
            comment=comment,
            result=result.model_dump(mode="json"),
        )
    )
    store.audit(
        session,
        by,
        "lot.sign",
        "lot",
        number,
        lot_id=lot.id,
        after={
            "decision": result.decision,
            "status": lot_status(
                decision=result.decision,
                signed_decision=result.decision,
                rejected_by_signature=False,
                recalled=False,
            ),
            "specification": result.specification,
            "comment": comment,
        },
    )
    return result


def approve_by_name(store, number: str, *, by: str, comment: str | None = None) -> ReleaseResult:
    """Sign the lot's decision by name, in a store without users (``release --approve --by``).

    ``conforms`` releases the lot; ``does-not-conform`` and ``inconclusive`` reject it; a lot
    awaiting data cannot be signed. Four eyes: ``by`` must not have entered any of its data. A
    store that has users is signed only by electronic signatures (:meth:`Signing.sign`).
    """
    by = check_actor(by, "approver")
    with store.transaction() as session:
        if store.has_users(session):
            raise NotAllowed(
                "this store has users, who sign with their password: use 'exocheck sign "
                f"{number} --meaning approved --reason TEXT --user NAME' (or the web service)"
            )
        lot = open_lot(store, session, number)
        return _sign_release(store, session, lot, by, comment)


class Signing:
    """Signatures and workflow status of the lots of a store."""

    def __init__(self, store, accounts: Accounts | None = None) -> None:
        self.store = store
        self.accounts = accounts or Accounts(store)
        self._decisions: dict[tuple, tuple[str | None, list[str]]] = {}
        self._lock = threading.Lock()

    # ---- what is signed ---------------------------------------------------------------------
    def _content(
        self, lot: m.Lot, hasher: Callable[[Any], str] = canonical_sha256
    ) -> dict[str, Any]:
        spec = lot.specification
        result = None
        if spec is not None:
            result = self.store.evaluate_row(lot).summary()
        withdrawn = self.store.withdrawn_of(lot)
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
                    "data_sha256": hasher(x.data),
                    "attachment_sha256": x.attachment_sha256,
                }
                | ({"withdrawn": True} if x.id in withdrawn else {})
                for x in lot.measurements
            ],
            "evaluation": result,
        }

    def content(self, lot: str) -> dict[str, Any]:
        """What a signature of ``lot`` now would bind to (its hash is ``content_sha256``)."""
        with self.store.read() as session:
            content = self._content(self.store.lot_row(session, lot))
        return content | {"content_sha256": canonical_sha256(content)}

    # ---- status -------------------------------------------------------------------------------
    def _decision(self, lot: m.Lot, entries: tuple | None = None) -> tuple[str | None, list[str]]:
        """The current evaluation's decision and missing criteria (kept while the lot's
        measurements, withdrawals and signatures stay the same)."""
        if lot.specification is None:
            return None, []
        if lot.release is not None:
            result = ReleaseResult.model_validate(lot.release.result)
            return result.decision, result.missing
        if entries is None:
            entries = _entries(object_session(lot), lot.id)
        key = (lot.id, lot.specification_id, *entries)
        with self._lock:
            if key in self._decisions:
                return self._decisions[key]
        result = self.store.evaluate_row(lot)
        value = (result.decision, result.missing)
        with self._lock:
            if len(self._decisions) > 10_000:
                self._decisions.clear()
            self._decisions[key] = value
        return value

    def _state(
        self,
        session: Session,
        lot: m.Lot,
        signatures: list[Signature] | None = None,
        recall: m.Recall | bool | None = False,
        entries: tuple | None = None,
    ) -> LotState:
        decision, missing = self._decision(lot, entries)
        return state_of(
            session, lot, decision, missing=missing, signatures=signatures, recall=recall
        )

    def _signatures(self, session: Session, lot_id: int) -> list[Signature]:
        return list(
            session.scalars(
                select(Signature).where(Signature.lot_id == lot_id).order_by(Signature.id)
            )
        )

    def overview(self, product: str | None = None) -> list[dict[str, Any]]:
        """``[{"lot", "product", "status", "decision", "missing", "specification",
        "reviewed_by", "signed_by", "recall"}]`` for every lot, oldest first."""
        with self.store.read() as session:
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
                query = query.where(m.Lot.product_id == self.store.product_row(session, product).id)
            lots = list(session.scalars(query))
            entries = _all_entries(session)
            by_lot: dict[int, list[Signature]] = {}
            for s in session.scalars(select(Signature).order_by(Signature.id)):
                by_lot.setdefault(s.lot_id, []).append(s)
            recalls = {r.lot_id: r for r in session.scalars(select(m.Recall).order_by(m.Recall.id))}
            out = []
            for lot in lots:
                signatures = by_lot.get(lot.id, [])
                state = self._state(
                    session,
                    lot,
                    signatures,
                    recalls.get(lot.id),
                    entries.get(lot.id, (0, 0, 0, len(signatures))),
                )
                spec = lot.specification
                out.append(
                    {
                        "lot": lot.number,
                        "product": lot.product.name,
                        "status": state.status,
                        "decision": state.decision,
                        "missing": state.missing,
                        "specification": f"{spec.name}@{spec.version}" if spec else None,
                        "reviewed_by": [s.username for s in signatures if s.meaning == "reviewed"],
                        "signed_by": lot.release.approved_by if lot.release else None,
                        "recall": state.recall,
                    }
                )
            return out

    def lot_state(self, lot: str) -> dict[str, Any]:
        """Status, decision, missing criteria, recall and signatures of one lot."""
        with self.store.read() as session:
            row = self.store.lot_row(session, lot)
            signatures = self._signatures(session, row.id)
            state = self._state(session, row, signatures)
            return {
                "status": state.status,
                "decision": state.decision,
                "missing": state.missing,
                "recall": state.recall,
                "signatures": [_signature_dict(s) for s in signatures],
            }

    def preview(self, lot: str, meaning: str) -> str:
        """What a signature of ``lot`` with ``meaning`` would sign, in one line (the signing
        dialog and ``exocheck sign`` show it before the password is asked)."""
        state = self.lot_state(lot)
        decision = state["decision"] or "not evaluable (no specification)"
        return (
            f"lot {lot} is {state['status']}, decision {decision}; "
            f"signing '{meaning}' will {DOES.get(meaning, meaning)}"
        )

    # ---- signing ------------------------------------------------------------------------------
    def sign(
        self,
        lot: str,
        *,
        user: str,
        password: str,
        meaning: str,
        reason: str,
        deviation: str | None = None,
        pause_before_commit: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Sign ``lot`` as ``user`` (password checked again) with ``meaning`` and ``reason``
        (``deviation``: the caveat code a ``deviation accepted`` signature accepts).

        Raises :class:`~exocheck.errors.AuthError` (wrong password; counts towards the lockout),
        :class:`~exocheck.errors.NotAllowed` (role, four eyes, the lot's state, a decision that
        does not conform) or :class:`~exocheck.errors.StoreError` (unknown lot, awaiting data,
        expired). Every refusal is recorded in the audit trail. ``pause_before_commit`` runs
        inside the transaction, after everything is written and before it commits (crash tests).
        """
        if meaning not in MEANINGS:
            raise ParameterError(f"meaning must be one of {', '.join(MEANINGS)}, not {meaning!r}")
        reason = check_reason(reason, "a signature")
        if meaning == "deviation accepted":
            deviation = (deviation or "").strip()
            if deviation not in CODES:
                raise ParameterError(
                    f"name the warning to accept: --deviation one of {', '.join(CODES)}"
                )
        elif deviation:
            raise ParameterError("--deviation goes with the meaning 'deviation accepted'")
        with self.store.read() as session:
            lot_id = self.store.lot_row(session, lot).id  # unknown lot: StoreError
        from exocheck.certify import require_intact_lot

        require_intact_lot(self.store, lot)  # records changed past exocheck: refused, one line
        signer = self.accounts.verify(user, password, purpose="signature", lot_id=lot_id)
        try:
            return self._sign(lot, signer, meaning, reason, deviation, pause_before_commit)
        except (NotAllowed, StoreError) as exc:
            self._refused(lot_id, signer, meaning, str(exc))
            raise

    def _refused(self, lot_id: int, signer: UserView, meaning: str, why: str) -> None:
        with self.store.transaction() as session:
            lot = session.get(m.Lot, lot_id)
            self.store.audit(
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
        deviation: str | None,
        pause: Callable[[], None] | None,
    ) -> dict[str, Any]:
        if signer.role not in SIGNERS[meaning]:
            raise NotAllowed(
                f"a user with role {signer.role} cannot sign '{meaning}' "
                f"(it takes: {' or '.join(SIGNERS[meaning])})"
            )
        with self.store.transaction() as session:
            lot = self.store.lot_row(session, number)
            signatures = self._signatures(session, lot.id)
            state = self._state(session, lot, signatures)
            if state.final:
                raise NotAllowed(
                    f"lot {number} is already {state.status}; it cannot be signed again"
                )
            if meaning != "rejected" and signer.name in _entered(lot):
                raise NotAllowed(
                    f"four-eyes rule: {signer.name} entered data of lot {number} "
                    f"and cannot sign it as {meaning}; another person must"
                )
            content = self._content(lot)
            digest = canonical_sha256(content)
            current = {digest, legacy_sha256(self._content(lot, legacy_sha256))}
            current_reviews = [
                s for s in signatures if s.meaning == "reviewed" and s.content_sha256 in current
            ]
            if meaning in ("reviewed", "approved", "deviation accepted") and (
                state.status == "awaiting data"
            ):
                what = (
                    f"missing: {', '.join(state.missing)}"
                    if state.missing
                    else "no specification to evaluate it against"
                )
                raise StoreError(
                    f"lot {number} is awaiting data ({what}); it can be signed "
                    f"'{meaning}' once its data are complete"
                )
            if meaning == "reviewed" and any(s.username == signer.name for s in current_reviews):
                raise NotAllowed(f"{signer.name} has already reviewed lot {number} as it stands")
            if meaning == "deviation accepted":
                content = content | self._deviation(lot, number, deviation)
            if meaning == "approved":
                if state.decision != "conforms":
                    raise NotAllowed(
                        f"lot {number} does not conform (decision: {state.decision}); "
                        "'approved' releases a lot and is refused: sign 'rejected' instead"
                        + (
                            ", or accept the evidence's warnings as deviations first"
                            if state.decision == "inconclusive"
                            else ""
                        )
                    )
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
                _sign_release(self.store, session, lot, signer.name, reason)
            signature = Signature(
                lot_id=lot.id,
                user_id=signer.id,
                username=signer.name,
                printed_name=signer.printed_name,
                role=signer.role,
                meaning=meaning,
                reason=reason,
                content_sha256=canonical_sha256(content),
                content=content,
            )
            session.add(signature)
            session.flush()
            record = _signature_dict(signature)
            self.store.audit(
                session,
                signer.name,
                f"signature.{meaning.replace(' ', '-')}",
                "lot",
                number,
                lot_id=lot.id,
                after=record,
            )
            if pause is not None:
                pause()
        return record

    def _deviation(self, lot: m.Lot, number: str, code: str | None) -> dict[str, Any]:
        """What a ``deviation accepted`` signature adds to the signed content: the caveat and
        the particle measurement it is accepted on. Only an open caveat can be accepted."""
        result = self.store.evaluate_row(lot)
        caveat = next((c for c in result.caveats if c.code == code), None)
        if caveat is None:
            open_ = ", ".join(c.code for c in result.open_caveats) or "none"
            raise NotAllowed(
                f"lot {number}'s evidence has no warning '{code}' to accept (open: {open_})"
            )
        if caveat.accepted is not None:
            raise NotAllowed(f"'{code}' is already accepted as a deviation on lot {number}")
        withdrawn = self.store.withdrawn_of(lot)
        nta = [x for x in lot.measurements if x.kind == "nta" and x.id not in withdrawn]
        data = self.store.lot_data_of(lot)
        index = next((i for i, x in enumerate(data.nta_all) if x is data.nta), None)
        measurement_id = nta[index].id if index is not None else None
        return {
            "deviation": code,
            "deviation_detail": caveat.detail,
            "measurement_id": measurement_id,
        }


def _entries(session: Session, lot_id: int) -> tuple:
    """What the lot's evaluation depends on besides its row: its measurements (count, newest),
    withdrawals and signatures (deviations change the evaluation)."""
    count, newest = session.execute(
        select(func.count(m.Measurement.id), func.max(m.Measurement.id)).where(
            m.Measurement.lot_id == lot_id
        )
    ).one()
    withdrawals = session.scalar(
        select(func.count(m.Withdrawal.id)).where(m.Withdrawal.lot_id == lot_id)
    )
    signatures = session.scalar(
        select(func.count(m.Signature.id)).where(m.Signature.lot_id == lot_id)
    )
    return (count, newest or 0, withdrawals, signatures)


def _all_entries(session: Session) -> dict[int, tuple]:
    measurements = {
        lot_id: (count, newest)
        for lot_id, count, newest in session.execute(
            select(
                m.Measurement.lot_id, func.count(m.Measurement.id), func.max(m.Measurement.id)
            ).group_by(m.Measurement.lot_id)
        )
    }
    withdrawals = dict(
        session.execute(
            select(m.Withdrawal.lot_id, func.count(m.Withdrawal.id)).group_by(m.Withdrawal.lot_id)
        ).all()
    )
    signatures = dict(
        session.execute(
            select(m.Signature.lot_id, func.count(m.Signature.id)).group_by(m.Signature.lot_id)
        ).all()
    )
    out = {}
    for lot_id in set(measurements) | set(withdrawals) | set(signatures):
        count, newest = measurements.get(lot_id, (0, 0))
        out[lot_id] = (count, newest or 0, withdrawals.get(lot_id, 0), signatures.get(lot_id, 0))
    return out


# ---- withdrawal and recall, e-signed ------------------------------------------------------------
def withdraw(
    store,
    lot: str,
    measurement_id: int,
    *,
    user: str,
    password: str,
    reason: str,
    accounts: Accounts | None = None,
) -> dict[str, Any]:
    """Withdraw a measurement with an electronic signature (password again): an analyst,
    reviewer or QA; the row stays and the decision is computed again."""
    reason = check_reason(reason, "a withdrawal")
    with store.read() as session:
        lot_id = store.lot_row(session, lot).id
    signer = (accounts or Accounts(store)).verify(
        user, password, purpose="signature", lot_id=lot_id
    )
    try:
        require(signer.role, "measurement.withdraw")
    except NotAllowed as exc:
        _refuse(store, lot_id, signer.name, "withdrawn", str(exc))
        raise
    try:
        return withdraw_measurement(
            store,
            lot,
            measurement_id,
            by=signer.name,
            reason=reason,
            printed_name=signer.printed_name,
            role=signer.role,
            user_id=signer.id,
        )
    except (NotAllowed, StoreError) as exc:
        _refuse(store, lot_id, signer.name, "withdrawn", str(exc))
        raise


def _refuse(store, lot_id: int, actor: str, meaning: str, why: str) -> None:
    with store.transaction() as session:
        lot = session.get(m.Lot, lot_id)
        store.audit(
            session,
            actor,
            "signature.refused",
            "lot",
            lot.number,
            lot_id=lot_id,
            after={"meaning": meaning, "refused": why},
        )


def _recall_dict(r: m.Recall) -> dict[str, Any]:
    return {
        "by": r.printed_name,
        "user": r.username,
        "role": r.role,
        "reason": r.reason,
        "at": aware(r.recalled_at).isoformat(),
    }


def recall_lot(store, lot: str, *, user: str, password: str, reason: str) -> dict[str, Any]:
    """Recall ``lot``: an electronic signature by a QA user (password checked again) with a
    reason. The lot's status is then ``recalled`` everywhere, and every certificate of the lot
    shows "recalled" on the verification page."""
    reason = check_reason(reason, "a recall")
    with store.read() as session:
        lot_id = store.lot_row(session, lot).id
    signer = Accounts(store).verify(user, password, purpose="signature", lot_id=lot_id)
    with store.transaction() as session:
        row = store.lot_row(session, lot)
        status = state_of(session, row, None).status
        why = None
        if not can(signer.role, "lot.recall"):
            why = f"a user with role {signer.role} cannot recall a lot (it takes: qa)"
        elif status == "recalled":
            why = f"lot {lot} is already recalled"
        elif status != "released":
            why = f"lot {lot} was never released; there is nothing to recall"
    if why is not None:
        _refuse(store, lot_id, signer.name, "recalled", why)
        raise NotAllowed(why)
    content = {"lot": lot, "meaning": "recalled", "reason": reason}
    with store.transaction() as session:
        row = store.lot_row(session, lot)
        if session.scalar(select(m.Recall).where(m.Recall.lot_id == row.id)) is not None:
            raise StoreError(f"lot {lot} is already recalled")
        recall = m.Recall(
            lot_id=row.id,
            user_id=signer.id,
            username=signer.name,
            printed_name=signer.printed_name,
            role=signer.role,
            reason=reason,
            content_sha256=canonical_sha256(content),
        )
        session.add(recall)
        session.flush()
        record = _recall_dict(recall)
        store.audit(
            session,
            signer.name,
            "lot.recall",
            "lot",
            lot,
            lot_id=row.id,
            after=record | {"content_sha256": recall.content_sha256},
        )
    return record
