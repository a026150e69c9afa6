"""The hash chain of the audit trail.

Each audit event stores ``chain_sha256 = SHA-256(previous event's chain_sha256 || event)``, where
*event* is the canonical JSON of everything the event says (id, time, actor, action, record,
lot, before, after). Editing, deleting, inserting or reordering an event changes the chain from
that event on, so :func:`first_break` finds it even when the change was made in the database
directly, past exocheck and its append-only trigger. A signed certificate carries the chain head
at its issue, which also pins the history before it against a rewrite of the whole chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

#: the "previous hash" of the first event
GENESIS_SHA256 = "0" * 64


def _utc_text(at: datetime) -> str:
    if at.tzinfo is None:  # SQLite hands back naive datetimes, stored in UTC
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_payload(row: Any) -> dict[str, Any]:
    """What the chain binds of an audit event row (JSON as the database returns it)."""

    def stored(value: Any) -> Any:
        return None if value is None else json.loads(json.dumps(value))

    return {
        "id": int(row.id),
        "at": _utc_text(row.at),
        "actor": row.actor,
        "action": row.action,
        "entity": row.entity,
        "entity_key": row.entity_key,
        "lot_id": row.lot_id,
        "before": stored(row.before),
        "after": stored(row.after),
    }


def link(previous_sha256: str, payload: dict[str, Any]) -> str:
    """The chain hash of an event whose predecessor's chain hash is ``previous_sha256``."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(previous_sha256.encode("ascii") + text.encode("utf-8")).hexdigest()


def first_break(rows: Iterable[Any]) -> tuple[int, int | None, str, str]:
    """Walk the chain over ``rows`` (audit events in id order).

    Returns ``(events, broken_id, head_sha256, why)``: the number of events, the id of the
    first event whose stored hash is not the chain's (``None`` when intact), the chain head
    recomputed up to the break (or the end), and why it broke.
    """
    previous = GENESIS_SHA256
    count = 0
    last_id = 0
    for row in rows:
        count += 1
        if row.id <= last_id:
            return count, row.id, previous, "out of order"
        expected = link(previous, event_payload(row))
        if row.chain_sha256 != expected:
            why = (
                "no chain hash (inserted past exocheck)"
                if not row.chain_sha256
                else "its content or its place in the chain changed (edited, or an event "
                "before it was deleted, inserted or moved)"
            )
            return count, row.id, previous, why
        previous, last_id = expected, row.id
    return count, None, previous, ""
