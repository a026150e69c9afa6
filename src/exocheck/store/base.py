"""The store's core: opening, one transaction per user action, the audit trail, look-ups."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from exocheck.errors import StoreError
from exocheck.store import chain, rowhash
from exocheck.store import models as m
from exocheck.store.session import (
    check_exists,
    check_initialised,
    make_engine,
    redact,
    resolve_url,
    upgrade,
)

#: PostgreSQL advisory lock that serialises appends to the audit chain
AUDIT_LOCK_KEY = 0x65786F63  # "exoc"


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def invalid_record(exc: json.JSONDecodeError | ValidationError) -> StoreError:
    """A stored record that no longer reads (its JSON, or the record it must be), as the one
    line a user sees instead of a traceback."""
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        detail = f"not a valid {exc.title} ({where + ': ' if where else ''}{error['msg']})"
    else:
        detail = f"not valid JSON ({exc.msg} at character {exc.pos})"
    return StoreError(
        f"a stored record is {detail}: it was changed past exocheck; 'exocheck audit verify' "
        "names it"
    )


def check_actor(by: str, role: str = "user") -> str:
    name = (by or "").strip()
    if not name:
        raise StoreError(f"name the {role}: a person's name is required for the audit trail")
    return name


class StoreBase:
    """Opening, sessions and the audit trail; the actions live in the mixins."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        event.listen(self._sessions, "after_flush", rowhash.track_writes)

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True, create: bool = True):
        """Open (and create or upgrade) the store at ``url``.

        ``url`` defaults to ``$EXOCHECK_DATABASE_URL``, then to a SQLite file in the per-user
        data directory. A plain path means a SQLite file. With ``create=False`` a database that
        does not exist yet, or holds no exocheck store, is refused (:class:`StoreError`) instead
        of being created: the command line passes it for every ``--db`` the user names, so that
        a mistyped path is an error rather than a new empty database.
        """
        resolved = resolve_url(url)
        if not create:
            check_exists(resolved)
        engine = make_engine(resolved)
        try:
            if not create:
                check_initialised(engine)
            if migrate:
                upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return redact(self.engine.url.render_as_string(hide_password=False))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _action(self) -> Iterator[Session]:
        """One user action = one transaction: everything or nothing."""
        session = self._sessions()
        try:
            with session.begin():
                yield session
        except (json.JSONDecodeError, ValidationError) as exc:
            raise invalid_record(exc) from None
        except SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None) or exc
            first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(exc).__name__
            raise StoreError(f"database refused the change: {first}") from None
        finally:
            session.close()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
        except (json.JSONDecodeError, ValidationError) as exc:  # a record changed past exocheck
            raise invalid_record(exc) from None
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the database: {exc.__class__.__name__}") from None
        finally:
            session.close()

    @staticmethod
    def _audit(
        session: Session,
        actor: str,
        action: str,
        entity: str,
        key: str,
        *,
        lot_id: int | None = None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        """Append an audit event, chained by hash to the one before (:mod:`.chain`).

        Events are numbered here, under a lock held to the end of the transaction (PostgreSQL:
        an advisory lock; SQLite: its write lock), so that the chain follows commit order. The
        event carries, in ``after["rows"]``, the hashes of the rows a decision rests on that the
        transaction wrote since its previous event (:mod:`.rowhash`), so that the chain protects
        them too."""
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
        elif dialect == "sqlite":  # a write that changes nothing takes the write lock now
            session.execute(text("UPDATE audit_events SET id = id WHERE 1 = 0"))
        session.flush()  # this transaction's own earlier events and rows first
        rows = rowhash.seal_written(session)
        if rows:
            after = (after or {}) | {"rows": rows}
        last = session.execute(
            select(m.AuditEvent.id, m.AuditEvent.chain_sha256)
            .order_by(m.AuditEvent.id.desc())
            .limit(1)
        ).first()
        event = m.AuditEvent(
            id=(last.id + 1) if last else 1,
            at=m.utcnow(),
            actor=actor,
            action=action,
            entity=entity,
            entity_key=key,
            lot_id=lot_id,
            before=before,
            after=after,
        )
        previous = (last.chain_sha256 if last else None) or chain.GENESIS_SHA256
        event.chain_sha256 = chain.link(previous, chain.event_payload(event))
        session.add(event)
        session.flush()

    @staticmethod
    def _product(session: Session, name: str) -> m.Product:
        product = session.scalar(select(m.Product).where(m.Product.name == name))
        if product is None:
            raise StoreError(f"unknown product {name!r} (add it with 'exocheck product add')")
        return product

    @staticmethod
    def _lot(session: Session, number: str) -> m.Lot:
        lot = session.scalar(select(m.Lot).where(m.Lot.number == number))
        if lot is None:
            raise StoreError(f"unknown lot {number!r}")
        return lot

    @staticmethod
    def _spec(session: Session, ref: str) -> m.Specification:
        """``name`` (newest version) or ``name@version``."""
        name, _, version = ref.partition("@")
        query = select(m.Specification).where(m.Specification.name == name)
        if version:
            try:
                number = int(version.lstrip("v"))
            except ValueError:
                raise StoreError(
                    f"bad specification reference {ref!r} (use NAME@VERSION)"
                ) from None
            query = query.where(m.Specification.version == number)
        spec = session.scalar(query.order_by(m.Specification.version.desc()).limit(1))
        if spec is None:
            raise StoreError(f"unknown specification {ref!r} (add it with 'exocheck spec add')")
        return spec

    # ---- the public face other packages use ------------------------------------------------
    def transaction(self):
        """One user action: a session whose changes commit together or not at all (database
        errors become one-line :class:`StoreError`)."""
        return self._action()

    def read(self):
        """A session for reading."""
        return self._read()

    def audit(self, session: Session, actor: str, action: str, entity: str, key: str, **kw):
        """Append an audit event in ``session``'s transaction (see :meth:`_audit`)."""
        return self._audit(session, actor, action, entity, key, **kw)

    def lot_row(self, session: Session, number: str) -> m.Lot:
        """The lot ``number`` (:class:`StoreError` when unknown)."""
        return self._lot(session, number)

    def product_row(self, session: Session, name: str) -> m.Product:
        """The product ``name`` (:class:`StoreError` when unknown)."""
        return self._product(session, name)

    def spec_row(self, session: Session, ref: str) -> m.Specification:
        """The specification ``name`` (newest) or ``name@version``."""
        return self._spec(session, ref)

    def has_users(self, session: Session | None = None) -> bool:
        """Whether the store has user accounts (its people then sign with passwords)."""
        if session is None:
            with self._read() as own:
                return own.scalar(select(m.User.id).limit(1)) is not None
        return session.scalar(select(m.User.id).limit(1)) is not None

    def history(self, lot: str | None = None) -> list[dict[str, Any]]:
        """The audit trail, oldest first; only the events of ``lot`` when given."""
        with self._read() as session:
            query = select(m.AuditEvent).order_by(m.AuditEvent.id)
            if lot is not None:
                lot_id = self._lot(session, lot).id
                query = query.where(m.AuditEvent.lot_id == lot_id)
            return [
                {
                    "id": e.id,
                    "at": aware(e.at).isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "entity": e.entity,
                    "key": e.entity_key,
                    "before": e.before,
                    "after": e.after,
                }
                for e in session.scalars(query)
            ]
