"""The audit trail searched, paged and exported: one filter for every shell.

:class:`AuditFilter` says which events are wanted (a lot, a user, an action, a time window);
:func:`search_audit` gives one page of them, :func:`iter_audit` all of them (in batches, for an
export), :func:`audit_csv` writes them as CSV that a spreadsheet opens without running anything.
The web page, its CSV download and ``GET /api/v1/audit`` all call these, so the same query gives
the same events everywhere. Example::

    from exocheck.store import Store
    from exocheck.store.audit import AuditFilter, search_audit

    with Store.open("qc.db") as store:
        wanted = AuditFilter.parse(lot="L-001", action="signature", since="2025-01-01")
        page = search_audit(store, wanted, page=1)
        print(page.total, [e["action"] for e in page.items])
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select

from exocheck.errors import ParameterError
from exocheck.paging import PER_PAGE, Page
from exocheck.store import models as m
from exocheck.store.base import aware

#: the longest text a filter field takes (a lot number or user name is at most 200 characters)
MAX_FILTER_CHARS = 200
#: the columns of the CSV export, in order
CSV_COLUMNS = ("id", "at", "actor", "action", "entity", "key", "lot", "before", "after")
#: first characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _when(text: str | None, name: str, *, end: bool) -> datetime | None:
    """An ISO date or date-time as an aware UTC instant (a naive time is taken as UTC). A date
    alone means its first instant, or with ``end`` the first instant of the next day."""
    raw = (text or "").strip()
    if not raw:
        return None
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise ParameterError(
            f"{name}: not a date (YYYY-MM-DD) or date and time (YYYY-MM-DDTHH:MM): {raw[:40]!r}"
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when + timedelta(microseconds=1) if end else when


def _text(value: str | None, name: str) -> str | None:
    text = (value or "").strip()
    if len(text) > MAX_FILTER_CHARS:
        raise ParameterError(f"{name}: at most {MAX_FILTER_CHARS} characters, not {len(text)}")
    return text or None


@dataclass(frozen=True)
class AuditFilter:
    """Which audit events are wanted; every field left ``None`` matches everything.

    Attributes
    ----------
    lot : str or None
        The lot number, exactly (events written for that lot).
    user : str or None
        Who acted (the user name), exactly, ignoring case.
    action : str or None
        The action exactly, or a family of actions by its dotted prefix: ``signature`` matches
        ``signature.refused`` and ``signature.failed``; ``lot.sign`` only ``lot.sign`` and
        ``lot.sign.*``.
    since : datetime or None
        Events at or after this instant (aware, UTC).
    until : datetime or None
        Events before this instant (aware, UTC; :meth:`parse` turns a date into the end of
        that day).
    """

    lot: str | None = None
    user: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(
        cls,
        *,
        lot: str | None = None,
        user: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> AuditFilter:
        """The filter from text as a form or a query string gives it (blank: no condition).

        ``since`` and ``until`` are ISO dates (``2025-03-01``: ``until`` then includes the whole
        day) or date-times (UTC unless they carry an offset). Raises :class:`ParameterError`
        (one line) for a text that is too long, a date that does not read, or a window that
        ends before it starts.
        """
        start = _when(since, "since", end=False)
        stop = _when(until, "until", end=True)
        if start is not None and stop is not None and stop <= start:
            raise ParameterError(f"until ({until}) is before since ({since})")
        return cls(_text(lot, "lot"), _text(user, "user"), _text(action, "action"), start, stop)

    @property
    def empty(self) -> bool:
        """True when nothing is filtered."""
        return all(v is None for v in (self.lot, self.user, self.action, self.since, self.until))


def _where(query: Select, wanted: AuditFilter) -> Select:
    """``query`` (over events outer-joined to their lot) narrowed to what ``wanted`` matches."""
    if wanted.lot is not None:
        query = query.where(m.Lot.number == wanted.lot)
    if wanted.user is not None:
        query = query.where(func.lower(m.AuditEvent.actor) == wanted.user.lower())
    if wanted.action is not None:
        family = wanted.action.rstrip(".")
        query = query.where(
            or_(
                m.AuditEvent.action == family,
                m.AuditEvent.action.startswith(family + ".", autoescape=True),
            )
        )
    if wanted.since is not None:
        query = query.where(m.AuditEvent.at >= wanted.since)
    if wanted.until is not None:
        query = query.where(m.AuditEvent.at < wanted.until)
    return query


def _select(*columns: Any) -> Select:
    return (
        select(*columns).select_from(m.AuditEvent).outerjoin(m.Lot, m.Lot.id == m.AuditEvent.lot_id)
    )


def _event(event: m.AuditEvent, lot: str | None) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": aware(event.at).isoformat(),
        "actor": event.actor,
        "action": event.action,
        "entity": event.entity,
        "key": event.entity_key,
        "lot": lot,
        "before": event.before,
        "after": event.after,
    }


def _rows(session, query: Select) -> list[dict[str, Any]]:
    return [_event(event, number) for event, number in session.execute(query)]


def search_audit(
    store,
    wanted: AuditFilter | None = None,
    *,
    page: int = 1,
    per_page: int = PER_PAGE,
    newest_first: bool = False,
) -> Page:
    """One page of the audit events that ``wanted`` matches, and how many match in all.

    Parameters
    ----------
    store
        An open :class:`~exocheck.store.Store`.
    wanted
        The filter (default: every event).
    page, per_page
        Which page (from 1) of how many events (see :func:`exocheck.paging.check_paging`).
    newest_first
        Order by event, newest first (a person reading the trail), instead of oldest first
        (the order the trail was written in, as ``exocheck history`` prints it).

    Returns
    -------
    Page
        Items are dicts ``{"id", "at", "actor", "action", "entity", "key", "lot", "before",
        "after"}`` (``at`` ISO 8601 UTC; ``lot`` the lot number or None).
    """
    wanted = wanted or AuditFilter()
    order = m.AuditEvent.id.desc() if newest_first else m.AuditEvent.id
    with store.read() as session:
        total = session.scalar(_where(_select(func.count(m.AuditEvent.id)), wanted)) or 0
        query = _where(_select(m.AuditEvent, m.Lot.number), wanted).order_by(order)
        items = _rows(session, query.offset((page - 1) * per_page).limit(per_page))
    return Page(items, total, page, per_page)


def iter_audit(store, wanted: AuditFilter | None = None, *, batch: int = 500) -> Iterator[dict]:
    """Every event ``wanted`` matches, oldest first, read ``batch`` at a time (memory does not
    grow with the trail; events written meanwhile are included up to the end)."""
    wanted = wanted or AuditFilter()
    after = 0
    while True:
        with store.read() as session:
            query = _where(_select(m.AuditEvent, m.Lot.number), wanted)
            query = query.where(m.AuditEvent.id > after)
            rows = _rows(session, query.order_by(m.AuditEvent.id).limit(batch))
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1]["id"]


def audit_actions(store) -> list[str]:
    """The actions the trail holds, sorted (what a search may ask for)."""
    with store.read() as session:
        return sorted(session.scalars(select(m.AuditEvent.action).distinct()))


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True)
class Change:
    """One field of a record as an event changed it (values as compact JSON; ``None``: absent)."""

    field: str
    before: str | None
    after: str | None


def changes(
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    leave_out: tuple[str, ...] = (),
) -> list[Change]:
    """The fields that differ between an event's record before and after, in field order
    (the fields named in ``leave_out`` aside).

    A record created (nothing before) lists every field it has; one deleted, every field it
    had; a field absent on one side and null on the other is unchanged. Values that are not
    mappings are compared as a whole under the field ``""``.
    """
    if not isinstance(before, dict | None) or not isinstance(after, dict | None):
        if before == after:
            return []
        return [Change("", _opt(before), _opt(after))]
    old, new = before or {}, after or {}
    keys = list(old) + [k for k in new if k not in old]
    return [
        Change(str(k), _opt(old[k]) if k in old else None, _opt(new[k]) if k in new else None)
        for k in keys
        if old.get(k) != new.get(k) and k not in leave_out
    ]


def _opt(value: Any) -> str | None:
    return None if value is None else _compact(value)


def csv_cell(value: Any) -> str:
    """A value as a CSV cell that a spreadsheet shows as text: ``None`` is empty, mappings and
    lists are compact JSON, and a cell that would start a formula (``= + - @``, tab, carriage
    return) is prefixed with ``'``."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict | list):
        text = _compact(value)
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def audit_csv(events: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> Iterator[str]:
    """The events as CSV text (header first, one chunk per event; RFC 4180 quoting, CRLF)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for event in events:
        writer.writerow([csv_cell(event.get(column)) for column in CSV_COLUMNS])
        yield flush()


__all__ = [
    "CSV_COLUMNS",
    "AuditFilter",
    "Change",
    "audit_actions",
    "audit_csv",
    "changes",
    "csv_cell",
    "iter_audit",
    "search_audit",
]
