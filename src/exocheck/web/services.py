"""What the API and the pages share: the store and its helpers, and the actions both offer
(create a lot, take an upload, sign, the certificate), each a call into the library."""

from __future__ import annotations

import base64
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import UploadFile
from sqlalchemy import select

from exocheck.auth import Accounts, SessionView
from exocheck.auth.roles import require
from exocheck.batch.manifest import VIDEO_SUFFIXES
from exocheck.certify import require_intact_lot
from exocheck.errors import (
    AccountLocked,
    AuthError,
    ExocheckError,
    NotAllowed,
    ParameterError,
    StoreError,
)
from exocheck.lots import actions
from exocheck.lots import signatures as lot_signatures
from exocheck.lots.actions import check_lot_number
from exocheck.lots.listing import LotFilter, search_lots
from exocheck.lots.signatures import Signing
from exocheck.methods.stamps import method_label
from exocheck.paging import PER_PAGE, Page
from exocheck.store import Store
from exocheck.store import models as m
from exocheck.store.audit import AuditFilter, iter_audit, search_audit
from exocheck.web import replicates, uploads
from exocheck.web.analyses import AnalysisQueue
from exocheck.web.settings import Settings


class NotFound(ExocheckError):
    """No such lot, job or study."""


class Conflict(ExocheckError):
    """The record exists already, or its state forbids the change."""


def http_status(exc: ExocheckError) -> int:
    """The HTTP status of a refused request."""
    if isinstance(exc, AccountLocked):
        return 423
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, NotAllowed):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, uploads.UploadTooLarge):
        return 413
    if isinstance(exc, uploads.UnsupportedUpload):
        return 415
    if isinstance(exc, Conflict | StoreError):
        return 409
    return 422


@dataclass
class Services:
    settings: Settings
    store: Store
    accounts: Accounts
    signing: Signing
    analyses: AnalysisQueue
    _views: dict = field(default_factory=dict)
    _building: dict = field(default_factory=dict)
    _drawn: dict = field(default_factory=dict)  # lot -> its newest figures
    _guard: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, settings: Settings) -> Services:
        store = Store.open(settings.url, create=settings.database_url is None)
        accounts = Accounts(store, lockout_after=settings.lockout_after)
        data = settings.data_path
        data.mkdir(parents=True, exist_ok=True)
        analyses = AnalysisQueue(
            store.engine.url.render_as_string(hide_password=False),
            data / "results",
            scheduler=settings.scheduler,
            workers=settings.analysis_workers,
        )
        return cls(settings, store, accounts, Signing(store, accounts), analyses)

    def close(self) -> None:
        self.analyses.close()
        self.store.close()

    # ---- look-ups -------------------------------------------------------------------------
    def state(self) -> int:
        """The newest audit event's id: every change of the store writes one, so views built
        from the store can be kept while it stays the same."""
        from sqlalchemy import func

        with self.store.read() as session:
            return session.scalar(select(func.max(m.AuditEvent.id))) or 0

    def lot_state(self, lot: str) -> int:
        """The newest audit event of ``lot``: everything the lot page shows (its records,
        measurements, signatures, refusals) changes with an event of the lot."""
        from sqlalchemy import func

        with self.store.read() as session:
            query = (
                select(func.max(m.AuditEvent.id))
                .join(m.Lot, m.Lot.id == m.AuditEvent.lot_id)
                .where(m.Lot.number == lot)
            )
            return session.scalar(query) or 0

    def _cached(self, key: tuple, build):
        """``build()``, once per key: concurrent requests for a view being built wait for it
        instead of building it again (many users open a lot page just after it changed)."""
        cache = self._views
        if key in cache:
            return cache[key]
        with self._guard:
            lock = self._building.setdefault(key, threading.Lock())
        with lock:
            if key not in cache:
                value = build()
                if len(cache) > 2000:
                    cache.clear()
                cache[key] = value
            value = cache[key]
        with self._guard:
            self._building.pop(key, None)
        return value

    def overview(self) -> list[dict[str, Any]]:
        """:meth:`Signing.overview` of every lot (kept until the store changes)."""
        return self._cached(("overview", self.state()), self.signing.overview)

    def lot_view(self, lot: str) -> dict[str, Any]:
        """What the lot page shows, for every user (kept until the store changes)."""
        self.check_lot(lot)

        def build() -> dict[str, Any]:
            info = self.lot(lot)
            data = self.store.lot_data(lot)
            nta = data.nta
            spec = info["specification"]
            return {
                "lot": info,
                "nta": data.nta_all,
                "protein": data.protein,
                "markers": data.markers,
                "safety": data.safety,
                "result": self.store.evaluate(lot) if spec else None,
                "history": self.store.history(lot),
                "content_sha256": self.signing.content(lot)["content_sha256"],
                # the figures the page shows, drawn on request (/lots/LOT/figures/NAME.svg)
                "figures": {
                    "size": bool(spec and nta is not None and nta.size.density),
                    "claim": bool(spec and nta is not None and data.particles_per_unit_claim),
                },
            }

        return self._cached(("lot", lot, self.lot_state(lot)), build)

    def check_lot(self, lot: str) -> None:
        """:class:`NotFound` unless the lot exists."""
        with self.store.read() as session:
            if session.scalar(select(m.Lot.id).where(m.Lot.number == lot)) is None:
                raise NotFound(f"unknown lot {lot!r}")

    def check_records(self, lot: str) -> None:
        """:func:`require_intact_lot` for showing a lot, its verdict kept while the store stays
        the same (it walks the whole audit chain); the certificate and signing check anew."""
        self._cached(("records", lot, self.state()), lambda: require_intact_lot(self.store, lot))

    def lot(self, lot: str) -> dict[str, Any]:
        """The lot as the API shows it: its record, status, decision and signatures (409, one
        line, when its records fail verification)."""
        self.check_lot(lot)
        self.check_records(lot)
        info = self.store.lot_info(lot)
        state = self.signing.lot_state(lot)
        return {
            "lot": info["lot"],
            "product": info["product"],
            "status": state["status"],
            "decision": state["decision"],
            "missing": state["missing"],
            "recall": state["recall"],
            "specification": info["specification"],
            "manufactured": info["manufactured"],
            "expiry": info["expiry"],
            "created_by": info["created_by"],
            "measurements": info["measurements"],
            "attachments": info["attachments"],
            "signatures": state["signatures"],
        }

    def lots_with_nta(self, product: str) -> int:
        """How many lots of ``product`` have a particle measurement (a control chart needs 2)."""
        from sqlalchemy import distinct, func

        with self.store.read() as session:
            query = (
                select(func.count(distinct(m.Measurement.lot_id)))
                .join(m.Lot, m.Lot.id == m.Measurement.lot_id)
                .join(m.Product, m.Product.id == m.Lot.product_id)
                .where(m.Product.name == product, m.Measurement.kind == "nta")
            )
            return session.scalar(query) or 0

    def figure_state(self) -> tuple:
        """What the figures depend on: any lot's measurements, the lots, the releases (control
        charts show the other lots of the product)."""
        from sqlalchemy import func

        with self.store.read() as session:
            return (
                session.scalar(select(func.max(m.Measurement.id))),
                session.scalar(select(func.count(m.Lot.id))),
                session.scalar(select(func.count(m.Release.id))),
            )

    def lot_figure(self, lot: str, name: str) -> tuple[str | None, bool]:
        """The lot's ``size``, ``claim`` or ``chart`` figure as SVG text (matplotlib, drawn on
        the server, the certificate's own figures), or None when it has none; and whether it is
        current. While the figures are being redrawn after a change, the previous drawing is
        given at once (``False``) instead of keeping every viewer waiting for the new one; the
        criteria, values and signatures on the page itself are always current."""
        key = ("figures", lot, *self.figure_state())
        if key in self._views:
            return self._views[key].get(name), True
        previous = self._drawn.get(lot)
        if previous is not None:
            with self._guard:
                busy = key in self._building
            if busy:
                return previous.get(name), False

        def build() -> dict[str, str | None]:
            from exocheck.report.coa import coa_context

            try:
                context = coa_context(self.store, lot)
            except ExocheckError:
                return {}
            chart = context["chart"]
            uris = {
                "size": context["size_figure"],
                "claim": context["claim_figure"],
                "chart": chart["figure"] if chart else None,
            }
            return {
                k: base64.b64decode(v.partition(",")[2]).decode("utf-8") if v else None
                for k, v in uris.items()
            }

        figures = self._cached(key, build)
        self._drawn[lot] = figures
        return figures.get(name), True

    # ---- actions ----------------------------------------------------------------------------
    def create_lot(
        self,
        user: SessionView,
        lot: str,
        product: str,
        *,
        specification: str | None = None,
        manufactured: str | None = None,
        expiry: str | None = None,
    ) -> dict[str, Any]:
        require(user.user.role, "lot.create")
        number = check_lot_number(lot)  # the one rule, before any look-up
        with self.store.read() as session:
            if session.scalar(select(m.Lot.id).where(m.Lot.number == number)) is not None:
                raise Conflict(f"lot {number!r} already exists")
            if session.scalar(select(m.Product.id).where(m.Product.name == product)) is None:
                raise NotFound(f"unknown product {product!r}")
        actions.create_lot(
            self.store,
            number,
            product,
            by=user.user.name,
            specification=specification or None,
            manufactured=manufactured or None,
            expiry=expiry or None,
        )
        return self.lot(number)

    async def upload(
        self,
        user: SessionView,
        lot: str,
        files: list[UploadFile],
        form: dict[str, Any],
        calibration_file: UploadFile | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """``("job", {"job": id, "videos": [names]})`` for replicate videos of one sample (one
        analysis job over all of them, :mod:`exocheck.web.replicates`), ``("measurement",
        {...})`` for a record. Every file and setting is checked before anything is kept: a
        refusal leaves nothing behind.

        ``form`` may name an approved ``method`` (with its ``instrument`` and optionally a stored
        ``calibration`` id) and an ``override`` reason; ``calibration_file`` is a bead
        calibration JSON uploaded with the videos."""
        require(user.user.role, "measurement.add")
        self.check_lot(lot)
        files = [f for f in files if getattr(f, "filename", None)]
        if calibration_file is not None and not getattr(calibration_file, "filename", None):
            calibration_file = None
        if hasattr(form.get("calibration"), "filename"):
            raise ParameterError(
                "calibration is the id of a stored calibration: send a calibration file as the "
                "field 'calibration_file'"
            )
        if not files:
            raise ParameterError("send the file as the multipart field 'file'")
        most = self.settings.max_upload_files
        if len(files) > most:
            raise uploads.UploadTooLarge(
                f"at most {most} files in one upload, not {len(files)}: upload the rest separately"
            )
        actions.ensure_open(self.store, lot)  # refused before the upload is read
        method = uploads.text_field(form, "method", 210)
        others = [f.filename for f in files if not uploads.is_video(f.filename)]
        if others and len(files) > 1:
            raise uploads.UnsupportedUpload(
                f"several files are replicate videos of one sample ({', '.join(VIDEO_SUFFIXES)}); "
                f"upload {uploads.safe_name(others[0])} on its own"
            )
        if not others:
            return "job", await replicates.queue_videos(
                self.store,
                self.analyses,
                self.settings,
                lot=lot,
                by=user.user.name,
                files=files,
                form=form,
                calibration_file=calibration_file,
            )
        if calibration_file is not None or uploads.text_field(form, "calibration", 20):
            raise ParameterError(
                "a calibration is used with videos only: a result or an instrument export "
                "carries its own concentration"
            )
        data = self.settings.data_path
        saved = await uploads.save_upload(files[0], data, self.settings.max_upload_bytes)
        try:
            record = uploads.read_record(saved)
            measurement = actions.add_measurement(
                self.store,
                lot,
                record,
                by=user.user.name,
                original_file=saved.path,
                allow_reuse=(str(form.get("allow_reuse") or "").strip() or None),
                method=method,
            )
        finally:
            saved.discard()
        return "measurement", {
            "measurement": measurement,
            "lot": lot,
            "kind": "nta",
            "file": saved.name,
            "sha256": saved.sha256,
            "d50_nm": record.size.d50_nm,
            "particles_per_ml": record.concentration.particles_per_ml,
            "instrument": record.source.instrument,
            "method": method or method_label(record),
        }

    def approve_method(self, user: SessionView, ref: str, password: str) -> dict[str, Any]:
        """QA approves the method version ``ref`` as the session's user, with the password again
        (:func:`exocheck.auth.identity.identify`); never its author (four eyes, by
        :func:`exocheck.methods.methods.approve_method`)."""
        from exocheck.auth.identity import identify
        from exocheck.methods.methods import approve_method

        actor = identify(
            self.store,
            "method.approve",
            user=user.user.name,
            password=password,
            accounts=self.accounts,
        )
        return approve_method(self.store, ref, by=actor.name)

    def add_result(self, user: SessionView, lot: str, kind: str, form: dict[str, Any]) -> int:
        """Protein (``ug_per_ml``, ``method``), a marker panel or safety tests (``NAME=VALUE``
        pairs, one per line or comma-separated) entered on the lot page."""
        require(user.user.role, "measurement.add")
        self.check_lot(lot)
        by = user.user.name
        if kind == "protein":
            text = str(form.get("ug_per_ml") or "").strip()
            try:
                value = float(text)
            except ValueError:
                raise ParameterError(f"protein: not a number: {text[:40]!r}") from None
            method = str(form.get("method") or "").strip() or "BCA"
            return actions.add_protein(self.store, lot, value, method=method[:100], by=by)
        pairs = {}
        for item in re.split(r"[,\n]", str(form.get("pairs") or "")):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ParameterError(f"{kind}: expected NAME=VALUE, got {item.strip()[:60]!r}")
            pairs[key.strip()] = value.strip()
        if not pairs:
            raise ParameterError(f"{kind}: give at least one NAME=VALUE")
        if kind == "markers":
            return actions.add_markers(self.store, lot, pairs, by=by)
        if kind == "safety":
            return actions.add_safety(self.store, lot, pairs, by=by)
        raise ParameterError(f"unknown kind of result {kind[:20]!r}")

    def recall(self, user: SessionView, lot: str, *, reason: str, password: str) -> dict[str, Any]:
        """Recall a released lot, signed as the session's user (QA; password asked again)."""
        self.check_lot(lot)
        return lot_signatures.recall_lot(
            self.store, lot, user=user.user.name, password=password, reason=reason
        )

    def withdraw(
        self, user: SessionView, lot: str, measurement: int, *, reason: str, password: str
    ) -> dict[str, Any]:
        """Withdraw a measurement, signed as the session's user (password asked again)."""
        self.check_lot(lot)
        return lot_signatures.withdraw(
            self.store,
            lot,
            measurement,
            user=user.user.name,
            password=password,
            reason=reason,
            accounts=self.accounts,
        )

    def sign(
        self,
        user: SessionView,
        lot: str,
        *,
        meaning: str,
        reason: str,
        password: str,
        deviation: str | None = None,
    ) -> dict[str, Any]:
        """Sign as the session's user (password asked again); a lot whose records fail
        verification is refused (409, by :meth:`Signing.sign`)."""
        require(user.user.role, "sign")
        self.check_lot(lot)
        pause = None
        if self.settings.fault_pause_signature_s > 0:
            delay = self.settings.fault_pause_signature_s

            def pause() -> None:
                print(
                    f"signature of lot {lot} written, commit in {delay:g} s",
                    file=sys.stderr,
                    flush=True,
                )
                time.sleep(delay)

        return self.signing.sign(
            lot,
            user=user.user.name,
            password=password,
            meaning=meaning,
            reason=reason,
            deviation=deviation or None,
            pause_before_commit=pause,
        )

    def coa_pdf(self, lot: str, user: SessionView | None = None) -> bytes:
        """The certificate of ``lot`` as PDF bytes: the very document ``exocheck coa`` writes
        (:func:`exocheck.lots.certificate.certificate`; signed when keys exist)."""
        from exocheck.certify import Keyring
        from exocheck.lots.certificate import certificate

        self.check_lot(lot)
        by = user.user.name if user is not None else "web"
        document, _ = certificate(self.store, lot, by=by, keyring=Keyring(self.settings.keys_dir))
        return document.content

    def audit(
        self,
        user: SessionView,
        wanted: AuditFilter,
        *,
        page: int = 1,
        per_page: int = PER_PAGE,
        newest_first: bool = False,
    ) -> Page:
        """One page of the audit events ``wanted`` matches (:func:`search_audit`); an unknown
        lot is :class:`NotFound`."""
        require(user.user.role, "read")
        if wanted.lot is not None:
            self.check_lot(wanted.lot)
        return search_audit(
            self.store, wanted, page=page, per_page=per_page, newest_first=newest_first
        )

    def audit_export(self, user: SessionView, wanted: AuditFilter) -> Iterator[dict[str, Any]]:
        """Every audit event ``wanted`` matches, oldest first, read in batches
        (:func:`iter_audit`); the same authority and the same filter as :meth:`audit`."""
        require(user.user.role, "read")
        if wanted.lot is not None:
            self.check_lot(wanted.lot)
        return iter_audit(self.store, wanted)

    def lots(self, wanted: LotFilter, *, page: int = 1, per_page: int = PER_PAGE) -> Page:
        """One page of the lots ``wanted`` matches, newest first (:func:`search_lots` over
        :meth:`overview`)."""
        return search_lots(self.overview(), wanted, page=page, per_page=per_page)
